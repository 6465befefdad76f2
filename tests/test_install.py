"""The Colab install: one git URL everywhere, and `pip install kwanzaa` keeps Colab's torch, ipykernel and matplotlib."""
import json, os, re, shlex, shutil, socket, subprocess, sys
from configparser import ConfigParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_NBS = ("train.ipynb", "evaluate.ipynb")
# what Colab already has, at versions different from ours but inside our ranges
COLAB_HAS = {"torch": "2.5.1", "ipykernel": "6.17.1", "matplotlib": "3.8.0"}


def settings():
    cp = ConfigParser(delimiters=["="]); cp.read(ROOT / "settings.ini", encoding="utf-8")
    return cp["DEFAULT"]


def _name(req): return re.split(r"[\s<>=!~;\[@]", req, maxsplit=1)[0].lower().replace("_", "-")


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
    "A venv without pip whose site-packages holds stand-ins for Colab's installed torch, ipykernel and matplotlib."
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    py = root / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    for name, version in COLAB_HAS.items():
        d = site / f"{name}-{version}.dist-info"; d.mkdir()
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


def dry_run_installs(tmp_path, project) -> dict:
    "{name: version} that `pip install <project>` would install into the Colab look-alike (resolved from PyPI)."
    py = fake_colab_env(tmp_path / "colab")
    report = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--dry-run", "--quiet",
                        "--disable-pip-version-check", "--report", str(report), str(project)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
            for i in json.loads(report.read_text())["install"]}


needs_pypi = pytest.mark.skipif(not _pypi_reachable(), reason="pypi.org:443 is unreachable: the pip dry run resolves from PyPI")


@needs_pypi
def test_pip_install_keeps_colab_torch_ipykernel_matplotlib(tmp_path):
    installs = dry_run_installs(tmp_path, project_copy(tmp_path / "proj"))
    assert "kwanzaa" in installs and installs.get("transformers") == "5.24.0"   # it really resolved our stack
    replaced = {n: installs[n] for n in COLAB_HAS if n in installs}
    assert not replaced, f"pip would replace Colab's {replaced}"
    assert "papermill" not in installs and "jupyterlab" not in installs   # extras stay out of a plain install


@needs_pypi
def test_dry_run_would_catch_a_pin(tmp_path):
    "The check above is not vacuous: pinning matplotlib (as settings.ini once did) makes pip replace Colab's."
    text = (ROOT / "settings.ini").read_text(encoding="utf-8")
    pinned = re.sub(r"(?m)^(requirements = .*?)matplotlib\S*", r"\1matplotlib==3.11.2", text)
    assert pinned != text
    installs = dry_run_installs(tmp_path, project_copy(tmp_path / "proj", pinned))
    assert installs.get("matplotlib") == "3.11.2"
