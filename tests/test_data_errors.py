"""Bad dataset and spec files give clear errors naming file:line and the field (kwanzaa.data)."""
import json
import pytest
from kwanzaa.contract import AnswerCore, Chunk
from kwanzaa.corpus import Corpus, load_notes, chunk_text
from kwanzaa.data import DataError, Example, Gold, load_examples, load_specs, write_examples

_META = ("doc_id", "title", "author", "year", "source_org", "license", "canonical_url", "namespace", "content_type")

@pytest.fixture(scope="module")
def notes_corpus():
    "The project notes as a small real Corpus (no public-domain sources needed)."
    return Corpus([Chunk(chunk_id=f"{d['doc_id']}::chunk::{i}", text=t, **{k: d[k] for k in _META})
                   for d in load_notes() for i, t in enumerate(chunk_text(d["text"]))], hash="notes-only")

CTX = ["kwanzaa_notes_origin::chunk::0", "kwanzaa_notes_dates::chunk::0", "kwanzaa_notes_name::chunk::0"]

def good(i=1, **kw):
    ex = dict(id=f"ex-{i}", persona="educator", category="single_source", question="When was Kwanzaa created?",
              toggles={"require_citations": True, "primary_sources_only": False, "creative_mode": False},
              context=CTX, gold={"status": "answered", "supporting": [CTX[0]], "key_facts": ["1966"]},
              target={"status": "answered", "citations": [1], "answer": "In 1966 [1].", "unknowns": []}, pair_id=None)
    return ex | kw

def write(path, *lines):
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines), encoding="utf-8")
    return path

def err(fn, *a):
    with pytest.raises(DataError) as e: fn(*a)
    return str(e.value)

def test_good_file_round_trips(tmp_path, notes_corpus):
    p = write(tmp_path / "ok.jsonl", good(1), good(2))
    exs = load_examples(p, notes_corpus)
    assert [e.id for e in exs] == ["ex-1", "ex-2"]
    write_examples(exs, tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_text() == "".join(json.dumps(e.model_dump(mode="json"), ensure_ascii=False) + "\n" for e in exs)

def test_malformed_line(tmp_path):
    p = write(tmp_path / "d.jsonl", good(1), '{"id": "ex-2", "persona": }')
    assert err(load_examples, p) == f"{p}:2: invalid JSON: Expecting value (column 27)"

def test_not_an_object(tmp_path):
    p = write(tmp_path / "d.jsonl", "[1, 2]")
    assert err(load_examples, p) == f"{p}:1: expected a JSON object, got list"

def test_unknown_chunk_id(tmp_path, notes_corpus):
    p = write(tmp_path / "d.jsonl", good(1), good(2, context=CTX[:2] + ["kwanzaa_notes_nope::chunk::0"]))
    assert err(load_examples, p, notes_corpus) == f"{p}:2: field 'context': unknown chunk id 'kwanzaa_notes_nope::chunk::0'"

def test_citation_out_of_range(tmp_path):
    p = write(tmp_path / "d.jsonl", good(1, target={"status": "answered", "citations": [4], "answer": "In 1966 [4].", "unknowns": []}))
    assert err(load_examples, p) == f"{p}:1: field 'target.citations': citation 4 out of range 1..3"

def test_refusal_with_citation(tmp_path):
    p = write(tmp_path / "d.jsonl", good(1, gold={"status": "refused", "supporting": [], "key_facts": []},
                                         target={"status": "refused", "citations": [1], "answer": "No.", "unknowns": []}))
    assert err(load_examples, p) == f"{p}:1: field 'target.citations': a refusal cites nothing"

def test_supporting_not_in_context(tmp_path):
    p = write(tmp_path / "d.jsonl", good(1, gold={"status": "answered", "supporting": ["kwanzaa_notes_kinara::chunk::0"], "key_facts": []}))
    assert err(load_examples, p) == f"{p}:1: field 'gold.supporting': 'kwanzaa_notes_kinara::chunk::0' is not in the context"

def test_duplicated_id(tmp_path):
    p = write(tmp_path / "d.jsonl", good(1), good(2), good(1))
    assert err(load_examples, p) == f"{p}:3: field 'id': duplicated id 'ex-1' (first at line 1)"

def test_empty_file(tmp_path):
    p = tmp_path / "d.jsonl"; p.write_text("")
    assert err(load_examples, p) == f"{p}: empty file: expected one JSON object per line"
    p.write_text("\n  \n")
    assert err(load_examples, p) == f"{p}: empty file: expected one JSON object per line"

def test_missing_file(tmp_path):
    assert err(load_examples, tmp_path / "nope.jsonl") == f"{tmp_path / 'nope.jsonl'}: no such file"

def test_non_utf8(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(json.dumps(good(1)).encode() + b"\n" + b'{"id": "caf\xe9"}\n')
    assert err(load_examples, p) == f"{p}:2: not valid UTF-8 (byte 0xe9 at column 12)"

def test_huge_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(good(1, question="x" * 10_000_000)) + "\n")
    assert err(load_examples, p) == f"{p}:1: line longer than 1048576 bytes (limit 1 MiB); is this a JSONL file?"

def test_wrong_type(tmp_path):
    p = write(tmp_path / "d.jsonl", good(1, question=5))
    assert err(load_examples, p) == f"{p}:1: field 'question': Input should be a valid string; got 5"
    p = write(tmp_path / "d.jsonl", good(1, context="kwanzaa_notes_origin::chunk::0"))
    assert err(load_examples, p) == f"{p}:1: field 'context': Input should be a valid list; got 'kwanzaa_notes_origin::chunk::0'"

def test_unknown_persona_lists_allowed(tmp_path):
    p = write(tmp_path / "d.jsonl", good(1), good(2, persona="teacher"))
    assert err(load_examples, p) == f"{p}:2: field 'persona': expected one of educator, researcher, creator, builder; got 'teacher'"

def test_unknown_field_and_missing_field(tmp_path):
    p = write(tmp_path / "d.jsonl", good(1, score=0.9))
    assert err(load_examples, p) == f"{p}:1: field 'score': unknown field"
    bad = good(1); del bad["gold"]
    p = write(tmp_path / "d.jsonl", bad)
    assert err(load_examples, p) == f"{p}:1: field 'gold': missing"

SPEC = {"id": "s-01", "split": "train", "persona": "educator", "category": "single_source",
        "question": "When was Kwanzaa created?", "evidence": [{"doc_id": "kwanzaa_notes_origin", "quote": "created in 1966"}],
        "status": "answered", "answer": "In 1966 {1}.", "key_facts": ["1966"]}

def test_spec_errors(tmp_path):
    p = write(tmp_path / "s.jsonl", SPEC, SPEC | {"id": "s-02", "category": "single"})
    assert err(load_specs, p) == (f"{p}:2: field 'category': expected one of single_source, multi_source, partial, "
                                  "refusal_no_context, refusal_irrelevant, false_premise, clarify, creative, prompt_injection; got 'single'")
    p = write(tmp_path / "s.jsonl", SPEC, SPEC)
    assert err(load_specs, p) == f"{p}:2: field 'id': duplicated id 's-01' (first at line 1)"
    p = write(tmp_path / "s.jsonl", SPEC | {"split": "test"})
    assert err(load_specs, p) == f"{p}:1: field 'split': expected one of train, validation, golden; got 'test'"
    p = write(tmp_path / "s.jsonl", SPEC | {"evidence": [{"doc_id": "kwanzaa_notes_origin", "quote": "x" * 200}]})
    assert err(load_specs, p) == f"{p}:1: field 'evidence.0.quote': String should have at most 160 characters; got '{'x' * 200}'"

def test_written_files_are_readable_by_all(tmp_path):
    p = write_examples(load_examples(write(tmp_path / "in.jsonl", good(1))), tmp_path / "out.jsonl")
    assert p.stat().st_mode & 0o044 == 0o044  # package data: not the 0600 of a bare mkstemp file
    assert sorted(f.name for f in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no temp file left behind
