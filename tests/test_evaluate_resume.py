"""An evaluation killed with SIGKILL mid-run resumes without redoing finished items and gives the same metrics."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

from kwanzaa.evaluate import METRICS, PREDICTIONS
from kwanzaa.loader import make_tiny_model

N = 8

SCRIPT = r'''
import sys, torch
torch.set_num_threads(1)
from kwanzaa.config import load_config
from kwanzaa.contract import Chunk
from kwanzaa.corpus import Corpus, load_notes
from kwanzaa.evaluate import evaluate

def notes_corpus():
    keys = ("doc_id", "title", "author", "year", "source_org", "license", "canonical_url", "namespace", "content_type")
    return Corpus([Chunk(chunk_id=f"{d['doc_id']}::chunk::0", text=d["text"], **{k: d[k] for k in keys})
                   for d in load_notes()], hash="notes")

def run(tiny, examples_path, out):
    cfg = load_config("cpu", overrides={"model.base": str(tiny), "eval.max_new_tokens": 100, "eval.batch_size": 1})
    return evaluate(cfg, examples_path, "base+constrained", out, corpus=notes_corpus(), command="test_evaluate_resume")

if __name__ == "__main__": run(*sys.argv[1:4])
'''


def _examples(corpus):
    from kwanzaa.contract import AnswerCore, PERSONAS
    from kwanzaa.examples import Example, Gold
    notes, out = corpus.chunks, []
    for i in range(N):
        ctx = [c.chunk_id for c in notes[i:i + 1 + i % 3]]
        ok = i % 4 != 3
        out.append(Example(
            id=f"q{i:02d}", persona=PERSONAS[i % 4], category="single_source" if ok else "refusal_irrelevant",
            question=f"What does the note titled {notes[i].title} say?", context=ctx,
            gold=Gold(status="answered" if ok else "refused", supporting=ctx[:1] if ok else [],
                      key_facts=[notes[i].title.split()[0]] if ok else []),
            target=AnswerCore(status="answered", citations=[1], answer="See [1].", unknowns=[]) if ok else
                   AnswerCore(status="refused", citations=[], answer="The passages do not say.", unknowns=[])))
    return out


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []


def _complete_lines(path):
    "Lines that end with a newline (a torn last line is not a finished item)."
    if not path.exists(): return []
    text = path.read_text()
    return text[:text.rfind("\n") + 1].splitlines()


def test_sigkill_then_resume(tmp_path):
    import importlib.util, torch
    from kwanzaa.examples import write_examples
    torch.set_num_threads(1)
    tiny = make_tiny_model(tmp_path / "tiny")
    script = tmp_path / "run_eval.py"
    script.write_text(SCRIPT)
    spec = importlib.util.spec_from_file_location("run_eval", script)
    run_eval = importlib.util.module_from_spec(spec); spec.loader.exec_module(run_eval)
    golden = write_examples(_examples(run_eval.notes_corpus()), tmp_path / "golden.jsonl")

    # an uninterrupted reference run (in this process)
    ref = tmp_path / "ref"
    ref_metrics = run_eval.run(tiny, golden, ref)
    assert ref_metrics["n"] == N

    # the same run in a subprocess, killed with SIGKILL after a few items
    run = tmp_path / "run"
    preds = run / PREDICTIONS
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg"}
    p = subprocess.Popen([sys.executable, str(script), str(tiny), str(golden), str(run)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while len(_complete_lines(preds)) < 2 and p.poll() is None and time.time() < deadline: time.sleep(0.005)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL, p.stderr.read().decode()[-2000:]
    before = _complete_lines(preds)
    assert 2 <= len(before) < N, f"the kill did not land mid-run: {len(before)} of {N} items finished"
    assert not (run / "metrics.json").exists()

    # resume: finished items are kept byte for byte and not generated again; the rest are added
    got = run_eval.run(tiny, golden, run)
    after = _lines(preds)
    assert after[:len(before)] == before
    ids = [json.loads(l)["id"] for l in after]
    assert len(ids) == N and sorted(ids) == [f"q{i:02d}" for i in range(N)]

    # same outputs and same metrics as the uninterrupted run
    out_ref = {json.loads(l)["id"]: json.loads(l)["raw_output"] for l in _lines(ref / PREDICTIONS)}
    assert {json.loads(l)["id"]: json.loads(l)["raw_output"] for l in after} == out_ref
    assert len(set(out_ref.values())) > 1  # the items differ, so equal metrics are not a coincidence of identical rows
    saved = json.loads((run / "metrics.json").read_text())
    for k in ("arm", "n", *METRICS, "counts", "error_kinds", "by_persona", "by_category", "thresholds"):
        assert saved[k] == ref_metrics[k] == got[k], k
    assert saved["json_parse_rate"] == 1.0  # constrained decoding: every output parses
    assert saved["provenance"]["data_hash"] and set(saved["provenance"]) >= {"command", "config", "versions", "device",
                                                                              "git_commit"}
    for f in ("report.md", "metrics.png", "by_persona.png"): assert (run / f).stat().st_size > 0
