"""Runs anywhere: a fresh `git clone` of the repository at HEAD, with no sibling shared/ folder, runs the smoke pipeline
from inside the clone, and the notebooks import the clone's package (not the checkout the tests run from)."""
import json, os, shutil, subprocess, sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KWANZAA = str(Path(sys.executable).parent / "kwanzaa")   # the console script of this environment


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed: cannot clone the repository")
def test_a_fresh_clone_runs_the_smoke_pipeline(tmp_path):
    if not (REPO / ".git").exists(): pytest.skip(f"{REPO} is not a git checkout: nothing to clone")
    clone = tmp_path / "kwanzaa"                               # tmp_path/ has no shared/ next to the clone
    r = subprocess.run(["git", "-C", str(REPO), "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not (clone.parent / "shared").exists()
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k not in ("KWANZAA_COMMAND", "KWANZAA_PIPELINES", "KWANZAA_CACHE")}
    env.update(PYTHONPATH=str(clone), HF_HUB_OFFLINE="1", KWANZAA_CACHE=str(tmp_path / "cache"))

    probe = subprocess.run([sys.executable, "-c", "import kwanzaa, kwanzaa.pipeline as p; print(kwanzaa.__file__); "
                            "print(p.pipeline_dir())"], capture_output=True, text=True, cwd=clone, env=env, timeout=120)
    assert probe.returncode == 0, probe.stderr
    pkg_file, notebooks = probe.stdout.split("\n")[:2]
    assert Path(pkg_file).resolve() == (clone / "kwanzaa" / "__init__.py").resolve()
    assert Path(notebooks).resolve() == (clone / "nbs" / "pipelines").resolve()

    p = subprocess.run([KWANZAA, "run", "all", "--smoke", "-p", "training.max_steps=1", "--out", "outputs/runs/pilot"],
                       capture_output=True, text=True, cwd=clone, env=env, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    out = clone / "outputs" / "runs" / "pilot"
    for f in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "eval/comparison.json",
              "train.ipynb", "evaluate.ipynb"):
        assert (out / f).is_file(), f
    assert (tmp_path / "cache" / "smoke-model" / "config.json").is_file()   # the fresh cache was used
    # the kernel imported the clone's package: the packaged data it read lies in the clone, and the commit recorded is
    # the clone's HEAD
    m = json.loads((out / "manifest.json").read_text())
    # data paths are recorded package-relative (never an absolute path of the machine), and name the clone's own files
    from kwanzaa.records import file_sha256
    assert m["data_files"] and all(f.startswith("kwanzaa/") and file_sha256(clone / f) == h
                                   for f, h in m["data_files"].items()), m["data_files"]
    assert m["git_commit"] and m["git_commit"].startswith(head), (m["git_commit"], head)
    assert str(REPO) + "/kwanzaa" not in (out / "train.ipynb").read_text()
    ev = json.loads((out / "evaluate.done.json").read_text())
    assert (clone / ev["notebook"]).resolve() == (out / "evaluate.ipynb").resolve()   # relative to the clone
