"""Issue #25 item 1: extractive answers guaranteed by decoding. Under the per-prompt grammar every answered sentence is a
verbatim unit of a passage it cites (with that passage's marker), on a real (tiny, random) model through the real path."""
import pytest
import torch

from kwanzaa.contract import (Chunk, Toggles, copy_units, extractive_sentence, inline_markers, parse, sentences,
                              unquote_extractive)
from kwanzaa.corpus import Corpus, Retriever
from kwanzaa.grammar import extractive_grammar_text
from kwanzaa.inference import ask, generate, load_for_inference
from kwanzaa.prompt import render_messages

torch.set_num_threads(1)


def note(slug, text):
    return Chunk(chunk_id=f"kwanzaa_notes_{slug}::chunk::0", doc_id=f"kwanzaa_notes_{slug}", text=text, title=slug,
                 author="kwanzaa project", year=2026, source_org="kwanzaa project", license="CC-BY-4.0",
                 canonical_url=f"https://example.org/{slug}", namespace="kwanzaa_notes", content_type="reference_note")


ORIGIN = note("origin", 'Kwanzaa was created in 1966 by Maulana Karenga. Its first principle is "Umoja", unity.')
DAYS = note("days", "Kwanzaa is observed from December 26 to January 1. Each day honours one principle")
POEM = note("poem", "Lift every voice and sing\nTill earth and heaven ring")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_for_inference(str(tiny_model_dir))


def copied(core, chunks) -> bool:
    "Every sentence of the answer is extractive_sentence(unit, n) for a unit of passage n, and n is cited."
    for s in sentences(core.answer):
        n = (inline_markers(s) or [0])[0]
        if n not in core.citations: return False
        units = copy_units(chunks[n - 1].text)
        got = unquote_extractive(s, units)
        if got is None or got[0] not in units: return False
    return True


def test_generation_under_the_extractive_grammar_copies_or_refuses(tiny):
    model, tok = tiny
    chunks = [ORIGIN, DAYS, POEM]
    chats = [render_messages(q, chunks) for q in ("Who created Kwanzaa?", "When is it observed?", "Which song?")]
    prefixes = ['{"status": "answered"', '{"status": "partial"', ""]
    gens = generate(model, tok, chats, max_new_tokens=300, constrained=True, n_passages=3, prefixes=prefixes,
                    passages=[[c.text for c in chunks]] * 3)
    assert [g.grammar for g in gens] == ["extractive"] * 3
    for g, p in zip(gens, prefixes):
        r = parse(g.text, n_passages=3)
        assert r.ok, g.text   # a valid core always (or the fallback refusal when the budget ran out)
        if g.fallback is None and r.core.status in ("answered", "partial"):
            if p: assert r.core.status == p.split('"')[3]
            assert copied(r.core, chunks), r.core.answer
            assert sorted(set(inline_markers(r.core.answer))) == sorted(r.core.citations)


def test_a_row_without_usable_passages_falls_back_to_the_schema_and_says_so(tiny):
    model, tok = tiny
    chats = [render_messages("Who created Kwanzaa?", [ORIGIN])]
    g = generate(model, tok, chats, max_new_tokens=40, constrained=True, n_passages=1, passages=[["\ud800 broken"]])[0]
    assert g.grammar.startswith("schema (fallback: no extractive grammar") or g.grammar == "extractive"
    empty = generate(model, tok, chats, max_new_tokens=40, constrained=True, n_passages=1, passages=[["!!! ..."]])[0]
    assert empty.grammar == "extractive" and parse(empty.text, n_passages=1).ok   # no units: only the refusal branch
    assert "answered" not in extractive_grammar_text(["!!! ..."])


def test_ask_extractive_by_default_and_free_on_request(tiny, tiny_model_dir):
    from kwanzaa.config import load_config
    model, tok = tiny
    cfg = load_config("lora", overrides={"model.base": str(tiny_model_dir), "model.device": "cpu"})
    assert cfg.data.answer_mode == "extractive"
    retriever = Retriever(Corpus([ORIGIN, DAYS, POEM], hash="t"))
    doc = ask("Who created Kwanzaa in 1966?", model=model, tok=tok, cfg=cfg, retriever=retriever, max_new_tokens=300)
    if doc.integrity.fallback_behavior != "refusal":
        chunks = {s.chunk_id: c for s in doc.sources for c in (ORIGIN, DAYS, POEM) if c.chunk_id == s.chunk_id}
        units = [u for c in chunks.values() for u in copy_units(c.text)]
        for s in sentences(doc.answer.text):
            got = unquote_extractive(s, units)
            assert got is not None and got[0] in units, s
    free = ask("Who created Kwanzaa in 1966?", model=model, tok=tok, cfg=cfg, retriever=retriever, max_new_tokens=40,
               extractive=False)
    assert free.version == doc.version


def test_extractive_sentence_round_trip_on_quotes_and_poems():
    for unit in copy_units(ORIGIN.text) + copy_units(POEM.text):
        s = extractive_sentence(unit, 2)
        assert sentences(s) == [s] and inline_markers(s) == [2] and unquote_extractive(s, copy_units(ORIGIN.text + " " + POEM.text)) == (unit, 2)
