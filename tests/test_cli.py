"""The one command line, `kwanzaa <verb>` (kwanzaa.cli): every verb's help, the configuration keys with their help,
real verbs end to end (in this process, as `python -m kwanzaa`, and under `accelerate launch -m kwanzaa`), exit codes."""
import os, re, subprocess, sys

import pytest

from kwanzaa.cli import VERBS, main
from kwanzaa.config import config_help, list_presets

ENV = dict(os.environ, HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
BENCH = ("one", "suite", "gen", "trainer", "launch", "shard-check", "cpu", "ask")


def _main(capsys, *argv):
    "(exit code, stdout, stderr) of kwanzaa.cli.main(argv) in this process (argparse's SystemExit included)."
    try: code = main(list(argv))
    except SystemExit as e: code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _words(text):
    "Text with whitespace collapsed (help is wrapped, textwrap may break after a hyphen)."
    return re.sub(r"-\s+", "-", " ".join(text.split()))


@pytest.mark.parametrize("argv", [[v, "--help"] for v in VERBS] + [["bench", b, "--help"] for b in BENCH] + [["--help"]])
def test_every_verb_has_help(capsys, argv):
    code, out, _ = _main(capsys, *argv)
    assert code == 0 and "usage:" in out, argv


def test_top_help_lists_every_verb(capsys):
    _, out, _ = _main(capsys, "--help")
    assert all(re.search(rf"^\s+{v}\b", out, re.M) for v in VERBS)


def test_config_help_lists_every_key_with_its_help(capsys):
    code, out, _ = _main(capsys, "config", "--help")
    assert code == 0
    rows = config_help()
    assert "training.learning_rate" in {r["key"] for r in rows}
    for r in rows:
        assert re.search(rf"^\s+{re.escape(r['key'])} \(", out, re.M), r["key"]
        assert r["help"] and _words(r["help"]) in _words(out), r["key"]   # the field's description, read from RunConfig
    lr = next(r for r in rows if r["key"] == "training.learning_rate")
    assert re.search(r"^\s+training\.learning_rate \(float", out, re.M) and _words(lr["help"]) in _words(out)


def test_config_verb_shows_one_section(capsys):
    code, out, _ = _main(capsys, "config", "lora")
    assert code == 0 and "lora.r (" in out and "training." not in out


def test_presets_verbose_carries_the_keys_help(capsys):
    code, out, _ = _main(capsys, "presets", "-v", "cpu")
    assert code == 0 and out.startswith("# cpu") and "learning_rate: 0.0003" in out
    lr = next(r for r in config_help() if r["key"] == "training.learning_rate")
    above = out.split("  learning_rate: 0.0003")[0].splitlines()   # the help is the comment right above the key
    assert _words(lr["help"]).split()[-1] in above[-1] and above[-1].lstrip().startswith("#")


def test_presets_end_to_end_as_python_m_kwanzaa():
    p = subprocess.run([sys.executable, "-m", "kwanzaa", "presets"], capture_output=True, text=True, env=ENV, timeout=120)
    assert p.returncode == 0, p.stderr
    assert [l.split()[0] for l in p.stdout.splitlines()] == list_presets()


def test_accelerate_launch_runs_the_module_with_its_arguments():
    "`accelerate launch -m kwanzaa <verb> ...` (the documented multi-GPU form) passes the verb and its options through."
    p = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
                        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                        "-m", "kwanzaa", "presets", "cpu"], capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1].startswith("cpu ")


def test_corpus_check_sources_end_to_end(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "kwanzaa", "corpus", *a], capture_output=True, text=True,
                                    env=ENV, timeout=300)
    r = run("export-sources", str(tmp_path))
    assert r.returncode == 0 and "wrote 18 source texts" in r.stdout, r.stderr
    (tmp_path / "us_constitution_1787.txt").write_text("We the People")
    r = run("check-sources", str(tmp_path))
    assert r.returncode == 1 and "us_constitution_1787.txt: sha256 mismatch" in r.stderr


@pytest.mark.parametrize("argv, code, message", [
    ([], 2, "required"),
    (["no-such-verb"], 2, "invalid choice"),
    (["presets", "no-such-preset"], 2, "kwanzaa: error: unknown preset(s) no-such-preset"),
    (["config", "trainin"], 2, "did you mean 'training'?"),
    (["bench", "one", "--shape", "tiny"], 2, "required"),
    (["bench", "launch", "--json", "x.json", "--run", "five"], 2, "invalid int value"),
    (["corpus", "check-sources", "/nonexistent/kwanzaa-texts"], 1, "does not exist"),
    (["run", "no-such-kind"], 2, "invalid choice"),
    (["trainer", "--preset", "qlora"], 2, "--out"),
])
def test_exit_codes_on_bad_input(capsys, argv, code, message):
    got, out, err = _main(capsys, *argv)
    assert got == code and message in err, (argv, got, err)


def test_data_check_specs_names_the_bad_line_and_exits_1(capsys, tmp_path):
    "`kwanzaa data check-specs FILE` end to end (without the token budget: no tokenizer needed): file:line, exit 1."
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "y", "persona": "teacher"}\n')
    code, out, _ = _main(capsys, "data", "--no-budget", "check-specs", str(bad))
    assert code == 1 and f"{bad}:1:" in out
