"""The papermill pipeline end to end, in smoke mode (tiny offline model): the notebooks users run, run by CI."""
import json, os, stat, subprocess, sys
from pathlib import Path

import pytest

from kwanzaa.pipeline import RunError, run, sweep, read_run

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


def test_rerun_of_a_finished_run_is_a_no_op(smoke_run):
    out, _ = smoke_run
    before = (out / "train.ipynb").stat().st_mtime_ns
    p = _cli("run", "all", "--preset", "pilot", "--smoke", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("finished before with the same inputs, skipped") == 2
    assert (out / "train.ipynb").stat().st_mtime_ns == before


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


def test_failing_notebook_keeps_the_executed_copy_and_exits_nonzero(smoke_run, tmp_path):
    out, _ = smoke_run
    bad = tmp_path / "golden.jsonl"
    bad.write_text('{"id": "x"}\n')
    run_dir = tmp_path / "fail"
    p = _cli("run", "evaluate", "--preset", "pilot", "--smoke", "-p", f"golden_file={bad}",
             "-p", f"adapter_dir={out / 'adapter'}", "--out", str(run_dir))
    assert p.returncode == 2, p.stdout + p.stderr
    assert "the evaluate notebook failed in cell" in p.stderr and str(bad) in p.stderr
    nb = json.loads((run_dir / "evaluate.ipynb").read_text())
    assert any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", []))
    assert not (run_dir / "evaluate.done.json").exists()


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
