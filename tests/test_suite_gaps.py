"""Issue #27: checks the suite lacked, each catching a change it used to let through."""
import json, os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from conftest import make_chunk  # noqa: E402

GOOD = {"status": "answered", "citations": [2], "answer": "Kwanzaa was created in 1966 [2].", "unknowns": []}


@pytest.mark.parametrize("core", [{**GOOD, "citations": [0], "answer": "Kwanzaa was created in 1966 [0]."},
                                  {**GOOD, "citations": [0, 2]}])
def test_a_citation_of_passage_0_is_not_valid(core):
    "Passages are numbered from 1: a citation of passage 0 is out of range, never counted as valid."
    from kwanzaa.contract import parse
    r = parse(json.dumps(core), n_passages=3)
    assert not r.ok and any("citation" in e for e in r.errors), r.errors


def test_retrieval_confidence_comes_from_the_best_passage():
    from kwanzaa.contract import AnswerCore, assemble, retrieval_confidence
    assert retrieval_confidence([9.0, 1.0]) == retrieval_confidence([1.0, 9.0]) == "high"
    assert retrieval_confidence([0.5, 5.0, 0.1]) == "medium"
    chunks = [make_chunk(i, chunk_id=f"doc{i}::chunk::0", doc_id=f"doc{i}") for i in (1, 2)]
    for scores in ([9.0, 0.5], [0.5, 9.0]):   # the best passage first, and last
        doc = assemble(AnswerCore(**GOOD), chunks, "When was Kwanzaa created?", scores=scores)
        assert doc.integrity.retrieval_confidence == "high"


def test_the_end_of_turn_token_stops_generation_even_when_pad_equals_eos(tiny_model_dir):
    from kwanzaa.loader import FAMILIES, load_tokenizer, prepare_tokenizer, stop_token_ids
    tok = load_tokenizer(tiny_model_dir)
    eot = tok.convert_tokens_to_ids(FAMILIES["chatml"].eot)
    tok.pad_token = FAMILIES["chatml"].eot   # a checkpoint whose pad token is its end-of-turn token
    assert tok.pad_token_id == tok.eos_token_id == eot
    assert stop_token_ids(tok)[0] == eot   # never dropped for being the pad token
    prepare_tokenizer(tok, "chatml")
    assert tok.pad_token_id != eot and stop_token_ids(tok)[0] == eot and tok.pad_token_id not in stop_token_ids(tok)


@pytest.mark.parametrize("split", ["train", "validation"])
def test_the_golden_leak_check_covers_train_and_validation(tmp_path, split):
    "check_specs reports a golden question that a training or a validation spec repeats."
    import io
    from pathlib import Path
    from kwanzaa.corpus import Retriever, build_corpus
    from kwanzaa.data import check_specs
    base = json.loads((Path(__file__).parent / "fixtures" / "specs_sample.jsonl").read_text().splitlines()[0])
    base.pop("contrastive")
    p = tmp_path / "s.jsonl"
    p.write_text(json.dumps(base | {"id": "g-1", "split": "golden"}) + "\n" + json.dumps(base | {"id": "o-1", "split": split}) + "\n")
    corpus = build_corpus()
    problems = check_specs([p], corpus, Retriever(corpus), out=io.StringIO())
    assert f"{p}:1: g-1: golden question near-duplicates o-1 ({p}:2)" in problems, problems


def test_a_marker_of_passage_0_makes_the_citations_invalid_in_scoring():
    "score_item counts a citation valid only for passages 1..n: an inline [0] is not one."
    from kwanzaa.contract import AnswerCore, core_to_text
    from kwanzaa.examples import load_dataset
    from kwanzaa.evaluate import score_item
    ex = next(e for e in load_dataset("pilot") if e.target.status == "answered" and len(e.context) >= 2)
    good = AnswerCore(status="answered", citations=[1], answer="It began in 1966 [1].", unknowns=[])
    zero = AnswerCore(status="answered", citations=[1], answer="It began in 1966 [0][1].", unknowns=[])
    assert score_item(ex, core_to_text(good))["citations_valid"] is True
    assert score_item(ex, core_to_text(zero))["citations_valid"] is False
