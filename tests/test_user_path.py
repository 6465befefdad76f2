"""The user's path on an ordinary machine (issue #23): where the cache goes, the modes of what a run writes, what Ctrl-C
says, which commands the messages suggest, what `kwanzaa presets` shows."""
import ast, json, os, re, stat, tempfile
from pathlib import Path

import pytest
from transformers import TrainerCallback

from kwanzaa.config import load_config
from kwanzaa.loader import cache_dir
from kwanzaa.records import atomic_write_json, chmod_default, umask_mode
from kwanzaa.trainer import TrainError, interrupted_message, train

REPO = Path(__file__).resolve().parents[1]
MESSAGES = [[{"role": "system", "content": "Answer from the passages as JSON."},
             {"role": "user", "content": f"[1] Note {i}\nThe number is {i}.\n\nQuestion: What is the number?"},
             {"role": "assistant", "content": json.dumps({"status": "answered", "citations": [1],
                                                          "answer": f"The number is {i} [1].", "unknowns": []})}]
            for i in range(4)]


def tiny_cfg(tiny, **over):
    base = {"model.base": str(tiny), "model.device": "cpu", "training.epochs": 1, "training.per_device_train_batch_size": 1,
            "training.gradient_accumulation_steps": 1, "training.save_steps": 100, "training.logging_steps": 1,
            "training.gradient_checkpointing": False, "training.torch_threads": 1, "training.warmup_ratio": 0}
    return load_config("lora", overrides={**base, **over})


@pytest.fixture
def umask_022():
    "Run the test under the usual umask 022, whatever the caller's."
    old = os.umask(0o022)
    yield
    os.umask(old)


# --- the cache directory ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env,want", [
    ({"KWANZAA_CACHE": "/big/kw", "XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"}, "/big/kw"),
    ({"KWANZAA_CACHE": "~/kw", "HOME": "/home/u"}, None),                      # ~ expands (against the real home)
    ({"XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/kwanzaa"),
    ({"KWANZAA_CACHE": "", "XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/kwanzaa"),   # empty means unset
    ({"XDG_CACHE_HOME": "relative/cache", "HOME": "/home/u"}, "/home/u/.cache/kwanzaa"),   # invalid per the XDG spec
    ({"XDG_CACHE_HOME": "", "HOME": "/home/u"}, "/home/u/.cache/kwanzaa"),
    ({"HOME": "/home/u"}, "/home/u/.cache/kwanzaa"),
])
def test_cache_dir_is_a_function_of_the_environment(env, want):
    got = cache_dir(env)
    assert got == (Path(want) if want else Path("~/kw").expanduser()), got


def test_cache_dir_reads_the_process_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("KWANZAA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "kwanzaa"
    monkeypatch.setenv("KWANZAA_CACHE", str(tmp_path / "kw"))
    assert cache_dir() == tmp_path / "kw"


# --- modes of what a run writes --------------------------------------------------------------------------------------
def _mode(p: Path) -> int: return stat.S_IMODE(p.stat().st_mode)


def test_chmod_default_gives_a_mkdtemp_tree_plain_modes(tmp_path, umask_022):
    t = Path(tempfile.mkdtemp(dir=tmp_path)); (t / "sub").mkdir(mode=0o700)
    fd, w = tempfile.mkstemp(dir=t / "sub"); os.close(fd)
    assert (_mode(t), _mode(Path(w))) == (0o700, 0o600)   # what tempfile makes
    chmod_default(t)
    assert [_mode(p) for p in (t, t / "sub", Path(w))] == [0o755, 0o755, 0o644]
    assert (umask_mode(), umask_mode(is_dir=True)) == (0o644, 0o755)


def test_atomic_writes_get_umask_modes_and_keep_an_existing_files_mode(tmp_path, umask_022):
    f = atomic_write_json(tmp_path / "new" / "metrics.json", {"n": 1})
    assert (_mode(f), _mode(f.parent)) == (0o644, 0o755)
    f.chmod(0o640)
    atomic_write_json(f, {"n": 2})
    assert _mode(f) == 0o640 and json.loads(f.read_text()) == {"n": 2}


def test_a_training_run_writes_plain_modes(tiny_model_dir, tmp_path, umask_022):
    """The adapter is built in a mkdtemp folder (0700) and safetensors writes weights 0600: the adapter, the checkpoints
    and every other file of the run must have the modes a plain mkdir/open gives (0755/0644 under umask 022)."""
    out = tmp_path / "run"
    res = train(tiny_cfg(tiny_model_dir, **{"training.max_steps": 2, "training.save_steps": 1}), out, MESSAGES)
    assert _mode(res.adapter_dir) == 0o755
    files = sorted(p for p in out.rglob("*") if p.is_file())
    names = {str(p.relative_to(out)) for p in files}
    assert {"adapter/adapter_model.safetensors", "checkpoints/checkpoint-2/adapter_model.safetensors", "manifest.json"} <= names
    assert {str(p.relative_to(out)): oct(_mode(p)) for p in files} == {n: "0o644" for n in names}
    assert {str(p.relative_to(out)): oct(_mode(p)) for p in out.rglob("*") if p.is_dir()} == \
        {str(p.relative_to(out)): "0o755" for p in out.rglob("*") if p.is_dir()}


def test_the_tiny_model_has_plain_modes(tmp_path, umask_022):
    from kwanzaa.loader import make_tiny_model
    d = make_tiny_model(tmp_path / "tiny")
    assert {p.name: oct(_mode(p)) for p in d.iterdir()} == {p.name: "0o644" for p in d.iterdir()}


# --- Ctrl-C during training -------------------------------------------------------------------------------------------
class CtrlC(TrainerCallback):
    "Raises KeyboardInterrupt at the end of optimizer step `at`, as Ctrl-C there would."
    def __init__(self, at): self.at = at
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.at: raise KeyboardInterrupt


def test_interrupt_before_the_first_checkpoint_says_training_starts_over(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainError) as e: train(tiny_cfg(tiny_model_dir), out, MESSAGES, callbacks=[CtrlC(1)])
    assert str(e.value) == ("training interrupted before the first checkpoint was saved; run the same command again "
                            "(or train(...) with resume=True) to start over"), str(e.value)
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"


def test_interrupt_after_a_checkpoint_names_it(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainError) as e:
        train(tiny_cfg(tiny_model_dir, **{"training.save_steps": 1}), out, MESSAGES, callbacks=[CtrlC(2)])
    last = out / "checkpoints" / "checkpoint-1"   # step 2 is saved after its on_step_end
    assert str(e.value) == f"training interrupted; resume from {last}: run the same command again (or train(...) with resume=True)"
    assert interrupted_message(last) == str(e.value)
    assert json.loads((out / "manifest.json").read_text())["last_checkpoint"] == str(last)


# --- the commands that messages suggest exist ----------------------------------------------------------------------
def _suggested_commands(path: Path) -> list[tuple[int, str]]:
    "`kwanzaa WORD [WORD]` written as a command (after a backtick or an opening parenthesis) in the module's strings."
    pat = re.compile(r"(?<=[`(])kwanzaa ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")
    out = []
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            out += [(n.lineno, m.group(0)) for m in pat.finditer(n.value)]
    return out


MODULES = sorted(p.name for p in (REPO / "kwanzaa").glob("*.py") if p.name != "_modidx.py")


@pytest.mark.parametrize("module", MODULES)
def test_messages_suggest_only_commands_that_exist(module):
    from kwanzaa.cli import parser as _parser
    from kwanzaa.pipeline import _KINDS
    subs = next(a for a in _parser()._actions if a.dest == "verb").choices
    kinds = {*_KINDS, "plan"}
    bad = [(line, cmd) for line, cmd in _suggested_commands(REPO / "kwanzaa" / module)
           if cmd.split()[1] not in subs or (cmd.split()[1] == "run" and len(cmd.split()) > 2 and cmd.split()[2] not in kinds)]
    assert bad == [], f"kwanzaa/{module}: {bad}; the commands are: {', '.join(subs)} (run {'/'.join(sorted(kinds))})"


# --- progress lines from the training log ------------------------------------------------------------------------------
def test_progress_lines_of_a_hand_written_train_log(tmp_path):
    from kwanzaa.pipeline import progress_line
    recs = [{"step": 1, "max_steps": 40, "epoch": 0.025, "loss": 2.71828, "grad_norm": 1.5, "learning_rate": 1e-3,
             "tokens_per_s": 812.46, "eta_s": 3725.0, "time": "2026-01-01T00:00:00+00:00"},
            {"step": 10, "max_steps": 40, "eval_loss": 1.5, "eval_runtime": 2.0},
            {"step": 11, "loss": 1.0},                                                        # no total, no speed, no ETA
            {"step": 40, "max_steps": 40, "train_loss": 1.2, "train_runtime": 61.0, "eta_s": 0.0},   # the closing record
            {"step": 12, "max_steps": 0, "loss": True}]                                       # not numbers: no line
    assert [progress_line(r) for r in recs] == [
        "[train] step 1/40 | loss 2.7183 | 812 tokens/s | ETA 1h02m", "[train] step 10/40 | validation loss 1.5000",
        "[train] step 11 | loss 1.0000", None, None]


def test_log_tail_prints_only_this_runs_complete_records_and_stops_with_the_step(tmp_path):
    import io, time
    from kwanzaa.pipeline import LogTail
    log, buf = tmp_path / "train_log.jsonl", io.StringIO()
    log.write_text('{"step": 7, "max_steps": 9, "loss": 3.0, "time": "2020-01-01T00:00:00+00:00"}\n')   # a resumed run's past
    with pytest.raises(RuntimeError, match="the notebook failed"):
        with LogTail(log, interval=0.05, out=buf) as tail:
            with open(log, "a") as f:
                f.write('{"step": 8, "max_steps": 9, "loss": 2.0, "tokens_per_s": 100, "eta_s": 65, "time": "2099-01-01T00:00:00+00:00"}\n')
                f.write('{"step": 9, "max_steps": 9, "lo')          # half written: not yet
                f.flush(); time.sleep(0.4)
                assert buf.getvalue() == "[train] step 8/9 | loss 2.0000 | 100 tokens/s | ETA 1m05s\n"
                f.write('ss": 1.5, "eta_s": 0}\nnot json\n')
            raise RuntimeError("the notebook failed")
    assert not tail._thread.is_alive()                               # stopped with the step, and read the last lines
    assert buf.getvalue().splitlines()[1:] == ["[train] step 9/9 | loss 1.5000 | ETA 0s"]
    with LogTail(tmp_path / "missing.jsonl", interval=0.01, out=buf): pass   # no log (yet): nothing, no error
    assert len(buf.getvalue().splitlines()) == 2
