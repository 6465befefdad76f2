"""Reliability, faults: a full or unwritable output directory, torn writes, parallel runs, concurrent cache builds.

SIGKILL during training then resume: tests/test_trainer_resume.py. SIGKILL during evaluation then resume:
tests/test_evaluate_resume.py. Both are counted in the README's reliability table."""
import errno, json, os, signal, subprocess, time
from pathlib import Path

import pytest
import torch

from kwanzaa.config import load_config
from kwanzaa.examples import Example, write_examples
from kwanzaa.records import RecordError, atomic_write_json, atomic_write_text, read_predictions

torch.set_num_threads(1)


# --- a full disk ----------------------------------------------------------------------------------------------------
@pytest.fixture
def full_disk(tmp_path):
    "A 64 KiB tmpfs (needs root to mount); skipped where mounting is not allowed."
    d = tmp_path / "tiny-fs"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0: pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try: yield d
    finally: subprocess.run(["umount", "-l", str(d)], capture_output=True)


BIG = {"rows": ["x" * 1000] * 100}   # ~100 kB of JSON: more than the file system holds


def test_full_disk_keeps_the_old_result_and_leaves_no_partial_file(full_disk):
    path = full_disk / "metrics.json"
    atomic_write_json(path, {"n": 1})
    with pytest.raises(OSError) as e: atomic_write_json(path, BIG)
    assert e.value.errno == errno.ENOSPC
    assert json.loads(path.read_text()) == {"n": 1}           # the previous result, whole
    assert sorted(p.name for p in full_disk.iterdir()) == ["metrics.json"]   # no temp file left behind
    with pytest.raises(OSError) as e: atomic_write_text(full_disk / "report.md", "x" * 100_000)
    assert e.value.errno == errno.ENOSPC and not (full_disk / "report.md").exists()
    assert sorted(p.name for p in full_disk.iterdir()) == ["metrics.json"]


def test_full_disk_dataset_and_config_writes(full_disk):
    from kwanzaa.contract import AnswerCore
    from kwanzaa.examples import Gold
    exs = [Example(id=f"e{i}", persona="educator", category="refusal_no_context", question="q" * 500, context=[],
                   gold=Gold(status="refused"), target=AnswerCore(status="refused", citations=[], answer="No.", unknowns=[]))
           for i in range(200)]
    with pytest.raises(OSError) as e: write_examples(exs, full_disk / "train.jsonl")
    assert e.value.errno == errno.ENOSPC
    cfg = load_config("pilot")
    cfg.save(full_disk / "config.yaml")                      # small: fits
    assert sorted(p.name for p in full_disk.iterdir()) == ["config.yaml"]
    assert load_config(path=full_disk / "config.yaml") == cfg


def test_output_path_under_a_regular_file(tmp_path):
    "Root ignores chmod, so 'cannot write' is a path whose parent is a file: an OSError naming it, nothing written."
    f = tmp_path / "file"
    f.write_text("x")
    for write in (lambda p: atomic_write_json(p, {"n": 1}), lambda p: atomic_write_text(p, "x"),
                  lambda p: write_examples([], p), lambda p: load_config("pilot").save(p)):
        with pytest.raises(OSError) as e: write(f / "run" / "out.json")
        assert e.value.errno in (errno.ENOTDIR, errno.EEXIST) and str(f) in str(e.value)
    assert f.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_training_into_an_unwritable_run_directory_fails(tiny_model_dir, tmp_path):
    from kwanzaa.trainer import train
    f = tmp_path / "file"
    f.write_text("x")
    convs = [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]]
    cfg = load_config("lora", overrides={"model.base": str(tiny_model_dir), "model.device": "cpu"})
    with pytest.raises(OSError) as e: train(cfg, f / "run", convs)
    assert str(f) in str(e.value) and f.read_text() == "x"


# --- torn writes of the predictions file ----------------------------------------------------------------------------
def _pred(i):
    return json.dumps({"id": f"q{i}", "arm": "base", "prompt": "p", "raw_output": "{}"}) + "\n"


def test_torn_last_prediction_is_cut_and_a_bad_middle_line_is_named(tmp_path):
    p = tmp_path / "predictions.jsonl"
    p.write_text(_pred(0) + _pred(1) + _pred(2)[:25])          # killed while writing item 2
    assert list(read_predictions(p)) == ["q0", "q1"]
    assert p.read_text() == _pred(0) + _pred(1)               # the torn line is gone, so item 2 is regenerated
    p.write_text(_pred(0) + "{oops\n" + _pred(2))
    with pytest.raises(RecordError) as e: read_predictions(p)
    assert str(e.value) == f"{p}:2: not valid JSON; delete that line to regenerate the item"


# --- two trainings at once ------------------------------------------------------------------------------------------
from test_trainer_resume import MESSAGES
CONVS = MESSAGES[:2]   # the resume test's tiny conversations
TRAIN_OVERRIDES = {"model.device": "cpu", "training.epochs": 2, "training.per_device_train_batch_size": 2,
                   "training.gradient_accumulation_steps": 1, "training.learning_rate": 5e-3, "training.save_steps": 1,
                   "training.logging_steps": 1, "training.gradient_checkpointing": False, "training.torch_threads": 1,
                   "training.max_seq_length": 256}
def _train_child(over, out):
    "A training in a forked process (the parent has imported torch/trl already: no 10 s of imports per child)."
    torch.set_num_threads(1)
    from kwanzaa.trainer import train
    r = train(load_config("lora", overrides=over), out, CONVS, command="parallel-test")
    (Path(out) / "STEP").write_text(str(r.global_step))


def test_two_trainings_in_parallel_do_not_interfere(tiny_model_dir, tmp_path):
    import multiprocessing as mp
    from safetensors.torch import load_file
    from kwanzaa.trainer import train
    over = {**TRAIN_OVERRIDES, "model.base": str(tiny_model_dir)}
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = [mp.get_context("fork").Process(target=_train_child, args=(over, o)) for o in outs]
    for p in procs: p.start()
    solo = train(load_config("lora", overrides=over), tmp_path / "solo", CONVS, command="parallel-test")
    for p in procs: p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert solo.global_step == 2 and [(o / "STEP").read_text() for o in outs] == ["2", "2"]
    want = load_file(solo.adapter_dir / "adapter_model.safetensors")
    assert any(v.abs().sum() > 0 for k, v in want.items() if "lora_B" in k)   # training moved B off zero
    for o in outs:
        got = load_file(o / "adapter" / "adapter_model.safetensors")
        assert got.keys() == want.keys()
        for k in want: assert torch.allclose(got[k].float(), want[k].float(), rtol=1e-4, atol=1e-6), (o.name, k)
        m = json.loads((o / "manifest.json").read_text())
        assert m["status"] == "complete" and m["outputs"]["adapter"] == str(o / "adapter")   # each wrote only its own
        assert {p.name for p in o.iterdir()} >= {"adapter", "checkpoints", "manifest.json", "run_config.json",
                                                 "train_log.jsonl"}


# --- two processes building the same cache entry --------------------------------------------------------------------
def _build_child(dest, log, pause, seen_path):
    "Build `dest` through cached_build with a slow builder; record what this process sees when it returns."
    from kwanzaa.loader import cached_build
    def build(tmp):
        with open(log, "a") as f: f.write(f"{os.getpid()}\n")
        for i in range(5):
            (Path(tmp) / f"shard-{i}.bin").write_bytes(bytes([i]) * 4096); time.sleep(pause / 5)
        (Path(tmp) / "config.json").write_text(json.dumps({"shards": 5}))
    d = cached_build(dest, build)
    Path(seen_path).write_text(json.dumps({p.name: p.stat().st_size for p in sorted(d.iterdir())}))


def _build(dest, log, pause, seen_path):
    import multiprocessing as mp
    p = mp.get_context("fork").Process(target=_build_child, args=(dest, log, pause, seen_path))
    p.start()
    return p


FULL = {"config.json": 13, **{f"shard-{i}.bin": 4096 for i in range(5)}}


def test_two_processes_building_the_model_cache_make_one_good_copy(tmp_path):
    dest, log = tmp_path / "models" / "smollm2-abc123", tmp_path / "builds.log"
    procs = [_build(dest, log, 1.0, tmp_path / f"seen-{i}.json") for i in range(2)]
    for p in procs: p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert [json.loads((tmp_path / f"seen-{i}.json").read_text()) for i in range(2)] == [FULL, FULL]   # both complete
    assert len(log.read_text().split()) == 1                    # built once
    assert sorted(p.name for p in dest.parent.iterdir()) == [".smollm2-abc123.lock", "smollm2-abc123"]


def test_a_killed_cache_build_leaves_no_temporary_copy(tmp_path):
    """A model-cache build killed with SIGKILL leaves no temporary sibling directory behind for ever (the next build
    clears it), so an interrupted conversion of the embedded model does not leave a ~270 MB bf16 copy."""
    dest, log = tmp_path / "models" / "smollm2-abc123", tmp_path / "builds.log"
    p = _build(dest, log, 30.0, tmp_path / "seen-killed.json")
    deadline = time.time() + 30
    while not list(dest.parent.glob(".smollm2-abc123.*/shard-0.bin")):
        assert p.is_alive() and time.time() < deadline
        time.sleep(0.02)
    p.kill(); p.join(10)
    assert p.exitcode == -signal.SIGKILL and not dest.exists()
    q = _build(dest, log, 0.0, tmp_path / "seen.json")
    q.join(60)
    assert q.exitcode == 0 and json.loads((tmp_path / "seen.json").read_text()) == FULL
    assert sorted(p.name for p in dest.parent.iterdir()) == [".smollm2-abc123.lock", "smollm2-abc123"]
