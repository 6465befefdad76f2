"""The runner's integrity: a step re-runs exactly when what it depends on changed (data, config, the adapter), from
scratch when it must; a refused command changes nothing; one process per run directory; sweeps name runs uniquely
and validate every combination first; the recorded command is the `kwanzaa ...` line.

One smoke run directory (tiny offline model, one training step) is reused by the tests of this module, in order."""
import hashlib, json, os, shutil, subprocess, sys, time
from pathlib import Path

import pytest
import yaml

from kwanzaa.cli import main
from kwanzaa.pipeline import RunError, adapter_files
from kwanzaa.sweeps import sweep, sweep_runs
from kwanzaa.records import data_hash, file_sha256

REPO = Path(__file__).resolve().parents[1]
KWANZAA = [str(Path(sys.executable).parent / "kwanzaa")]   # the console script declared in settings.ini
PILOT = REPO / "kwanzaa" / "datasets" / "pilot.jsonl"
SKIPPED = "finished before with the same inputs, skipped"


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    for k in ("KWANZAA_COMMAND", "KWANZAA_PIPELINES"): env.pop(k, None)
    return env


def _cli(*args, timeout=600):
    return subprocess.run([*KWANZAA, *args], capture_output=True, text=True, timeout=timeout, env=_env())


def _main(capsys, *args) -> tuple[int, str, str]:
    "`kwanzaa ARGS` in this process (fast, for refusals); KWANZAA_COMMAND, which main() sets, is put back."
    saved = os.environ.get("KWANZAA_COMMAND")
    try: rc = main(list(args))
    finally:
        if saved is None: os.environ.pop("KWANZAA_COMMAND", None)
        else: os.environ["KWANZAA_COMMAND"] = saved
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _snapshot(d: Path, skip=()) -> dict:
    "path -> (mtime_ns, sha256) of every file under d."
    return {str(p.relative_to(d)): (p.stat().st_mtime_ns, file_sha256(p))
            for p in sorted(d.rglob("*")) if p.is_file() and p.name not in skip}


def _jsonl(p: Path) -> list[dict]:
    return [json.loads(l) for l in p.read_text().splitlines() if l.strip()]


class Run:
    "The module's run directory and the arguments every command into it shares."
    def __init__(self, out: Path, data: Path):
        self.out, self.data = out, data
        self.args = ["--smoke", "-p", "training.max_steps=1", "-p", f"data.train={data}", "--out", str(out)]


@pytest.fixture(scope="module")
def pilot_run(tmp_path_factory):
    """`kwanzaa run all` on a copy of the pilot data, started twice at once: A takes the run directory's lock, then B
    is started with the same command while A trains."""
    tmp = tmp_path_factory.mktemp("integrity")
    data = tmp / "data" / "train.jsonl"
    data.parent.mkdir()
    shutil.copy(PILOT, data)
    r = Run(tmp / "run", data)
    cmd = [*KWANZAA, "run", "all", *r.args]
    a = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    lock, deadline = r.out / ".kwanzaa.lock", time.time() + 300
    while not (lock.exists() and lock.read_text().strip()):
        assert a.poll() is None, a.communicate()
        assert time.time() < deadline, "A never took the lock"
        time.sleep(0.05)
    b = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    r.b = (b.wait(600), *b.communicate())
    r.a = (a.wait(600), *a.communicate())
    assert r.a[0] == 0, r.a[1] + r.a[2]
    return r


def test_two_processes_into_one_run_directory(pilot_run):
    "One process per run directory: the second fails with exit 2 naming the holder, the first completes, once."
    rc, out, err = pilot_run.b
    assert rc == 2, out + err
    assert err.startswith(f"kwanzaa: error: {pilot_run.out} is in use by process "), err
    assert "wait for it to finish, or choose another --out" in err
    rc, out, err = pilot_run.a
    assert rc == 0 and out.count("done in") == 2, out + err
    log = _jsonl(pilot_run.out / "train_log.jsonl")
    assert [e["step"] for e in log if "loss" in e] == [1]            # the one training step, logged once
    assert [e["step"] for e in log if "eval_loss" in e] == [1]
    assert [e["step"] for e in log if "train_loss" in e] == [1]          # one training, finished once
    assert (pilot_run.out / "eval" / "comparison.json").is_file()
    assert (pilot_run.out / ".kwanzaa.lock").read_text() == ""       # released



def test_the_kernel_shares_the_runner_lock_and_the_adapter_records_its_weights(pilot_run):
    "train() takes the run directory's lock: inside `kwanzaa run` the kernel shares it; the record holds the weights' hash."
    adapter = pilot_run.out / "adapter"
    rec = json.loads((adapter / "kwanzaa_adapter.json").read_text())
    assert rec["weights_sha256"] == file_sha256(adapter / "adapter_model.safetensors")
    assert (pilot_run.out / ".kwanzaa.lock").read_text() == ""   # released by its holder: no token left behind

def test_the_recorded_command_is_the_kwanzaa_command(pilot_run):
    "Manifest, metrics and done markers record the `kwanzaa ...` line, not the kernel's ipykernel_launcher argv."
    want = "kwanzaa run all " + " ".join(pilot_run.args)
    out = pilot_run.out
    assert json.loads((out / "manifest.json").read_text())["command"] == want
    for arm in ("base", "adapter"):
        assert json.loads((out / "eval" / arm / "metrics.json").read_text())["provenance"]["command"] == want
    assert json.loads((out / "eval" / "comparison.json").read_text()) is not None
    for step in ("train", "evaluate"):
        assert json.loads((out / f"{step}.done.json").read_text())["command"] == want
    for p in [out / "manifest.json", out / "run_config.json", *out.glob("eval/*/metrics.json")]:
        assert "ipykernel_launcher" not in p.read_text(), p


def test_changed_data_file_retrains_from_scratch_and_reevaluates(pilot_run):
    "Same command, one question of the data file edited: training re-runs without resuming, evaluation follows the adapter."
    out, data = pilot_run.out, pilot_run.data
    old_adapter = data_hash(adapter_files(out / "adapter"))
    assert (out / "checkpoints").is_dir()                             # something a wrong resume would pick up
    exs = [json.loads(l) for l in data.read_text().splitlines() if l.strip()]
    for ex in exs: ex["question"] += " (edited)"   # whichever example the one smoke step draws, it changed
    data.write_text("".join(json.dumps(ex) + "\n" for ex in exs))
    p = _cli("run", "all", *pilot_run.args)
    assert p.returncode == 0, p.stdout + p.stderr
    assert SKIPPED not in p.stdout and p.stdout.count("done in") == 2, p.stdout
    m = json.loads((out / "manifest.json").read_text())
    assert m["resumed_from"] is None and m["status"] == "complete"
    assert m["data_files"][str(data)] == file_sha256(data) == hashlib.sha256(data.read_bytes()).hexdigest()
    done = json.loads((out / "train.done.json").read_text())
    assert done["parts"]["inputs"]["data.train"] == file_sha256(data)
    assert done["parameters"]["resume"] is False
    new_adapter = data_hash(adapter_files(out / "adapter"))
    assert new_adapter != old_adapter
    ev = json.loads((out / "evaluate.done.json").read_text())
    assert ev["parts"]["inputs"]["adapter"] == new_adapter           # evaluation re-ran for the new adapter, unforced


def test_forced_evaluation_with_a_new_setting_regenerates_predictions(pilot_run):
    out = pilot_run.out
    train_cfg = _snapshot(out, skip=())["train.config.yaml"]
    p = _cli("run", "evaluate", "--force", "-p", "eval.max_new_tokens=4", *pilot_run.args)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[kwanzaa] evaluate: done in" in p.stdout, p.stdout
    for arm in ("base", "adapter"):
        preds = _jsonl(out / "eval" / arm / "predictions.jsonl")
        assert len(preds) == 4 and all(r["n_new_tokens"] <= 4 for r in preds), [r["n_new_tokens"] for r in preds]
        m = json.loads((out / "eval" / arm / "metrics.json").read_text())
        assert m["provenance"]["config"]["eval"]["max_new_tokens"] == 4
    assert yaml.safe_load((out / "evaluate.config.yaml").read_text())["eval"]["max_new_tokens"] == 4
    assert _snapshot(out)["train.config.yaml"] == train_cfg           # training did not run: its config is untouched


def test_forced_rerun_after_deleting_checkpoints_retrains_and_reevaluates(pilot_run):
    out = pilot_run.out
    old_adapter = data_hash(adapter_files(out / "adapter"))
    shutil.rmtree(out / "checkpoints")
    p = _cli("run", "all", "--force", "-p", "training.learning_rate=5e-3", *pilot_run.args)
    assert p.returncode == 0, p.stdout + p.stderr
    assert SKIPPED not in p.stdout and p.stdout.count("done in") == 2, p.stdout
    m = json.loads((out / "manifest.json").read_text())
    assert m["resumed_from"] is None and m["config"]["training"]["learning_rate"] == 5e-3
    assert (out / "checkpoints").is_dir()
    new_adapter = data_hash(adapter_files(out / "adapter"))
    assert new_adapter != old_adapter
    assert json.loads((out / "evaluate.done.json").read_text())["parts"]["inputs"]["adapter"] == new_adapter
    for arm in ("base", "adapter"):
        prov = json.loads((out / "eval" / arm / "metrics.json").read_text())["provenance"]
        assert prov["config"]["training"]["learning_rate"] == 5e-3
        assert prov["config"]["eval"]["max_new_tokens"] == 24          # the forced run's own setting, not the last one
    assert yaml.safe_load((out / "train.config.yaml").read_text())["training"]["learning_rate"] == 5e-3


def test_config_files_are_written_only_by_steps_that_run(pilot_run, capsys):
    out = pilot_run.out
    before = _snapshot(out)
    # refused commands (a misspelled config key, a misspelled notebook parameter) touch nothing, not even the lock
    rc, _, err = _main(capsys, "run", "all", "-p", "training.learning_rat=1e-3", *pilot_run.args)
    assert rc == 2 and err.startswith("kwanzaa: error: bad configuration:") and "learning_rat" in err, err
    rc, _, err = _main(capsys, "run", "all", "-p", "max_stepz=3", *pilot_run.args)
    assert rc == 2 and "unknown parameter 'max_stepz' for the train/evaluate notebook (did you mean 'max_steps'?)" in err
    assert _snapshot(out) == before
    # the same command as the last run: both steps skipped, no file rewritten
    rc, stdout, err = _main(capsys, "run", "all", "-p", "training.learning_rate=5e-3", *pilot_run.args)
    assert rc == 0 and stdout.count(SKIPPED) == 2, stdout + err
    # a different training setting with only evaluation to run: evaluation does not depend on it and train.config.yaml
    # (what training ran with) is not rewritten
    rc, stdout, err = _main(capsys, "run", "evaluate", "-p", "training.learning_rate=1e-3", *pilot_run.args)
    assert rc == 0 and f"[kwanzaa] evaluate: {SKIPPED}" in stdout, stdout + err
    after = _snapshot(out, skip=(".kwanzaa.lock",))
    assert after == {k: v for k, v in before.items() if k != ".kwanzaa.lock"}
    assert yaml.safe_load((out / "train.config.yaml").read_text())["training"]["learning_rate"] == 5e-3


# --- refusals that create nothing -----------------------------------------------------------------------------------
def test_out_root_is_refused(capsys):
    before = sorted(p.name for p in Path("/").iterdir())
    rc, _, err = _main(capsys, "run", "all", "--smoke", "--out", "/")
    assert rc == 2 and err == ("kwanzaa: error: --out '/' is the filesystem root; give a folder of its own, "
                               "e.g. outputs/runs/NAME\n"), err
    assert sorted(p.name for p in Path("/").iterdir()) == before


def test_out_folder_of_other_files_is_refused(tmp_path, capsys):
    d = tmp_path / "photos"; d.mkdir(); (d / "cat.jpg").write_bytes(b"\xff\xd8")
    rc, _, err = _main(capsys, "run", "train", "--smoke", "--out", str(d))
    assert rc == 2 and err == (f"kwanzaa: error: the output directory {d} already holds other files and no kwanzaa run; "
                               "choose an empty or new --out\n"), err
    assert [p.name for p in d.iterdir()] == ["cat.jpg"]


def test_evaluate_without_an_adapter_is_refused(tmp_path, capsys):
    d = tmp_path / "empty"; d.mkdir()
    rc, _, err = _main(capsys, "run", "evaluate", "--smoke", "--out", str(d))
    assert rc == 2 and err.startswith(f"kwanzaa: error: no adapter to evaluate in {d / 'adapter'}: train one first"), err
    assert list(d.iterdir()) == []


# --- sweeps ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key,values", [("data.train", ["v1/train.jsonl", "v2/train.jsonl"]), ("lora.r", [8, "8"]),
                                        ("model.base", ["a:b", "a_b"]), ("lora.r", [4, 8])])
def test_sweep_run_names_are_distinct_and_stable(key, values):
    runs = sweep_runs({"grid": {key: values}})
    names = [n for n, _ in runs]
    assert len(set(names)) == len(values), names
    assert not any(c in n for n in names for c in "/:\\"), names
    assert sweep_runs({"grid": {key: values}}) == runs
    assert [ps for _, ps in runs] == [[f"{key}={v if isinstance(v, str) else json.dumps(v)}"] for v in values]


def test_sweep_run_names_of_plain_values_stay_readable():
    assert [n for n, _ in sweep_runs({"grid": {"lora.r": [4, 8], "training.learning_rate": [1e-4]}})] == \
        ["r_4-learning_rate_0.0001", "r_8-learning_rate_0.0001"]


@pytest.mark.parametrize("bad,message", [("max_stepz=1", "unknown parameter 'max_stepz' for the train notebook (did you mean 'max_steps'?)"),
                                         ("lora.rr=8", "bad configuration:")])
def test_sweep_with_a_bad_last_bundle_fails_before_any_run(tmp_path, bad, message):
    spec = tmp_path / "grid.yaml"
    spec.write_text(f"preset: pilot\nkind: train\ngrid:\n  method:\n    a: [lora.r=4]\n    b: [lora.r=8, {bad}]\n")
    with pytest.raises(RunError) as e: sweep(spec, tmp_path / "sw", smoke=True)
    assert str(e.value).startswith("sweep run method_b: ") and message in str(e.value), str(e.value)
    assert not (tmp_path / "sw").exists()
