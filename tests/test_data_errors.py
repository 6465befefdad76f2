"""Bad dataset and spec files give clear errors naming file:line and the field (kwanzaa.data)."""
from conftest import notes_corpus as _notes_corpus
import json
import pytest
from kwanzaa.contract import AnswerCore, Chunk
from kwanzaa.corpus import Corpus, load_notes, chunk_text
from kwanzaa.data import load_specs
from kwanzaa.examples import DataError, Example, Gold, load_examples, write_examples

_META = ("doc_id", "title", "author", "year", "source_org", "license", "canonical_url", "namespace", "content_type")

@pytest.fixture(scope="module")
def notes_corpus():
    "The project notes as a small real Corpus (no public-domain sources needed)."
    return _notes_corpus()

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
    p = write(tmp_path / "d.jsonl", good(1), "[1, 2]")
    assert err(load_examples, p) == f"{p}:2: expected a JSON object, got list"
    p = write(tmp_path / "d.jsonl", good(1), '"text"')
    assert err(load_examples, p) == f"{p}:2: expected a JSON object, got str"

def test_json_array_instead_of_jsonl(tmp_path):
    p = write(tmp_path / "d.json", "[1, 2]")
    assert err(load_examples, p) == f"{p}:1: the file holds a JSON array, not JSONL: one object per line"
    p = tmp_path / "pretty.json"
    p.write_text(json.dumps([good(1), good(2)], indent=2) + "\n", encoding="utf-8")
    assert err(load_examples, p) == f"{p}:1: the file holds a JSON array, not JSONL: one object per line"

def test_cr_only_line_endings(tmp_path):
    p = tmp_path / "mac.jsonl"
    p.write_bytes((json.dumps(good(1)) + "\r" + json.dumps(good(2)) + "\r").encode())
    assert err(load_examples, p) == f"{p}:1: CR-only line endings: convert to LF (one JSON object per line)"
    p.write_bytes((json.dumps(good(1)) + "\r").encode())   # one line, CR-terminated
    assert err(load_examples, p) == f"{p}:1: CR-only line endings: convert to LF (one JSON object per line)"
    p.write_bytes((json.dumps(good(1)) + "\r\n" + json.dumps(good(2)) + "\r\n").encode())   # CRLF is fine
    assert [e.id for e in load_examples(p)] == ["ex-1", "ex-2"]

def test_answer_without_passages_is_refused(tmp_path):
    no_ctx = good(1, context=[], gold={"status": "answered", "supporting": [], "key_facts": []},
                  target={"status": "answered", "citations": [], "answer": "In 1966.", "unknowns": []})
    p = write(tmp_path / "d.jsonl", good(2), no_ctx)
    assert err(load_examples, p) == (f"{p}:2: field 'context': an 'answered' target needs passages to cite when "
                                     "toggles.require_citations is on (and creative_mode off); the context is empty")
    free = no_ctx | {"toggles": {"require_citations": False, "primary_sources_only": False, "creative_mode": False}}
    creative = no_ctx | {"toggles": {"require_citations": True, "primary_sources_only": False, "creative_mode": True}}
    assert [e.id for e in load_examples(write(tmp_path / "ok.jsonl", free, creative | {"id": "ex-3"}))] == ["ex-1", "ex-3"]

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


# ---- example_problems: one broken example per rule, each with its exact message ----
from kwanzaa.data import example_problems

def built(**kw):
    "A valid example with fields replaced without validation (as a buggy builder could produce)."
    ex = Example.model_validate(good(1))
    upd = {k: v for k, v in kw.items() if k not in ("target", "gold")}
    if "target" in kw: upd["target"] = ex.target.model_copy(update=kw["target"])
    if "gold" in kw: upd["gold"] = ex.gold.model_copy(update=kw["gold"])
    return ex.model_copy(update=upd)

def test_rule_good_example_has_no_problems(notes_corpus):
    assert example_problems(built(), notes_corpus) == []

def test_rule_target_must_parse():
    ex = built(target={"answer": "x" * 5000})
    assert example_problems(ex)[0].startswith("target does not parse as a core: ")

def test_rule_citations_point_at_supporting_passages():
    ex = built(target={"citations": [2], "answer": "In 1966 [2]."})   # passage 2 exists but does not support
    assert example_problems(ex) == ["cites [2] but supporting passages are [1]"]

def test_rule_core_consistency():
    ex = built(target={"answer": "In 1966."})   # cites [1] without an inline marker
    assert example_problems(ex) == ["citations has 1 but the answer has no [1] marker"]

def test_rule_refusal_has_no_supporting_passages():
    ex = built(gold={"status": "refused", "supporting": [CTX[0]], "key_facts": []},
               target={"status": "refused", "citations": [], "answer": "The passages do not say.", "unknowns": []})
    assert example_problems(ex) == ["a refused example cites nothing and has no supporting passages"]

def test_rule_answer_needs_passages_to_cite():
    ex = built(context=[], gold={"supporting": [], "key_facts": []}, target={"citations": [], "answer": "In 1966."})
    assert example_problems(ex) == [
        "status 'answered' needs at least one citation when citations are required",
        "an answered example needs passages to cite when citations are required; the context is empty",
        "an answer needs supporting passages"]


def test_rule_answer_needs_supporting_passages():
    ex = built(gold={"supporting": []}, target={"citations": [], "answer": "In 1966."},
               toggles=Example.model_fields["toggles"].annotation(require_citations=False))
    assert example_problems(ex) == ["an answer needs supporting passages"]

def test_rule_key_facts_in_answer():
    ex = built(target={"answer": "In 1967 [1]."})
    assert example_problems(ex) == ["key fact '1966' missing from the answer"]

def test_rule_refusal_no_context_has_no_context():
    ex = built(category="refusal_no_context", gold={"status": "refused", "supporting": [], "key_facts": []},
               target={"status": "refused", "citations": [], "answer": "The passages do not say.", "unknowns": []})
    assert example_problems(ex) == ["refusal_no_context must have an empty context"]

def test_rule_no_double_quote_in_answer():
    ex = built(target={"answer": 'In "1966" [1].'})
    assert example_problems(ex) == ["double quote inside the answer"]

def test_rule_chunk_ids_exist(notes_corpus):
    ex = built(context=[CTX[0], "kwanzaa_notes_nope::chunk::0"])
    assert example_problems(ex, notes_corpus) == ["unknown chunk id 'kwanzaa_notes_nope::chunk::0'"]
