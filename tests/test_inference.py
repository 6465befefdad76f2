"""kwanzaa.inference on a tiny random model: batching, constrained decoding, ask(), loading errors."""
import json

import pytest
import torch

from kwanzaa.config import load_config
from kwanzaa.contract import AnswerDocument, Chunk, Toggles, parse, validate_document
from kwanzaa.corpus import Corpus, Retriever, load_notes
from kwanzaa.data import render_messages
from kwanzaa.inference import (FALLBACK_CORE, InferenceError, ask, compare_batching, generate, load_for_inference)
from kwanzaa.loader import make_tiny_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def loaded(tiny):
    return load_for_inference(str(tiny))


def _notes():
    "The project's own notes (package data) as one-chunk passages: a real corpus that needs no raw sources."
    keys = ("doc_id", "title", "author", "year", "source_org", "license", "canonical_url", "namespace", "content_type")
    return [Chunk(chunk_id=f"{d['doc_id']}::chunk::0", text=d["text"], **{k: d[k] for k in keys}) for d in load_notes()]


@pytest.fixture(scope="module")
def chats():
    notes = _notes()
    qs = ["When was Kwanzaa created?", "What does Umoja mean?", "Which colours are on the kinara?",
          "How many days does Kwanzaa last, and when does it start and end?", "What is Karamu?"]
    # passage counts 0..4 so prompt lengths differ widely (left padding matters)
    return [render_messages(q, notes[i:i + (i % 5)], persona=p)
            for i, (q, p) in enumerate(zip(qs, ["educator", "researcher", "creator", "builder", "educator"]))]


def test_batched_equals_one_at_a_time_greedy(loaded, chats):
    model, tok = loaded
    batched = generate(model, tok, chats, max_new_tokens=30, batch_size=4)
    single = [generate(model, tok, [c], max_new_tokens=30, batch_size=1)[0] for c in chats]
    assert [g.raw for g in batched] == [g.raw for g in single]
    assert [g.n_new_tokens for g in batched] == [g.n_new_tokens for g in single]
    assert all(1 <= g.n_new_tokens <= 30 for g in batched)


def test_constrained_decoding_always_parses(loaded, chats):
    model, tok = loaded
    ns = [i % 5 for i in range(len(chats))]
    for budget in (8, 400):  # 8 tokens cannot finish a core (fallback); 400 lets the random model finish
        gens = generate(model, tok, chats, max_new_tokens=budget, batch_size=3, constrained=True, n_passages=ns)
        for g, n in zip(gens, ns):
            r = parse(g.text, n_passages=n)
            assert r.ok, (budget, g.raw, r.errors)
            assert all(1 <= c <= n for c in r.core.citations)
            if g.fallback is None: assert g.stopped and g.text == g.raw
            else: assert json.loads(g.text) == FALLBACK_CORE.model_dump()
        if budget == 8: assert all(g.fallback == "budget" for g in gens)
        else: assert sum(g.fallback is None for g in gens) >= 1, [g.raw for g in gens]


def test_constrained_needs_passage_counts(loaded, chats):
    model, tok = loaded
    with pytest.raises(InferenceError, match="needs n_passages"):
        generate(model, tok, chats, constrained=True)
    with pytest.raises(InferenceError, match="2 values for 5 prompts"):
        generate(model, tok, chats, constrained=True, n_passages=[1, 2])


@pytest.fixture(scope="module")
def retriever():
    notes = _notes()
    return Retriever(Corpus(notes, hash="notes"))


def test_ask_returns_a_valid_answer_document(loaded, tiny, retriever):
    model, tok = loaded
    cfg = load_config("cpu", overrides={"model.base": str(tiny)})
    for q, persona in [("When was Kwanzaa created and by whom?", "researcher"), ("What does Umoja mean?", "builder")]:
        doc = ask(q, persona=persona, k=3, model=model, tok=tok, retriever=retriever, cfg=cfg, max_new_tokens=400)
        assert isinstance(doc, AnswerDocument)
        validate_document(json.loads(doc.model_dump_json()))
        assert doc.persona == persona and doc.retrieval_summary.query == q
        assert len(doc.retrieval_summary.results) == 3
        retrieved = {r.chunk_id for r in doc.retrieval_summary.results}
        assert {s.chunk_id for s in doc.sources} <= retrieved
        if doc.integrity.fallback_behavior == "refusal": assert doc.sources == []


def test_ask_refuses_without_retrieval(loaded, tiny, retriever):
    model, tok = loaded
    cfg = load_config("cpu", overrides={"model.base": str(tiny)})
    doc = ask("xylophone zeppelin", model=model, tok=tok, retriever=retriever, cfg=cfg)
    assert doc.integrity.fallback_behavior == "refusal" and doc.sources == [] and doc.answer.completeness == "none"
    assert doc.retrieval_summary.results == []
    validate_document(doc.model_dump())
    # primary_sources_only searches only primary sources: none in a notes-only corpus, so a refusal
    doc = ask("When was Kwanzaa created?", toggles=Toggles(primary_sources_only=True), model=model, tok=tok,
              retriever=retriever, cfg=cfg)
    assert doc.integrity.fallback_behavior == "refusal" and doc.retrieval_summary.results == []


def test_adapter_loading_and_clear_errors(tiny, tmp_path, chats):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    with pytest.raises(InferenceError, match="does not exist"):
        load_for_inference(str(tiny), adapter_dir=tmp_path / "missing")
    with pytest.raises(InferenceError, match="no adapter_config.json"):
        load_for_inference(str(tiny), adapter_dir=tiny)
    with pytest.raises(InferenceError, match="cannot load base model"):
        load_for_inference(str(tmp_path / "no-model"))
    adir = tmp_path / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
                   ).save_pretrained(adir)
    model, tok = load_for_inference(str(tiny), adapter_dir=adir)
    assert hasattr(model, "peft_config") and tok.padding_side == "left"
    assert len(generate(model, tok, chats[:2], max_new_tokens=4)) == 2


def test_four_bit_inference(tiny, chats):
    cfg = load_config("qlora", overrides={"model.base": str(tiny)})
    model, tok = load_for_inference(cfg)
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    gens = generate(model, tok, chats[:2], max_new_tokens=5, constrained=True, n_passages=[0, 1])
    assert all(parse(g.text).ok for g in gens)


def test_compare_batching_reports_both_modes(loaded, chats):
    model, tok = loaded
    r = compare_batching(model, tok, chats[:4], batch_size=4, max_new_tokens=6, repeats=1)
    assert r["identical_outputs"] is True and r["identical_rows"] == 4 and r["batched"]["new_tokens"] > 0
    assert r["batched"]["tokens_per_s"] > 0 and r["one_at_a_time"]["tokens_per_s"] > 0
    assert r["speedup"] == pytest.approx(r["batched"]["tokens_per_s"] / r["one_at_a_time"]["tokens_per_s"])
