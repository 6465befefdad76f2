"""Issue #27: every entry point keeps the run's promises (lock, fingerprint, redaction, bounded YAML, checked caches,
an evaluation that writes only inside its own run directory, a sweep folder that resumes). One test per numbered
defect, each failing on the code before the fix; then the weak items."""
import json, os, subprocess, sys, time, warnings
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from conftest import wait_for_file  # noqa: E402

TOKEN = "hf_" + "Ab3" * 12  # a token shape (never a real one)
ROOT = Path(__file__).resolve().parent.parent


def _env(**kw):
    "The environment of a process that this test starts, not sharing any lock this process holds."
    env = {k: v for k, v in os.environ.items() if k != "KWANZAA_RUN_LOCKS"}
    env |= {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")} | kw
    return env


def _hold_lock(run_dir: Path, tmp_path: Path):
    "A separate process (like `kwanzaa run train`) holding the run directory's lock until killed."
    ready = tmp_path / "held"
    code = ("import sys, time; from pathlib import Path; from kwanzaa.records import RunLock\n"
            f"with RunLock({str(run_dir)!r}, 'train'):\n    Path({str(ready)!r}).touch(); time.sleep(120)\n")
    p = subprocess.Popen([sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for_file(ready, p, 60)
    return p


# --- 1. kwanzaa trainer takes the run directory's lock ------------------------------------------------------------
def test_trainer_command_is_refused_while_a_run_holds_the_directory(tmp_path, tiny_model_dir):
    run = tmp_path / "run"; (run / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (run / "run_config.json").write_text('{"mine": true}\n')
    (run / "checkpoints" / "checkpoint-1" / "trainer_state.json").write_text("{}")
    (run / "train_log.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".kwanzaa.lock"}
    holder = _hold_lock(run, tmp_path)
    try:
        r = subprocess.run([sys.executable, "-m", "kwanzaa", "trainer", "--preset", "pilot", "-p", f"model.base={tiny_model_dir}",
                            "-p", "training.max_steps=1", "-p", "data.limit=2", "-p", "training.max_seq_length=4096", "--out", str(run), "--restart"],
                           env=_env(), capture_output=True, text=True, timeout=600, cwd=ROOT)
    finally: holder.kill(); holder.wait()
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "is in use by process" in r.stderr and "train" in r.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".kwanzaa.lock"} == before


def test_a_process_started_by_the_lock_holder_shares_the_lock(tmp_path):
    from kwanzaa.records import RunLock, RunLockedError
    run = tmp_path / "run"
    code = f"from kwanzaa.records import RunLock\nwith RunLock({str(run)!r}, 'training'): print('in')"
    with RunLock(run, "train"):
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))   # the papermill kernel's case
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    assert child.returncode == 0 and child.stdout.strip() == "in", child.stderr[-2000:]
    assert other.returncode != 0 and "is in use by process" in other.stderr
    assert "KWANZAA_RUN_LOCKS" not in os.environ   # released: no longer passed on
    with RunLock(run): pass


# --- 2. calibration.json (and the validation file) are part of the fingerprints -----------------------------------
def test_recalibrating_changes_the_evaluate_fingerprint(tmp_path):
    from kwanzaa.config import load_config
    from kwanzaa.pipeline import step_fingerprint
    from kwanzaa.records import changed_parts
    adapter = tmp_path / "adapter"; adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}"); (adapter / "adapter_model.safetensors").write_bytes(b"w")
    (adapter / "calibration.json").write_text(json.dumps({"threshold": 0.4}))
    cfg = load_config("pilot")
    fp1, p1 = step_fingerprint("evaluate", cfg, {}, adapter)
    (adapter / "calibration.json").write_text(json.dumps({"threshold": 0.6}))
    fp2, p2 = step_fingerprint("evaluate", cfg, {}, adapter)
    assert fp1 != fp2 and changed_parts(p1, p2) == ["inputs.calibration"]
    (adapter / "calibration.json").unlink()
    assert step_fingerprint("evaluate", cfg, {}, adapter)[1]["inputs"]["calibration"] is None


def test_the_training_fingerprint_covers_the_validation_file(tmp_path):
    from kwanzaa.config import load_config
    from kwanzaa.examples import dataset_path
    from kwanzaa.pipeline import step_fingerprint
    from kwanzaa.records import changed_parts
    val = tmp_path / "val.jsonl"; val.write_bytes(dataset_path("validation").read_bytes())
    cfg = load_config("pilot", overrides=[f"data.validation={val}"])
    fp1, p1 = step_fingerprint("train", cfg, {})
    val.write_text("\n".join(val.read_text().splitlines()[:-1]) + "\n")   # one example fewer, same path
    fp2, p2 = step_fingerprint("train", cfg, {})
    assert fp1 != fp2 and changed_parts(p1, p2) == ["inputs.data.validation"]


# --- 3 and 4. a sweep folder resumes; a token in a sweep spec is never written -----------------------------------
def test_sweep_folder_resumes_and_never_writes_a_token(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps({"preset": "pilot", "kind": "train", "jobs": 2,
                                "params": ["data.train=/nonexistent/train.jsonl"],   # each run fails fast, in its own process
                                "grid": {"model.revision": [TOKEN, "main"]}}))
    out = tmp_path / "sweep"
    code = f"from kwanzaa.cli import main; import sys; sys.exit(main(['sweep', {str(spec)!r}, '--out', {str(out)!r}]))"
    for attempt in range(2):   # the second time: the folder of a finished (here: failed) sweep
        r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert r.returncode == 2 and "sweep runs failed" in r.stderr, (attempt, r.stderr[-2000:])
        assert "already holds other files" not in r.stderr and TOKEN not in r.stdout + r.stderr
    names = [str(p.relative_to(out)) for p in out.rglob("*")]
    assert not [n for n in names if TOKEN in n] and "revision_redacted.log" in names
    for p in out.rglob("*"):
        if p.is_file(): assert TOKEN.encode() not in p.read_bytes(), p
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["spec"]["grid"]["model.revision"] == ["***", "main"]


def test_tokens_glued_to_word_characters_are_redacted():
    from kwanzaa.records import redact
    from kwanzaa.sweeps import sweep_runs
    assert redact(f"r_2-revision_{TOKEN}") == "r_2-revision_***"
    assert redact(f"{TOKEN}_v2") == "***_v2"   # -p hub_repo=${T}_v2 reaches the model card as ***_v2
    assert redact("task-" + "a" * 30) == "task-" + "a" * 30   # 'sk-' inside a word is not a token
    assert [n for n, _ in sweep_runs({"grid": {"model.revision": [TOKEN]}})] == ["revision_redacted"]


# --- 5. a YAML bomb in a sweep spec is refused by the bounded loader ---------------------------------------------
@pytest.mark.parametrize("text", [
    'params: [&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"], ' + ", ".join(   # anchors where a spec allows them
        f"&{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")) + "]\ngrid: {lora.r: *i}\n",
    "grid: " + "[" * 20000 + "]" * 20000 + "\n"])
def test_yaml_bomb_in_a_sweep_spec_is_refused_quickly(tmp_path, text):
    spec = tmp_path / "bomb.yaml"; spec.write_text(text)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
            f"from kwanzaa.cli import main; sys.exit(main(['sweep', {str(spec)!r}, '--out', {str(tmp_path / 'o')!r}]))")
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"{spec}:" in r.stderr and ("YAML bomb" in r.stderr or "nested deeper than" in r.stderr), r.stderr[-2000:]
    assert "Traceback" not in r.stderr and time.time() - t0 < 60


def test_every_yaml_the_pipeline_reads_goes_through_the_bounded_loader(tmp_path):
    from kwanzaa.pipeline import RunError, read_run, split_params
    with pytest.raises(RunError, match="nested deeper than"): split_params(["arms=" + "[" * 5000 + "]" * 5000])
    (tmp_path / "train.config.yaml").write_text("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdef", "bcdefg")))
    with pytest.raises(RunError, match="YAML bomb"): read_run(tmp_path)


# --- 6. a damaged BM25 index cache is detected and rebuilt ---------------------------------------------------------
def test_bit_flips_in_the_index_cache_are_detected(tmp_path):
    from conftest import notes_corpus
    from kwanzaa.corpus import Corpus, Retriever
    base = notes_corpus()
    corpus = lambda: Corpus(base.chunks, base.hash, cache_dir=tmp_path)
    q = "When is Kwanzaa celebrated?"
    fresh = Retriever(Corpus(base.chunks, "fresh"))
    Retriever(corpus())   # saves the index
    saved = next(tmp_path.glob("*.bm25-*"))
    arr = saved / "data.csc.index.npy"
    b = bytearray(arr.read_bytes()); header = len(b) - 4 * len(fresh._bm25.scores["data"])
    for i in range(header, len(b), 7): b[i] ^= 0x5A   # bit flips in the array, the header intact
    arr.write_bytes(bytes(b))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = Retriever(corpus())
    assert any("data.csc.index.npy does not match its sha256" in str(x.message) for x in w)
    assert [c.chunk_id for c, _ in r.search(q, k=4)] == [c.chunk_id for c, _ in fresh.search(q, k=4)]
    assert Retriever(corpus()).scores(q).tolist() == fresh.scores(q).tolist()   # the rebuilt index was saved intact


# --- 7. an evaluation writes only inside its own run directory ----------------------------------------------------
def _failing_notebooks(d: Path) -> Path:
    import nbformat
    d.mkdir()
    for step in ("train", "evaluate"):
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
                                                "language_info": {"name": "python"}})
        params = nbformat.v4.new_code_cell("out_dir = None\nconfig = None\neval_dir = 'eval'\nadapter_dir = None\nresume = True")
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell("raise SystemExit('this notebook must not run')")]
        nbformat.write(nb, d / f"{step}.ipynb")
    return d


def test_eval_dir_outside_the_run_directory_is_refused(tmp_path):
    from kwanzaa.config import load_config
    from kwanzaa.pipeline import RunError, run_step
    a_pred = tmp_path / "A" / "eval" / "base" / "predictions.jsonl"
    a_pred.parent.mkdir(parents=True); a_pred.write_text('{"id": "a"}\n')
    nbs = _failing_notebooks(tmp_path / "nbs")
    cfg = load_config("pilot", overrides=["eval.arms=[base]"])
    for bad in ("../A/eval", str(tmp_path / "A" / "eval"), "."):
        with pytest.raises(RunError, match="not a folder inside the run directory"):
            run_step("evaluate", tmp_path / "B", cfg, {"eval_dir": bad}, force=True, notebooks=nbs, quiet=True)
    assert a_pred.read_text() == '{"id": "a"}\n'


# --- weak items: a clear message where a traceback or a misleading one was ----------------------------------------
def test_damaged_markers_and_lock_files_are_not_a_traceback(tmp_path):
    from kwanzaa.config import load_config
    from kwanzaa.pipeline import RunError, run_step
    from kwanzaa.records import RunLock
    run = tmp_path / "B"; run.mkdir()
    (run / "train.done.json").write_bytes(b'{"fingerprint": "ab')   # cut off mid-write by a crash
    (run / "train.started.json").write_text("[1, 2]")
    (run / ".kwanzaa.lock").write_bytes(b"\xff\xfe\x00 not a holder \x80")
    with RunLock(run): pass
    nbs = _failing_notebooks(tmp_path / "nbs")
    with pytest.raises(RunError, match="the train notebook failed"):   # the damaged markers count as absent: the step runs
        run_step("train", run, load_config("pilot"), {}, notebooks=nbs, quiet=True)
    assert not (run / "train.done.json").exists()


@pytest.mark.parametrize("out, message", [
    ("x" * 300, "cannot use the output directory"), (f"outputs/runs/{TOKEN}", "looks like a token"),
    ("LOOP", "cannot use the output directory")])
def test_unusable_out_folders_are_refused_clearly(tmp_path, out, message):
    from kwanzaa.pipeline import RunError, check_out_dir
    (tmp_path / "LOOP").symlink_to(tmp_path / "LOOP")
    with pytest.raises(RunError, match=message) as e: check_out_dir(tmp_path / out)
    assert TOKEN not in str(e.value)


@pytest.mark.parametrize("params", [[1, {"a": "b"}], "training.epochs=1", ["training.epochs"]])
def test_sweep_params_must_be_key_value_strings(params):
    from kwanzaa.pipeline import RunError
    from kwanzaa.sweeps import sweep_runs
    with pytest.raises(RunError, match="sweep params .*give a list of 'key=value' strings"):
        sweep_runs({"params": params, "grid": {"lora.r": [8]}})


def test_adapter_dir_that_is_a_file_or_a_loop_is_named_so(tmp_path):
    from kwanzaa.pipeline import RunError, run
    f = tmp_path / "adapter.txt"; f.write_text("x")
    loop = tmp_path / "loop"; loop.symlink_to(loop)
    with pytest.raises(RunError, match="is a file"):
        run("evaluate", "pilot", [f"adapter_dir={f}"], tmp_path / "r1", quiet=True)
    with pytest.raises(RunError, match="symlink loop"):
        run("evaluate", "pilot", [f"adapter_dir={loop}"], tmp_path / "r2", quiet=True)


def test_held_out_check_compares_content_and_questions_not_paths(tmp_path):
    from kwanzaa.config import load_config
    from kwanzaa.examples import DataError, dataset_path, training_examples
    from kwanzaa.pipeline import RunError, check_inputs
    copy = tmp_path / "mine.jsonl"; copy.write_bytes(dataset_path("golden").read_bytes())
    with pytest.raises(RunError, match="has the same content as package:golden"):
        check_inputs(load_config("pilot", overrides=[f"data.train={copy}"]), ("train",))
    with pytest.raises(DataError, match="has the same content as package:golden"):
        training_examples(load_config("pilot", overrides=[f"data.train={copy}"]))   # kwanzaa trainer's door
    gold = json.loads(dataset_path("golden").read_text().splitlines()[3])
    for key in ("train", "validation"):   # the leak check covers both splits
        leaky = tmp_path / f"{key}.jsonl"
        leaky.write_text(dataset_path(key).read_text() + json.dumps({**gold, "id": "mine-1"}) + "\n")
        n = len(leaky.read_text().splitlines())
        with pytest.raises(RunError, match=f"data.{key}: {leaky}:{n}: example 'mine-1': its question is package:golden's"):
            check_inputs(load_config("pilot", overrides=[f"data.{key}={leaky}"]), ("train",))


def test_a_mistyped_local_model_base_stops_before_the_notebook(tmp_path):
    from kwanzaa.config import load_config
    from kwanzaa.pipeline import RunError, check_inputs
    (tmp_path / "tiny-model").mkdir()
    with pytest.raises(RunError, match="does not exist \\(did you mean .*tiny-model"):
        check_inputs(load_config("pilot", overrides=[f"model.base={tmp_path / 'tiny-modle'}"]), ())


def test_a_failed_write_names_the_file(tmp_path):
    import errno
    from kwanzaa.pipeline import RunError, _disk_errors
    with pytest.raises(RunError, match=f"cannot write {tmp_path}/x.ipynb: No space left on device"):
        with _disk_errors(tmp_path): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x.ipynb"))


def test_damaged_adapter_weights_are_named_as_damage(tmp_path):
    "kwanzaa_adapter.json records the weights' sha256: a flipped byte is damage, never 'another base', and nothing runs."
    from kwanzaa.config import load_config
    from kwanzaa.pipeline import RunError, run_step
    from kwanzaa.records import ADAPTER_RECORD, adapter_weights_problem, file_sha256
    a = tmp_path / "B" / "adapter"; a.mkdir(parents=True)
    (a / "adapter_config.json").write_text("{}"); w = a / "adapter_model.safetensors"; w.write_bytes(bytes(range(256)) * 4)
    (a / ADAPTER_RECORD).write_text(json.dumps({"base": "embedded:smollm2", "weights_sha256": file_sha256(w)}))
    assert adapter_weights_problem(a) is None
    b = bytearray(w.read_bytes()); b[100] ^= 0x01; w.write_bytes(bytes(b))
    nbs = _failing_notebooks(tmp_path / "nbs")
    with pytest.raises(RunError, match=f"{w} is damaged: its sha256"):
        run_step("evaluate", tmp_path / "B", load_config("pilot"), {}, notebooks=nbs, quiet=True)
    w.write_bytes(bytes(b[:500]))   # truncated
    assert "is damaged" in adapter_weights_problem(a)


def test_an_over_long_example_is_named_by_file_line_and_id(tmp_path, tiny_model_dir):
    from kwanzaa.corpus import build_corpus
    from kwanzaa.examples import dataset_path, example_messages, load_examples
    from kwanzaa.loader import load_tokenizer
    from kwanzaa.trainer import TrainError, check_lengths
    lines = dataset_path("pilot").read_text().splitlines()[:2]
    long = json.loads(lines[1]) | {"id": "long-one", "question": "Why? " * 600}
    p = tmp_path / "train.jsonl"; p.write_text(lines[0] + "\n" + json.dumps(long) + "\n")
    corpus = build_corpus()
    msgs = [example_messages(e, corpus) for e in load_examples(p, corpus)]
    with pytest.raises(TrainError, match=f"1 of 2 training conversations are longer than .*: {p}:2 \\(long-one\\) \\("):
        check_lengths(load_tokenizer(tiny_model_dir), msgs, 2048)


def test_ctrl_c_prints_one_line_and_no_kernel_traceback(tmp_path):
    import signal
    out = tmp_path / "r"
    args = [str(Path(sys.executable).parent / "kwanzaa"), "run", "train", "--preset", "pilot", "--smoke", "-p", "training.max_steps=300",
            "-p", "training.save_steps=1000", "--out", str(out)]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))   # a background job ignores it
    deadline = time.time() + 300
    while not (out / "train_log.jsonl").is_file() or not (out / "train_log.jsonl").read_text().strip():
        assert child.poll() is None and time.time() < deadline, child.communicate()
        time.sleep(0.1)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130
    assert err == "kwanzaa: interrupted; run the same command again: no checkpoint was saved yet, so training starts over\n", err


def test_a_push_never_uploads_a_token(tmp_path, monkeypatch):
    "push_adapter refuses a repo id holding a token, and redacts the adapter folder before anything leaves (offline here)."
    from kwanzaa.publish import PublishError, push_adapter, update_model_card
    a = tmp_path / "adapter"; a.mkdir()
    (a / "notes.md").write_text(f"hub_repo = {TOKEN}_v2\n")   # written after training, by hand
    monkeypatch.setenv("HF_TOKEN", "hf_" + "Zz9" * 12); monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PublishError, match="holds what looks like a token") as e: push_adapter(a, f"me/{TOKEN}_v2")
    assert TOKEN not in str(e.value)
    with pytest.raises(Exception): push_adapter(a, "me/kwanzaa-adapter")   # offline: the hub call fails ...
    assert (a / "notes.md").read_text() == "hub_repo = ***_v2\n"   # ... after the folder was checked
    from kwanzaa.publish import _METRICS_START, _METRICS_END
    (a / "README.md").write_text(f"# card\n{_METRICS_START}\n{_METRICS_END}\n")
    update_model_card(a, {"m": 1.0}, title=f"run {TOKEN}_v2")
    assert TOKEN not in (a / "README.md").read_text()


def test_evaluate_never_calibrates_an_adapter_of_another_run(tmp_path):
    "An uncalibrated adapter from run A, evaluated from run B with a +calibrated arm: refused, and A is left as it was."
    from kwanzaa.pipeline import RunError, run
    a, b = tmp_path / "A", tmp_path / "B"
    run("train", "pilot", out=a, smoke=True, quiet=True)
    cal = a / "adapter" / "calibration.json"
    cal.unlink(missing_ok=True)
    before = sorted(p.name for p in (a / "adapter").iterdir())
    with pytest.raises(RunError) as e:
        run("evaluate", "pilot", [f"adapter_dir={a / 'adapter'}", "arms=[adapter+calibrated]"], b, smoke=True, quiet=True)
    assert "lies outside this run directory" in str(e.value), str(e.value)[-2000:]
    assert not cal.exists() and sorted(p.name for p in (a / "adapter").iterdir()) == before
