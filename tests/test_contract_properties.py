"""Property tests for kwanzaa.contract: parse never raises, assemble always yields a schema-valid answer.v1 document,
citations to absent passages are rejected with a clear message, and the exported schemas match the models.

Profiles come from tests/conftest.py: "ci" (default, 200 examples) or HYPOTHESIS_PROFILE=long."""
from conftest import make_chunk
import json, subprocess, sys
from functools import lru_cache

import jsonschema
import pytest
from hypothesis import event, given, strategies as st

from kwanzaa.contract import (CORE_FIELDS, ERROR_KINDS, MAX_ANSWER_CHARS, MAX_CITATIONS, MAX_PASSAGES, MAX_UNKNOWN_CHARS,
                              MAX_UNKNOWNS, PERSONAS, STATUSES, SCHEMA_FILES, AnswerCore, AnswerDocument, Chunk,
                              ContractError, Toggles, assemble, check_consistency, core_json_schema, core_to_text,
                              load_schema, parse, schema_of, validate_document)

DOC_VALIDATOR = jsonschema.Draft202012Validator(load_schema("answer.v1"))
CORE_VALIDATOR = jsonschema.Draft202012Validator(load_schema("answer_core"))

# --- strategies ------------------------------------------------------------------------------------------------
# printable text (no control characters other than newline/tab, no lone surrogates): what a valid core may hold
safe_text = st.text(st.characters(blacklist_categories=("Cc", "Cs"), whitelist_characters="\n\t"))

@st.composite
def cores(draw, n_passages=MAX_PASSAGES):
    k = draw(st.integers(0, min(MAX_CITATIONS, n_passages)))
    cites = draw(st.lists(st.integers(1, n_passages), min_size=k, max_size=k, unique=True)) if n_passages else []
    return AnswerCore(status=draw(st.sampled_from(STATUSES)), citations=cites,
                      answer=draw(safe_text.filter(lambda s: len(s) <= MAX_ANSWER_CHARS)),
                      unknowns=draw(st.lists(safe_text.filter(lambda s: 1 <= len(s) <= MAX_UNKNOWN_CHARS),
                                             max_size=MAX_UNKNOWNS)))

ident = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=20)

@st.composite
def chunk_lists(draw, min_size=0):
    n = draw(st.integers(min_size, MAX_PASSAGES))
    out = []
    for i in range(n):
        doc = draw(ident)
        out.append(Chunk(chunk_id=f"{doc}::chunk::{draw(st.integers(0, 999))}", doc_id=doc, text=draw(st.text(max_size=50)),
                         title=draw(st.text(max_size=20)), author=draw(st.none() | st.text(max_size=10)),
                         year=draw(st.none() | st.integers(-500, 2100)), source_org=draw(st.text(max_size=20)),
                         license=draw(st.sampled_from(["Public Domain", "CC-BY-4.0"])),
                         canonical_url=f"https://example.org/{doc}", namespace=draw(ident),
                         content_type=draw(st.sampled_from(["reference_note", "speech", "memoir"]))))
    return out

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                           max_leaves=15)

@st.composite
def core_like_dicts(draw):
    "Dicts near the core's shape: fields dropped, added, or given wrong types and sizes."
    d = {"status": draw(st.sampled_from(STATUSES) | json_values),
         "citations": draw(st.lists(st.integers(-3, 12), max_size=7) | json_values),
         "answer": draw(st.text(max_size=40) | json_values),
         "unknowns": draw(st.lists(st.text(max_size=30), max_size=5) | json_values)}
    for k in draw(st.lists(st.sampled_from(CORE_FIELDS), max_size=2)): d.pop(k, None)
    d.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return d

@st.composite
def jsonish_texts(draw):
    "Model-like outputs: JSON (valid, truncated, fenced) with prose around it."
    obj = draw(cores().map(AnswerCore.model_dump) | core_like_dicts() | json_values)
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()), separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    if draw(st.booleans()): text = text[: draw(st.integers(0, len(text)))]
    if draw(st.booleans()): text = "```json\n" + text + "\n```"
    return draw(st.text(max_size=30)) + text + draw(st.text(max_size=30))

def check_result(r, text):
    event(str(r.error_kind))
    assert r.ok == (r.error_kind is None)
    if r.ok: assert r.core is not None and r.errors == []
    else:
        assert r.error_kind in ERROR_KINDS and r.errors and all(isinstance(e, str) and e for e in r.errors)
        if r.error_kind != "citation_out_of_range": assert r.core is None
    if r.json_text is not None: assert r.json_text in text

# --- parse never raises ----------------------------------------------------------------------------------------
@given(st.text())
def test_parse_never_raises_on_text(text):
    check_result(parse(text), text)

@given(jsonish_texts(), st.none() | st.integers(0, MAX_PASSAGES))
def test_parse_never_raises_on_jsonish(text, n):
    check_result(parse(text, n_passages=n), text)

@given(st.binary(max_size=200))
def test_parse_never_raises_on_bytes(data):
    r = parse(data)
    assert r.error_kind in (None,) + ERROR_KINDS

@given(cores().map(AnswerCore.model_dump) | core_like_dicts())
def test_parse_agrees_with_core_schema(d):
    "Whatever parse accepts also passes the exported answer_core JSON Schema."
    r = parse(json.dumps(d))
    event(str(r.error_kind))
    if r.ok: CORE_VALIDATOR.validate(json.loads(r.json_text))
    if not r.ok and r.error_kind == "schema_error": assert r.core is None

# --- the serialisation round-trips -----------------------------------------------------------------------------
@given(cores(), st.text(st.characters(blacklist_characters="{"), max_size=40),
       st.text(st.characters(blacklist_characters="{"), max_size=40))
def test_core_roundtrip_through_prose(core, before, after):
    text = before + core_to_text(core) + after
    r = parse(text, n_passages=MAX_PASSAGES)
    assert r.ok, r.errors
    assert r.core == core and r.json_text == core_to_text(core)
    assert list(json.loads(core_to_text(core))) == list(CORE_FIELDS)
    CORE_VALIDATOR.validate(json.loads(core_to_text(core)))

@given(st.integers(1, MAX_PASSAGES).flatmap(lambda n: st.tuples(st.just(n), cores(n_passages=n))))
def test_core_valid_under_context_schema(nc):
    n, core = nc
    jsonschema.validate(json.loads(core_to_text(core)), core_json_schema(n))

# --- assemble always produces a valid document -----------------------------------------------------------------
@given(chunk_lists(min_size=0).flatmap(lambda cs: st.tuples(st.just(cs), cores(n_passages=len(cs)))),
       st.text(max_size=60), st.sampled_from(PERSONAS), st.booleans(), st.booleans(), st.none() | st.integers(0, 20))
def test_assemble_is_schema_valid(cc, query, persona, require, with_scores, top_k):
    chunks, core = cc
    scores = [float(i) * 1.7 for i in range(len(chunks))] if with_scores else None
    doc = assemble(core, chunks, query, persona=persona, toggles=Toggles(require_citations=require), scores=scores,
                   top_k=top_k)
    obj = json.loads(doc.model_dump_json())
    DOC_VALIDATOR.validate(obj)
    assert validate_document(obj) == doc
    cited = [] if core.status == "refused" else core.citations
    assert [s.chunk_id for s in doc.sources] == [chunks[n - 1].chunk_id for n in cited]
    assert [s.canonical_url for s in doc.sources] == [chunks[n - 1].canonical_url for n in cited]
    assert [s.license for s in doc.sources] == [chunks[n - 1].license for n in cited]
    assert [s.citation_label for s in doc.sources] == [f"[{n}]" for n in cited]
    assert [r.chunk_id for r in doc.retrieval_summary.results] == [c.chunk_id for c in chunks]
    assert doc.unknowns.missing_context == core.unknowns
    assert doc.integrity.citation_required is require
    assert doc.integrity.citations_provided == bool(cited)
    if core.status == "refused": assert doc.sources == [] and doc.integrity.fallback_behavior == "refusal"
    if not with_scores: assert doc.integrity.retrieval_confidence == "unknown"

# --- citations to absent passages ------------------------------------------------------------------------------
@given(st.integers(0, MAX_PASSAGES - 1).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(n + 1, MAX_PASSAGES), cores(n_passages=n))))
def test_absent_passage_is_rejected(ncc):
    n, bad, core = ncc
    core = core.model_copy(update={"citations": [c for c in core.citations if c != bad][: MAX_CITATIONS - 1] + [bad]})
    msg = f"citation {bad} is not a passage number: " + (f"the context had passages 1..{n}" if n else "the context had no passages")
    r = parse(core_to_text(core), n_passages=n)
    assert r.error_kind == "citation_out_of_range" and not r.ok
    assert r.errors == [msg]
    assert r.core == core  # kept so the evaluator can still score the status
    with pytest.raises(ContractError, match="^" + msg.replace(".", r"\.") + "$"):
        assemble(core, [_chunk(i) for i in range(n)], "q")
    assert not jsonschema.Draft202012Validator(core_json_schema(n)).is_valid(json.loads(core_to_text(core)))

_chunk = make_chunk

@given(st.integers(MAX_PASSAGES + 1, 10**6) | st.integers(-10**6, 0))
def test_non_passage_numbers_rejected_without_context(c):
    r = parse(json.dumps({"status": "answered", "citations": [c], "answer": f"x [{c}]", "unknowns": []}))
    assert r.error_kind == "citation_out_of_range"
    assert r.errors == [f"citation {c} is not a passage number: passages are numbered 1..{MAX_PASSAGES}"]

# --- consistency ------------------------------------------------------------------------------------------------
@given(cores())
def test_consistency_rules(core):
    problems = check_consistency(core)
    if core.status == "refused" and core.citations:
        assert any("must cite nothing" in p for p in problems)
    if core.status in ("answered", "partial") and not core.citations:
        assert any("needs at least one citation" in p for p in problems)
    assert all(isinstance(p, str) and p for p in problems)

# --- schema files and constrained decoding ----------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SCHEMA_FILES))
def test_schema_files_equal_models(name):
    assert load_schema(name) == schema_of(name)
    jsonschema.Draft202012Validator.check_schema(load_schema(name))

def test_schema_core_matches_model():
    s = load_schema("answer_core")
    assert list(s["properties"]) == list(CORE_FIELDS) == list(AnswerCore.model_fields)
    assert s["required"] == list(CORE_FIELDS) and s["additionalProperties"] is False
    assert set(load_schema("answer.v1")["properties"]) == set(AnswerDocument.model_fields)

@lru_cache(maxsize=None)
def _grammar(n):
    import xgrammar as xgr
    return xgr.Grammar.from_json_schema(json.dumps(core_json_schema(n)), any_whitespace=False)

@pytest.mark.parametrize("n", [0, 1, 3, MAX_PASSAGES])
def test_xgrammar_accepts_core_to_text(n):
    "The constrained-decoding grammar accepts exactly the training-target format (and no absent passage)."
    from xgrammar.testing import _is_grammar_accept_string
    g = _grammar(n)
    samples = [AnswerCore(status="refused", citations=[], answer="The passages do not say.", unknowns=["the date"]),
               AnswerCore(status="clarify", citations=[], answer="Which principle do you mean? ✊ مرحبا", unknowns=[])]
    if n: samples.append(AnswerCore(status="answered", citations=list(range(1, min(n, MAX_CITATIONS) + 1)),
                                    answer="Umoja means unity " + "".join(f"[{i}]" for i in range(1, n + 1)), unknowns=[]))
    for core in samples: assert _is_grammar_accept_string(g, core_to_text(core)), core_to_text(core)
    absent = json.dumps({"status": "answered", "citations": [n + 1], "answer": "x", "unknowns": []}, separators=(", ", ": "))
    assert not _is_grammar_accept_string(g, absent)
    compact = json.dumps(json.loads(core_to_text(samples[0])), separators=(",", ":"))
    assert not _is_grammar_accept_string(g, compact)  # only core_to_text's separators are generated

def test_contract_import_is_torch_free():
    code = "import sys, kwanzaa.contract; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
