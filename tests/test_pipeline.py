"""The papermill pipeline end to end, in smoke mode (tiny offline model): the notebooks users run, run by CI."""
import json, os, re, signal, stat, subprocess, sys, time
from pathlib import Path

import pytest

from kwanzaa.pipeline import RunError, run, read_run
from kwanzaa.sweeps import sweep

REPO = Path(__file__).resolve().parents[1]
KWANZAA = [str(Path(sys.executable).parent / "kwanzaa")]  # the console script declared in settings.ini


def _cli(*args, cwd=None):
    return subprocess.run([*KWANZAA, *args], capture_output=True, text=True, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    p = _cli("run", "all", "--preset", "pilot", "--smoke", "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    return out, p


def test_smoke_run_leaves_a_complete_run_directory(smoke_run):
    out, p = smoke_run
    for f in ["train.config.yaml", "evaluate.config.yaml", "train.ipynb", "evaluate.ipynb", "train.done.json", "evaluate.done.json", "manifest.json",
              "train_log.jsonl", "adapter/adapter_config.json", "adapter/adapter_model.safetensors", "adapter/README.md",
              "eval/report.md", "eval/comparison.json", "eval/metrics.png", "eval/human_review.csv",
              "eval/base/metrics.json", "eval/adapter/metrics.json", "eval/adapter/predictions.jsonl"]:
        assert (out / f).exists(), f
    m = json.loads((out / "eval/adapter/metrics.json").read_text())
    for k in ["arm", "n", "json_parse_rate", "schema_compliance", "citation_coverage", "citation_precision",
              "refusal_precision", "refusal_recall", "key_fact_accuracy", "provenance"]:
        assert k in m, k
    assert m["arm"] == "adapter" and m["n"] == 4
    assert {"command", "config", "data_hash", "versions", "device", "git_commit"} <= set(m["provenance"])
    # the executed notebooks carry papermill's injected parameters
    nb = json.loads((out / "train.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    r = read_run(out)
    assert set(r["arms"]) == {"base", "adapter"} and r["train"]


def test_smoke_run_prints_progress_and_a_result_line_per_step(smoke_run):
    "The terminal shows each logged training step (step/total, loss, tokens/s, ETA) and one result line per step."
    out, p = smoke_run
    steps = re.findall(r"^\[train\] step (\d+)/2 \| loss \d+\.\d{4} \| [\d,]+ tokens/s \| ETA \d+s$", p.stdout, re.M)
    assert steps == ["1", "2"], p.stdout
    assert re.search(rf"^\[kwanzaa\] train: done in \d+(m\d\ds)?s? \| step 2 \| train loss \d+\.\d{{4}} \| "
                     rf"validation loss (n/a|\d+\.\d{{4}}) \| adapter {re.escape(str(out / 'adapter'))}$", p.stdout, re.M), p.stdout
    arm = r"JSON-valid \d+%, citation coverage \d+%, refusal precision (n/a|\d+%)"
    assert re.search(rf"^\[kwanzaa\] evaluate: done in \S+ \| base: {arm} \| adapter: {arm} \| "
                     rf"report {re.escape(str(out / 'eval' / 'report.md'))}$", p.stdout, re.M), p.stdout
    assert p.stdout.index("[train] step 2/2") < p.stdout.index("[kwanzaa] train:") < p.stdout.index("[kwanzaa] evaluate:")
    m = json.loads((out / "eval/adapter/metrics.json").read_text())   # the line reports the files' numbers
    assert f"adapter: JSON-valid {m['json_parse_rate']:.0%}, citation coverage {m['citation_coverage']:.0%}" in p.stdout


def test_rerun_of_a_finished_run_is_a_no_op(smoke_run):
    out, _ = smoke_run
    before = (out / "train.ipynb").stat().st_mtime_ns
    p = _cli("run", "all", "--preset", "pilot", "--smoke", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("finished before with the same inputs, skipped") == 2
    assert (out / "train.ipynb").stat().st_mtime_ns == before
    q = _cli("run", "all", "--preset", "pilot", "--smoke", "--out", str(out), "-q")
    assert (q.returncode, q.stdout) == (0, "")   # quiet: no progress and no result lines


def test_unknown_parameter_fails_before_anything_runs(tmp_path):
    out = tmp_path / "r"
    p = _cli("run", "train", "--preset", "pilot", "-p", "max_stepz=3", "--out", str(out))
    assert p.returncode == 2
    assert "unknown parameter 'max_stepz' for the train notebook (did you mean 'max_steps'?)" in p.stderr
    assert not out.exists()


def test_bad_config_value_and_unknown_preset(tmp_path):
    p = _cli("run", "train", "--preset", "pilot", "-p", "training.learning_rate=-1", "--out", str(tmp_path / "a"))
    assert p.returncode == 2 and "training.learning_rate" in p.stderr
    p = _cli("run", "train", "--preset", "plot", "--out", str(tmp_path / "b"))
    assert p.returncode == 2 and "plot" in p.stderr and "pilot" in p.stderr


def test_missing_dataset_file(tmp_path):
    p = _cli("run", "train", "--preset", "pilot", "-p", f"train_file={tmp_path}/nope.jsonl", "--out", str(tmp_path / "r"))
    assert p.returncode == 2
    assert p.stderr == (f"kwanzaa: error: data.train: dataset file '{tmp_path}/nope.jsonl' does not exist; pass an existing "
                        "JSONL file or a packaged split (train, validation, golden, pilot)\n")   # the shortcut names its config key
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_output_directory(tmp_path):
    ro = tmp_path / "ro"; ro.mkdir(); ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(RunError, match="cannot write to the output directory"):
        run("train", "pilot", out=ro / "run")


def test_output_directory_that_is_a_file(tmp_path):
    f = tmp_path / "file"; f.write_text("x")
    p = _cli("run", "train", "--preset", "pilot", "--out", str(f / "run"))
    assert p.returncode == 2 and "cannot write to the output directory" in p.stderr


def _failing_notebooks(d: Path) -> Path:
    "A folder whose train.ipynb prints a line, then fails in its third code cell, under the heading 'Data'."
    ids = iter(range(100))
    md = lambda s: {"cell_type": "markdown", "id": f"m{next(ids)}", "metadata": {}, "source": s}
    code = lambda s, tags=(): {"cell_type": "code", "execution_count": None, "id": f"c{next(ids)}", "metadata": {"tags": list(tags)},
                               "outputs": [], "source": s}
    cells = [md("# A train notebook that fails"), code("config = None\nout_dir = '.'\nresume = True", ["parameters"]),
             code("print('hello from the notebook')"), md("## Data\nThe data is read here."),
             code("# read the data\nraise ValueError('the data is bad')")]
    d.mkdir(parents=True, exist_ok=True)
    (d / "train.ipynb").write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}))
    return d


def test_failing_notebook_names_the_cell_keeps_the_executed_copy_and_exits_nonzero(tmp_path):
    nbs, run_dir = _failing_notebooks(tmp_path / "nbs"), tmp_path / "fail"
    p = _cli("run", "train", "--preset", "pilot", "--smoke", "--notebooks", str(nbs), "--out", str(run_dir))
    assert p.returncode == 2, p.stdout + p.stderr
    assert ("kwanzaa: error: the train notebook failed in code cell 3 of 3, under 'Data' (\"raise ValueError('the data is bad')\"): "
            "ValueError: the data is bad\n") in p.stderr, p.stderr   # where it is in the notebook, not an execution count
    assert f"the executed notebook with the error is at {run_dir / 'train.ipynb'}" in p.stderr
    nb = json.loads((run_dir / "train.ipynb").read_text())
    assert any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", []))
    assert not (run_dir / "train.done.json").exists()
    assert "hello from the notebook" not in p.stdout   # the cells' output stays in the notebook unless --log-output


def test_log_output_streams_the_cells_output(tmp_path):
    nbs = _failing_notebooks(tmp_path / "nbs")
    p = _cli("run", "train", "--preset", "pilot", "--smoke", "--notebooks", str(nbs), "--out", str(tmp_path / "r"), "--log-output")
    assert p.returncode == 2 and "failed in code cell 3 of 3" in p.stderr, p.stderr
    assert "hello from the notebook\n" in p.stdout and "Executing Cell 3" in p.stdout, p.stdout


def test_bad_training_line_is_refused_before_the_run_directory_exists(tmp_path):
    "One bad line in the file given as data.train: refused with file:line: field, before any kernel or directory."
    good = [json.loads(l) for l in (REPO / "kwanzaa/datasets/pilot.jsonl").read_text().splitlines()[:3]]
    bad = tmp_path / "train.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in [good[0], {**good[1], "persona": "pirate"}, good[2]]))
    out = tmp_path / "r"
    p = _cli("run", "train", "--preset", "pilot", "-p", f"data.train={bad}", "--out", str(out))
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.startswith(f"kwanzaa: error: data.train: {bad}:2: field 'persona': expected one of "), p.stderr
    assert p.stderr.count("\n") == 1 and not out.exists()
    g = tmp_path / "golden.jsonl"
    g.write_text(json.dumps({**good[0], "context": good[0]["context"][:-1] + ["no::such::chunk"]}) + "\n")   # not a supporting one
    p = _cli("run", "all", "--preset", "pilot", "-p", f"golden_file={g}", "--out", str(out))   # evaluation's file too
    assert p.returncode == 2 and p.stderr == (f"kwanzaa: error: data.golden: {g}:1: field 'context': unknown chunk id "
                                              "'no::such::chunk'\n"), p.stderr
    assert not out.exists()


def _interrupt(tmp_path, *params) -> tuple[subprocess.CompletedProcess, Path]:
    "`kwanzaa run train` for 300 smoke steps, Ctrl-C (SIGINT) once training has logged a step (and, given, a file exists)."
    out = tmp_path / "r"
    args = [*KWANZAA, "run", "train", "--preset", "pilot", "--smoke", "-p", "training.max_steps=300", *params, "--out", str(out)]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a background job ignores it
    deadline = time.time() + 300
    while not (out / "checkpoints" / "checkpoint-2").is_dir() if "training.save_steps=1" in params else \
            not (out / "train_log.jsonl").is_file() or not (out / "train_log.jsonl").read_text().strip():
        assert child.poll() is None and time.time() < deadline, child.communicate()
        time.sleep(0.1)
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=120)
    return subprocess.CompletedProcess(args, child.returncode, stdout, stderr), out


def test_ctrl_c_before_a_checkpoint_says_training_starts_over(tmp_path):
    p, out = _interrupt(tmp_path, "-p", "training.save_steps=1000")
    assert p.returncode == 130, p.stdout + p.stderr
    assert p.stderr.splitlines()[-1] == "kwanzaa: interrupted; run the same command again: no checkpoint was saved yet, so training starts over"
    assert not list((out / "checkpoints").glob("checkpoint-*"))


def test_ctrl_c_after_a_checkpoint_names_where_training_resumes(tmp_path):
    p, out = _interrupt(tmp_path, "-p", "training.save_steps=1")
    assert p.returncode == 130, p.stdout + p.stderr
    last = max((out / "checkpoints").glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[1]))
    assert p.stderr.splitlines()[-1] == f"kwanzaa: interrupted; run the same command again: training resumes from {last}", p.stderr


def test_presets_lists_each_with_what_it_is_for_and_v_shows_the_settings():
    from kwanzaa.config import list_presets, load_config
    p = _cli("presets")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [l.split()[0] for l in lines] == list_presets()
    for name, line in zip(list_presets(), lines):
        c = load_config(name)
        note = (REPO / "kwanzaa/presets" / f"{name}.yaml").read_text().splitlines()[0].removeprefix(f"# {name}:").strip()
        assert note and note in line, (name, line)   # the preset file's first comment line says what it is for
        assert f"[{c.adapter.method}, {c.model.base}, device {c.model.device}, " in line, line
    v = _cli("presets", "-v", "pilot")
    assert v.returncode == 0 and "name: pilot" in v.stdout and "learning_rate: 0.001" in v.stdout and "limit: 10" in v.stdout
    bad = _cli("presets", "pilott")
    assert bad.returncode == 2 and bad.stderr.startswith("kwanzaa: error: unknown preset(s) pilott; presets: cpu, "), bad.stderr


def test_sweep_writes_a_comparison(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("preset: pilot\nkind: train\ngrid:\n  lora.r: [4, 8]\n")
    rows = sweep(spec, tmp_path / "sweep", smoke=True)
    assert [r["run"] for r in rows] == ["r_4", "r_8"]
    for f in ["comparison.md", "comparison.json", "comparison.png"]:
        assert (tmp_path / "sweep" / f).exists()
    import yaml
    assert yaml.safe_load((tmp_path / "sweep/r_8/train.config.yaml").read_text())["lora"]["r"] == 8
    assert "| r_4 |" in (tmp_path / "sweep/comparison.md").read_text()


def test_parallel_sweep_selects_on_validation_with_a_calibrated_arm(tmp_path):
    "`jobs: 2` runs each combination in its own process; runs are scored on the validation split, the best is named."
    spec = tmp_path / "par.yaml"
    spec.write_text("preset: small-gpu\njobs: 2\narm: adapter+constrained+calibrated\n"
                    "params: [golden_file=validation, 'arms=[adapter+constrained, adapter+constrained+calibrated]']\n"
                    "grid:\n  lora.r: [4, 8]\n")
    p = _cli("sweep", str(spec), "--smoke", "--out", str(tmp_path / "sw"))
    assert p.returncode == 0, p.stdout + p.stderr
    comp = json.loads((tmp_path / "sw/comparison.json").read_text())
    assert comp["jobs"] == 2 and comp["failed"] == {}
    assert comp["selection"]["split"] == "validation" and comp["selection"]["best"] in ("r_4", "r_8")
    assert all(r["score"] is not None for r in comp["rows"])
    for r in ("r_4", "r_8"):
        d = tmp_path / "sw" / r
        assert (tmp_path / f"sw/{r}.log").exists()
        cal = json.loads((d / "adapter/calibration.json").read_text())   # the train notebook calibrated on validation
        assert cal["split"] == "package:validation" and 0 < cal["threshold"] < 1
        # issue #24: the notebook's own question is decided with the threshold it just fitted
        nb = json.loads((d / "train.ipynb").read_text())
        ask_cell = next(c for c in nb["cells"] if "Asker(model=model" in "".join(c["source"]))
        printed = "".join("".join(o.get("text", "")) for o in ask_cell["outputs"])
        assert f"refusal decision: calibrated threshold {cal['threshold']}" in printed, printed[:300]
        m = json.loads((d / "eval/adapter_constrained_calibrated/metrics.json").read_text())
        assert m["n"] == 4   # smoke: eval.limit=4 of the validation split
        man = json.loads((d / "manifest.json").read_text())
        assert man["command"].startswith(f"kwanzaa run all --preset small-gpu --out {d}")
    assert f"**{comp['selection']['best']}**" in (tmp_path / "sw/comparison.md").read_text()


def test_sweep_command_with_bundles_and_extra_parameters(tmp_path):
    "`kwanzaa sweep` with a named bundle of settings and -p for every run: one run, its config, the comparison."
    spec = tmp_path / "bundles.yaml"
    spec.write_text("preset: pilot\nkind: train\ngrid:\n  method:\n"
                    "    qlora: [adapter.method=qlora, training.optim=paged_adamw_8bit]\n")
    p = _cli("sweep", str(spec), "--smoke", "--out", str(tmp_path / "sw"), "-p", "lora.r=4")
    assert p.returncode == 0, p.stdout + p.stderr
    import yaml
    cfg = yaml.safe_load((tmp_path / "sw/method_qlora/train.config.yaml").read_text())
    assert (cfg["adapter"]["method"], cfg["training"]["optim"], cfg["lora"]["r"]) == ("qlora", "paged_adamw_8bit", 4)
    assert "| method_qlora |" in (tmp_path / "sw/comparison.md").read_text()


def test_sweep_bundle_that_is_not_key_value_is_refused_before_any_run(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("preset: pilot\ngrid:\n  method:\n    qlora: [adapter.method]\n")
    p = _cli("sweep", str(spec), "--smoke", "--out", str(tmp_path / "sw"))
    assert p.returncode != 0
    assert "sweep grid entry 'method', bundle 'qlora': give a list of 'key=value' strings" in p.stderr
    assert not (tmp_path / "sw" / "method_qlora").exists()


def test_plan_runs_the_gated_steps_and_falls_back_to_16bit_lora(tmp_path):
    "The seed's plan in smoke mode: the targets are missed, so pilot -> full -> rank 32 -> 16-bit LoRA fallback all run."
    out = tmp_path / "plan"
    p = _cli("run", "plan", "--preset", "small-gpu", "--smoke", "-p", "adapter.method=qlora", "-p",
             "training.optim=paged_adamw_8bit", "-p", "arms=[adapter]", "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    rep = json.loads((out / "decision.json").read_text())
    assert [s["step"] for s in rep["steps"]] == ["01-pilot", "02-full-r16", "03-full-r32", "04-lora-16bit"]
    import yaml
    method = lambda step: yaml.safe_load((out / step / "train.config.yaml").read_text())["adapter"]["method"]
    assert [method(s["step"]) for s in rep["steps"]] == ["qlora", "qlora", "qlora", "lora"]   # the plan's -p counts
    assert yaml.safe_load((out / "03-full-r32/train.config.yaml").read_text())["lora"]["r"] == 32
    assert "after the 16-bit LoRA fallback" in rep["decision"] and all(not s["gate"]["met"] for s in rep["steps"])
    assert "| 04-lora-16bit | small-gpu |" in (out / "decision.md").read_text()
    done = lambda step, kind: json.loads((out / step / f"{kind}.done.json").read_text())["seconds"]
    for s in rep["steps"]:   # a step's time is its run's own train + evaluate time, so a resumed plan keeps it
        assert s["seconds"] == pytest.approx(done(s["step"], "train") + done(s["step"], "evaluate"), abs=0.11)
    again = _cli("run", "plan", "--preset", "small-gpu", "--smoke", "-p", "adapter.method=qlora", "-p",
                 "training.optim=paged_adamw_8bit", "-p", "arms=[adapter]", "--out", str(out))
    assert again.returncode == 0, again.stdout + again.stderr
    rep2 = json.loads((out / "decision.json").read_text())
    assert [s["seconds"] for s in rep2["steps"]] == pytest.approx([s["seconds"] for s in rep["steps"]], abs=0.11)


def test_evaluate_calibrates_an_adapter_that_has_no_calibration(smoke_run, tmp_path):
    "A +calibrated arm on an adapter without calibration.json: the notebook calibrates it on validation first."
    import shutil
    out, _ = smoke_run
    run_dir = tmp_path / "cal"
    shutil.copytree(out / "adapter", run_dir / "adapter")
    (run_dir / "adapter/calibration.json").unlink(missing_ok=True)   # the pilot has no validation split: none was made
    p = _cli("run", "evaluate", "--preset", "small-gpu", "--smoke", "-p", "arms=[adapter+constrained+calibrated]",
             "--out", str(run_dir))
    assert p.returncode == 0, p.stdout + p.stderr
    cal = json.loads((run_dir / "adapter/calibration.json").read_text())
    assert cal["split"] == "package:validation" and 0 < cal["threshold"] < 1
    assert json.loads((run_dir / "eval/adapter_constrained_calibrated/metrics.json").read_text())["n"] == 4
