"""README, the home notebook and CI agree: the two commands, and every generated result block."""
import json, re
from pathlib import Path

from kwanzaa.readme import update_readme

ROOT = Path(__file__).resolve().parent.parent


def _two_commands(text):
    block = re.search(r"```sh\n(.*?)```", text, re.S)[1]
    return [l.split("#")[0].strip() for l in block.strip().splitlines()]


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one():
    cmds = _two_commands((ROOT / "README.md").read_text())
    assert len(cmds) == 2
    main, tests = cmds
    assert main.startswith("bash .ci/setup && .venv/bin/kwanzaa run all --preset pilot")
    assert tests == "bash .ci/setup && bash .ci/test"
    assert tests in (ROOT / ".ci/run").read_text()


def test_home_notebook_shows_the_same_two_commands():
    nb = json.loads((ROOT / "nbs/index.ipynb").read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert _two_commands(text) == _two_commands((ROOT / "README.md").read_text())


def test_readme_results_are_generated_from_the_result_files():
    assert update_readme(ROOT / "README.md", ROOT, check=True), \
        "README's result blocks differ from outputs/: run `python -c 'from kwanzaa.readme import update_readme; update_readme()'`"
