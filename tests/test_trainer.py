"""kwanzaa.trainer on tiny offline models: loss mask, outputs of a run, checkpoints, model card, merge, errors."""
import json, os, warnings
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from kwanzaa.config import load_config
from kwanzaa.contract import AnswerCore, Chunk, Toggles, core_to_text
from kwanzaa.prompt import render_messages
from kwanzaa.loader import FAMILIES, load_tokenizer, make_tiny_model
from kwanzaa.publish import PublishError, merge_adapter, push_adapter, update_model_card
from kwanzaa.trainer import (TrainError, checkpoint_problem, last_good_checkpoint, list_checkpoints, sft_config, train,
                             trained_text)
from kwanzaa.progress import progress_mode

torch.set_num_threads(1)
os.environ["KWANZAA_PROGRESS"] = "lines"

PRINCIPLES = [("Umoja", "unity"), ("Kujichagulia", "self-determination"), ("Ujima", "collective work and responsibility"),
              ("Ujamaa", "cooperative economics"), ("Nia", "purpose"), ("Kuumba", "creativity"), ("Imani", "faith")]


def chunk(i, text):
    return Chunk(chunk_id=f"kwanzaa_notes_test::chunk::{i}", doc_id="kwanzaa_notes_test", text=text, title="Kwanzaa notes",
                 author="kwanzaa project", year=2026, source_org="kwanzaa project", license="CC-BY-4.0",
                 canonical_url="https://example.org/notes", namespace="kwanzaa_notes", content_type="reference_note")


def conversations():
    out = []
    for i, (word, meaning) in enumerate(PRINCIPLES):
        chunks = [chunk(i, f"{word} means {meaning}."), chunk(100 + i, "Kwanzaa lasts seven days.")]
        target = AnswerCore(status="answered", citations=[1], answer=f"{word} means {meaning} [1].", unknowns=[])
        out.append(render_messages(f"What does {word} mean?", chunks, "educator", Toggles(), target))
    return out


CONVS = conversations()


def tiny_cfg(model_dir, preset="qlora", **over):
    base = {"model.base": str(model_dir), "model.device": "cpu", "training.epochs": 2,
            "training.per_device_train_batch_size": 2, "training.gradient_accumulation_steps": 1,
            "training.learning_rate": 5e-3, "training.save_steps": 2, "training.save_total_limit": 2,
            "training.logging_steps": 1, "training.gradient_checkpointing": False, "training.torch_threads": 1,
            "training.max_seq_length": 512}
    return load_config(preset, overrides={**base, **over})


@pytest.fixture(scope="module")
def run(tiny_model_dir, tmp_path_factory):
    "One real QLoRA run on the tiny model, shared by the tests that only read its outputs."
    out = tmp_path_factory.mktemp("run") / "run"
    data = tmp_path_factory.mktemp("data") / "train.jsonl"
    data.write_text("".join(json.dumps(c) + "\n" for c in CONVS))
    return train(tiny_cfg(tiny_model_dir), out, CONVS, CONVS[:2], data_paths=[data])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_labels_are_exactly_the_answer_json_plus_end_of_turn(tmp_path, family):
    from datasets import Dataset
    from trl import SFTTrainer
    d = make_tiny_model(tmp_path / family, family=family)
    tok = load_tokenizer(d)
    trainer = SFTTrainer(model=str(d), args=sft_config(tiny_cfg(d), tmp_path / "out"), processing_class=tok,
                         train_dataset=Dataset.from_list([{"messages": c} for c in CONVS[:2]]))
    for row, conv in zip(trainer.train_dataset, CONVS[:2]):
        target = conv[-1]["content"]
        assert target == core_to_text(AnswerCore.model_validate_json(target))
        assert trained_text(tok, row) == target + FAMILIES[family].eot
        first = row["labels"].index(next(l for l in row["labels"] if l != -100))
        assert all(l == -100 for l in row["labels"][:first])   # nothing of the prompt is trained


def test_run_writes_adapter_log_plot_manifest(run):
    out = run.out_dir
    assert sorted(p.name for p in run.adapter_dir.iterdir()) >= ["README.md", "adapter_config.json",
                                                                 "adapter_model.safetensors"]
    assert not (run.adapter_dir / "training_args.bin").exists()   # no pickle in the published adapter
    assert run.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = [json.loads(l) for l in run.log_path.read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, run.global_step + 1))
    assert all(r["tokens_per_s"] > 0 and r["rss_mb"] > 0 and "grad_norm" in r and "learning_rate" in r for r in steps[1:])
    assert [r["epoch"] for r in log if "eval_loss" in r] == [1.0, 2.0]   # validation each epoch
    m = json.loads(run.manifest_path.read_text())
    assert m["status"] == "complete" and m["kind"] == "train"
    for key in ("command", "config", "data_hash", "versions", "device", "git_commit", "created_at"):
        assert key in m
    assert m["data_hash"] and m["config"]["training"]["learning_rate"] == 5e-3
    assert m["durations_s"]["train"] > 0 and m["peak_memory"]["peak_rss_mb"] > 100
    assert m["parameters"]["trainable"] == m["parameters"]["expected"]
    assert m["metrics"]["global_step"] == run.global_step == 8 and m["data"]["train_examples"] == len(CONVS)
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == ["checkpoint-6", "checkpoint-8"]
    assert torch.get_num_threads() == 1   # training.torch_threads
    assert "HF_TOKEN" not in json.dumps(m)


def test_adapter_reloads_in_standard_layout(run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    cfg = json.loads((run.adapter_dir / "adapter_config.json").read_text())
    assert cfg["r"] == 16 and cfg["lora_alpha"] == 32 and cfg["peft_type"] == "LORA"
    assert set(cfg["target_modules"]) == set(load_config("qlora").lora.target_modules)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    pm = PeftModel.from_pretrained(base, run.adapter_dir)
    assert sum("lora_A" in n for n, _ in pm.named_parameters()) == 2 * 7


def test_model_card_metadata_and_metrics_update(run):
    card = (run.adapter_dir / "README.md").read_text()
    head = card.split("---")[1]
    assert "library_name: peft" in head and "base_model:" in head
    assert "Not evaluated yet" in card and "| trainable parameters |" in card
    update_model_card(run.adapter_dir, {"json_parse_rate": 1.0, "refusal_precision": 0.8571, "n": 40}, title="golden set")
    update_model_card(run.adapter_dir, {"json_parse_rate": 0.95, "n": 40})   # a second update replaces the first
    card = (run.adapter_dir / "README.md").read_text()
    assert "| json_parse_rate | 0.9500 |" in card and "refusal_precision" not in card and "Not evaluated" not in card
    assert card.count("kwanzaa:metrics:start") == 1 and "## Use" in card


def test_corrupted_checkpoint_falls_back_to_the_previous(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_cfg(tiny_model_dir, **{"training.max_steps": 6, "training.save_steps": 2, "training.save_total_limit": 3})
    train(cfg, out, CONVS)
    ckpts = list_checkpoints(out / "checkpoints")
    assert [p.name for p in ckpts] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    w = ckpts[-1] / "adapter_model.safetensors"
    w.write_bytes(w.read_bytes()[: len(w.read_bytes()) // 2])   # a save cut short
    assert "adapter_model.safetensors is unreadable" in checkpoint_problem(ckpts[-1])
    (ckpts[-2] / "trainer_state.json").unlink()   # and one that never finished
    with pytest.warns(UserWarning, match="checkpoint-6 is damaged") as rec:
        res = train(cfg, out, CONVS)
    assert any("checkpoint-4 is damaged: trainer_state.json is missing" in str(r.message) for r in rec)
    assert res.resumed_from.endswith("checkpoint-2") and res.global_step == 6
    assert (out / "checkpoints" / "corrupt-checkpoint-6").is_dir()
    assert checkpoint_problem(list_checkpoints(out / "checkpoints")[-1]) is None


def test_resume_with_a_different_config_is_refused(run, tiny_model_dir):
    with pytest.raises(TrainError, match=r"different configuration \(lora\.r\)"):
        train(tiny_cfg(tiny_model_dir, **{"lora.r": 8}), run.out_dir, CONVS)


def test_resume_false_starts_over(tiny_model_dir, tmp_path):
    cfg = tiny_cfg(tiny_model_dir, **{"training.max_steps": 2})
    train(cfg, tmp_path / "r", CONVS)
    res = train(cfg, tmp_path / "r", CONVS, resume=False)
    assert res.resumed_from is None and res.global_step == 2
    assert len([l for l in res.log_path.read_text().splitlines() if '"loss"' in l]) == 2


def test_merge_into_bf16_copy_matches_unmerged(tiny_model_dir, tmp_path):
    cfg = tiny_cfg(tiny_model_dir, **{"training.epochs": 30, "training.learning_rate": 1e-2, "training.save_steps": 1000})
    res = train(cfg, tmp_path / "run", CONVS[:2])
    prompts = [c[:2] for c in CONVS[:2]] + [[{"role": "user", "content": "Hello?"}]]
    rep = merge_adapter(cfg, res.adapter_dir, tmp_path / "merged", prompts=prompts, max_new_tokens=30)
    assert rep["identical"] and rep["dtype"] == "bfloat16"
    assert rep["merged"][0].startswith('{"status": "answer')   # the tiny model learned the JSON's start
    from transformers import AutoModelForCausalLM
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert merged.dtype == torch.bfloat16 and not any("lora" in n for n, _ in merged.named_parameters())
    assert not any(type(m).__name__ == "Linear4bit" for m in merged.modules())
    assert json.loads((tmp_path / "merged" / "merge_report.json").read_text())["identical"]


def test_gpu_out_of_memory_names_the_settings_to_lower(tiny_model_dir, tmp_path):
    class Oom(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw): raise torch.OutOfMemoryError("CUDA out of memory")
    with pytest.raises(TrainError, match=r"per_device_train_batch_size \(now 2.*max_seq_length \(now 512\)"):
        train(tiny_cfg(tiny_model_dir), tmp_path / "oom", CONVS, callbacks=[Oom()])


def test_packing_trains_and_keeps_sequences_apart(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM
    res = train(tiny_cfg(tiny_model_dir, **{"speed.packing": "flat", "training.max_steps": 2}), tmp_path / "p", CONVS)
    assert res.global_step == 2 and res.train_loss > 0
    m = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    a, b = torch.randint(5, 300, (1, 9)), torch.randint(5, 300, (1, 6))
    pos = torch.cat([torch.arange(9), torch.arange(6)])[None]
    with torch.no_grad():
        packed = m(input_ids=torch.cat([a, b], 1), position_ids=pos, use_cache=False).logits
        alone = m(input_ids=b).logits
    assert torch.allclose(packed[0, 9:], alone[0], atol=1e-5)   # no attention across the boundary


def test_progress_mode_and_push_need_explicit_opt_in(monkeypatch, tmp_path):
    monkeypatch.setenv("KWANZAA_PROGRESS", "bar")
    assert progress_mode() == "bar"
    monkeypatch.delenv("KWANZAA_PROGRESS")
    assert progress_mode() == "lines"   # pytest: no tty, no notebook
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(PublishError, match=r"needs a Hugging Face write token in \$HF_TOKEN"):
        push_adapter(tmp_path, "someone/adapter")


def test_bad_training_data_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(TrainError, match="no training conversations"):
        train(tiny_cfg(tiny_model_dir), tmp_path / "x", [])
    with pytest.raises(TrainError, match=r"conversations \[1\] do not end with an assistant turn"):
        train(tiny_cfg(tiny_model_dir), tmp_path / "x", [CONVS[0], CONVS[1][:2]])


def test_trainer_command_names_a_bad_conversations_file(tmp_path):
    "`kwanzaa trainer` (the accelerate entry point, `-m kwanzaa trainer`): a bad input file is named, exit 2, nothing written."
    import subprocess, sys
    bad = tmp_path / "conv.jsonl"
    bad.write_text('[{"role": "user", "content": "q"}, {"role": "assistant"}]\n')
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, "-m", "kwanzaa", "trainer", "--preset", "cpu", "--out", str(tmp_path / "run"),
                        "--conversations", str(bad)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2, p.stderr
    assert f"kwanzaa.trainer: error: {bad}, line 1, message 1: needs string fields 'role' and 'content'" in p.stderr
    assert not (tmp_path / "run").exists()
