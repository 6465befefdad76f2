"""Shared pytest fixtures: offline by construction, tiny models built on the fly."""
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
from hypothesis import settings, HealthCheck

settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    "A tiny random Llama-architecture model + ChatML tokenizer, built offline (well under a second)."
    from kwanzaa.loader import make_tiny_model
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="chatml")


# --- one factory for the chunks and corpora the tests build ---------------------------------------------------------
_CHUNK_META = ("doc_id", "title", "author", "year", "source_org", "license", "canonical_url", "namespace", "content_type")

def make_chunk(i:int, text:str="t", **kw):
    "A small valid Chunk numbered i (doc d{i}); keyword arguments override any field."
    from kwanzaa.contract import Chunk
    fields = dict(chunk_id=f"d{i}::chunk::0", doc_id=f"d{i}", text=text, title="T", year=None, source_org="o",
                  license="CC-BY-4.0", canonical_url="https://example.org", namespace="ns", content_type="reference_note")
    return Chunk(**(fields | kw))

def notes_corpus(whole:bool=False):
    "The project-written notes as a small real Corpus (no primary sources needed): chunked, or one chunk per note."
    from kwanzaa.contract import Chunk
    from kwanzaa.corpus import Corpus, chunk_text, load_notes
    pieces = lambda d: [d["text"]] if whole else chunk_text(d["text"])
    return Corpus([Chunk(chunk_id=f"{d['doc_id']}::chunk::{i}", text=t, **{k: d[k] for k in _CHUNK_META})
                   for d in load_notes() for i, t in enumerate(pieces(d))], hash="notes" if whole else "notes-only")


def wait_for_file(path, proc, timeout:float, out=None):
    "Wait until `path` exists while the subprocess `proc` runs; fail with its output if it exits or time runs out."
    import time
    from pathlib import Path
    deadline = time.time() + timeout
    while not Path(path).exists():
        stream = out if out is not None else proc.stdout
        assert proc.poll() is None, stream.read().decode()[-3000:]
        assert time.time() < deadline, f"{Path(path).name} did not appear within {timeout:.0f} s"
        time.sleep(0.05)
