"""Presets round-trip through YAML; run records are written atomically and never carry tokens (kwanzaa.config)."""
import json, os, subprocess, sys
import pytest
import yaml
from kwanzaa.config import RunConfig, list_presets, load_config, resolve_compute_dtype
from kwanzaa.records import atomic_write_json, atomic_write_text, file_sha256, provenance


@pytest.mark.parametrize("name", ["qlora", "lora", "cpu", "pilot"])
def test_preset_saves_complete_and_round_trips(tmp_path, name):
    cfg = load_config(name)
    path = cfg.save(tmp_path / f"{name}.yaml")
    saved = yaml.safe_load(path.read_text())
    assert "inherits" not in saved and saved["name"] == name
    assert set(saved) == set(RunConfig.model_fields)
    for section, value in saved.items():  # every key of every section is written out
        if isinstance(value, dict): assert set(value) == set(getattr(RunConfig(), section).model_dump())
    assert load_config(path=path) == cfg
    assert load_config(None, path=path) == cfg  # complete: needs no preset underneath


def test_seed_values_and_cpu_sizes():
    q, cpu, pilot = load_config("qlora"), load_config("cpu"), load_config("pilot")
    assert list_presets() == ["cpu", "lora", "pilot", "qlora", "qlora-fast", "small-gpu"]
    assert (q.adapter.method, q.quantization.bnb_4bit_quant_type, q.quantization.bnb_4bit_use_double_quant) == ("qlora", "nf4", True)
    assert (q.lora.r, q.lora.alpha, q.lora.dropout, len(q.lora.target_modules)) == (16, 32, 0.05, 7)
    assert (q.training.epochs, q.training.learning_rate, q.training.per_device_train_batch_size,
            q.training.gradient_accumulation_steps, q.training.optim) == (2, 2e-4, 1, 16, "paged_adamw_8bit")
    import torch
    assert resolve_compute_dtype(q.quantization.bnb_4bit_compute_dtype, "cuda", capability=(8, 9)) == torch.bfloat16
    assert resolve_compute_dtype(q.quantization.bnb_4bit_compute_dtype, "cuda", capability=(7, 5)) == torch.float16
    assert (cpu.adapter.method, cpu.training.learning_rate, cpu.training.lr_scheduler_type, cpu.training.max_seq_length,
            cpu.training.torch_threads, cpu.model.base) == ("lora", 3e-4, "cosine", 1024, 2, "embedded:smollm2")
    assert pilot.data.limit == 10 and pilot.data.limit * pilot.training.epochs / pilot.training.gradient_accumulation_steps == 40


def test_override_values_are_parsed_as_yaml():
    cfg = load_config("cpu", overrides=["training.learning_rate=1e-4", "training.torch_threads=1", "data.limit=null",
                                        "speed.packing=flat", "lora.target_modules=[q_proj, v_proj]"])
    assert (cfg.training.learning_rate, cfg.training.torch_threads, cfg.data.limit, cfg.speed.packing,
            cfg.lora.target_modules) == (1e-4, 1, None, "flat", ["q_proj", "v_proj"])
    assert load_config("cpu", overrides={"training.torch_threads": 1}).training.torch_threads == 1


def test_import_does_not_import_torch():
    code = "import sys, kwanzaa.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = atomic_write_json(tmp_path / "out" / "metrics.json", {"n": 1})
    with pytest.raises(TypeError): atomic_write_json(path, {"n": object()})
    assert json.loads(path.read_text()) == {"n": 1}
    atomic_write_text(path, "replaced\n")
    assert path.read_text() == "replaced\n" and os.listdir(path.parent) == ["metrics.json"]


def test_provenance_records_how_a_result_was_made(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"id": 1}\n'); b.write_text('{"id": 2}\n')
    rec = provenance(load_config("pilot"), [a, b], command="kwanzaa train --preset pilot")
    assert rec["command"] == "kwanzaa train --preset pilot" and rec["config"]["name"] == "pilot"
    assert rec["data_files"] == {str(a): file_sha256(a), str(b): file_sha256(b)}
    assert rec["data_hash"] != provenance(None, [b, a])["data_hash"]  # order matters: it is one stream
    assert provenance(None, [a])["data_hash"] == file_sha256(a)
    assert set(rec["versions"]) >= {"python", "torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "kwanzaa"}
    assert rec["device"]["type"] in ("cpu", "cuda") and rec["device"]["cpu_count"] >= 1
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert rec["git_commit"].removesuffix("+dirty") == head
    json.dumps(rec)


def test_provenance_never_contains_env_tokens(monkeypatch):
    token = "hf_secretTOKENvalue0123456789abcdefXYZ"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-key-0123456789")
    monkeypatch.setattr(sys, "argv", ["kwanzaa", "train", "--token", token, "--wandb", "wandb-secret-key-0123456789"])
    text = json.dumps(provenance(load_config("qlora")))
    assert "hf_secret" not in text and "wandb-secret" not in text
    assert "kwanzaa train --token *** --wandb ***" in text
