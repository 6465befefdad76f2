"""No token is ever written to a notebook, log, manifest or output.

1. Every file under outputs/ and every notebook under nbs/ (executed pipeline copies included) is scanned for
   token-shaped strings; a hit fails the test naming the file and the kind of token (never the token itself).
2. A real tiny training and evaluation run with HF_TOKEN (and the token on the command line) leaves the token in no
   file of its run directory."""
import json, random, re, string, sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]

TOKEN_PATTERNS = {
    "Hugging Face token": rb"hf_[A-Za-z0-9]{30,}",
    "OpenAI-style key": rb"sk-[A-Za-z0-9_-]{20,}",
    "GitHub token": rb"gh[pousr]_[A-Za-z0-9]{30,}",
    "AWS access key id": rb"AKIA[0-9A-Z]{16}",
    "bearer token": rb"Bearer [A-Za-z0-9._~+/=-]{20,}",
}
_TOKEN_RE = re.compile(b"|".join(b"(?P<k%d>%s)" % (i, p) for i, p in enumerate(TOKEN_PATTERNS.values())))
_KINDS = list(TOKEN_PATTERNS)
_BLOCK = 1 << 22


def token_hits(path) -> list[str]:
    "The kinds of token-shaped strings in a file (read in overlapping blocks, so large weight files are fine)."
    found, tail = set(), b""
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            for m in _TOKEN_RE.finditer(tail + block): found.add(_KINDS[int(m.lastgroup[1:])])
            tail = block[-256:]
    return sorted(found)


def scan(paths) -> list[str]:
    "'file: kinds' for every file with a token-shaped string."
    return [f"{p}: {', '.join(k)}" for p in paths if p.is_file() and (k := token_hits(p))]


def _scanned_files():
    files = [p for p in (REPO / "outputs").rglob("*") if p.is_file()] if (REPO / "outputs").exists() else []
    return files + sorted((REPO / "nbs").rglob("*.ipynb"))


def test_outputs_and_notebooks_hold_no_token():
    files = _scanned_files()
    assert any(p.suffix == ".ipynb" for p in files)   # the scan sees the notebooks
    assert scan(files) == []


def _fake(prefix, n, alphabet=string.ascii_letters + string.digits):
    rng = random.Random(prefix)
    return prefix + "".join(rng.choice(alphabet) for _ in range(n))


@pytest.mark.parametrize("token,kind", [(_fake("hf_", 34), "Hugging Face token"), (_fake("sk-", 40), "OpenAI-style key"),
                                        (_fake("ghp_", 36), "GitHub token"),
                                        (_fake("AKIA", 16, string.ascii_uppercase + string.digits), "AWS access key id"),
                                        ("Bearer " + _fake("", 32), "bearer token")], ids=lambda v: v.split()[0][:8])
def test_the_scanner_finds_each_kind_and_names_the_file(tmp_path, token, kind):
    clean, dirty = tmp_path / "clean.json", tmp_path / "sub" / "run.ipynb"
    clean.write_text('{"note": "hf_short, sk-1, Bearer tokens are described here"}')
    dirty.parent.mkdir()
    dirty.write_bytes(b"\0" * (_BLOCK - 5) + f'"{token}"'.encode())   # straddles a block boundary
    assert scan([clean, dirty]) == [f"{dirty}: {kind}"]


def test_a_run_with_a_token_in_the_environment_writes_it_nowhere(tiny_model_dir, tmp_path, monkeypatch):
    from kwanzaa.config import load_config
    from kwanzaa.contract import AnswerCore, Chunk
    from kwanzaa.corpus import Corpus, load_notes
    from kwanzaa.examples import Example, Gold, example_messages
    from kwanzaa.evaluate import evaluate
    from kwanzaa.trainer import train
    token = "hf_" + "".join(random.SystemRandom().choice(string.ascii_letters + string.digits) for _ in range(34))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"): monkeypatch.setenv(var, token)
    monkeypatch.setenv("KWANZAA_PROGRESS", "lines")
    monkeypatch.setattr(sys, "argv", ["kwanzaa", "run", "all", "--hub-token", token])

    keys = ("doc_id", "title", "author", "year", "source_org", "license", "canonical_url", "namespace", "content_type")
    corpus = Corpus([Chunk(chunk_id=f"{d['doc_id']}::chunk::0", text=d["text"], **{k: d[k] for k in keys})
                     for d in load_notes()[:4]], hash="notes")
    ctx = [c.chunk_id for c in corpus.chunks]
    examples = [Example(id=f"q{i}", persona="educator", category="single_source", question=f"What does note {i} say?",
                        context=ctx[i:i + 2], gold=Gold(status="answered", supporting=[ctx[i]], key_facts=[]),
                        target=AnswerCore(status="answered", citations=[1], answer=f"Note {i} [1].", unknowns=[]))
                for i in range(2)]
    over = {"model.base": str(tiny_model_dir), "model.device": "cpu", "training.max_steps": 2,
            "training.per_device_train_batch_size": 1, "training.gradient_accumulation_steps": 1,
            "training.save_steps": 1, "training.logging_steps": 1, "training.gradient_checkpointing": False,
            "training.torch_threads": 1, "training.max_seq_length": 2048, "eval.max_new_tokens": 8, "eval.batch_size": 2}
    cfg = load_config("lora", overrides=over)
    run = tmp_path / "run"
    train(cfg, run / "train", [example_messages(e, corpus) for e in examples])
    evaluate(cfg, examples, "base", run / "eval", corpus=corpus)

    files = [p for p in run.rglob("*") if p.is_file()]
    assert {"manifest.json", "train_log.jsonl", "adapter_model.safetensors", "trainer_state.json", "metrics.json",
            "predictions.jsonl", "report.md"} <= {p.name for p in files}
    leaks = [str(p.relative_to(run)) for p in files if token.encode() in p.read_bytes()]
    assert leaks == []
    assert scan(files) == []
    manifest = json.loads((run / "train" / "manifest.json").read_text())
    assert "--hub-token ***" in manifest["command"]   # the command is recorded, with the secret redacted


def test_a_token_on_the_kwanzaa_command_line_is_written_nowhere(tmp_path):
    """`kwanzaa run all -p model.revision=hf_...` (the tiny local model ignores the revision) and HF_TOKEN in the
    environment: no file of the run directory (config yamls, done markers, run_config.json, manifest, executed notebooks,
    the adapter's model card, eval reports) holds either token; the places that record them say '***'."""
    import os, subprocess, yaml
    rng = random.SystemRandom()
    token, env_token = ("hf_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(34)) for _ in range(2))
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("KWANZAA_COMMAND", "KWANZAA_PIPELINES")}
    env.update(HF_HUB_OFFLINE="1", HF_TOKEN=env_token)
    p = subprocess.run([str(Path(sys.executable).parent / "kwanzaa"), "run", "all", "--smoke", "-p", "training.max_steps=1",
                        "-p", f"model.revision={token}", "--out", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert token not in p.stdout + p.stderr and env_token not in p.stdout + p.stderr
    files = [f for f in out.rglob("*") if f.is_file()]
    names = {str(f.relative_to(out)) for f in files}
    assert {"train.config.yaml", "evaluate.config.yaml", "train.done.json", "evaluate.done.json", "run_config.json",
            "manifest.json", "train.ipynb", "evaluate.ipynb", "adapter/README.md", "eval/report.md",
            "eval/adapter/metrics.json"} <= names, names
    leaks = [str(f.relative_to(out)) for f in files if token.encode() in f.read_bytes() or env_token.encode() in f.read_bytes()]
    assert leaks == []
    assert scan(files) == []
    for step in ("train", "evaluate"):   # redacted, not dropped: the file still says a revision was given
        assert yaml.safe_load((out / f"{step}.config.yaml").read_text())["model"]["revision"] == "***"
    manifest = json.loads((out / "manifest.json").read_text())
    assert "model.revision=***" in manifest["command"] and manifest["command"].startswith("kwanzaa run all")
