"""Bad model outputs: each kind of failure gets the right error_kind and a message a person can act on.

The outputs are the ones small models actually produce (empty, prose, cut-off JSON, invented fields, wrong types,
citations to passages that were not shown, runaway answers, unusual Unicode)."""
from conftest import make_chunk
import json
import time

import pytest

from kwanzaa.contract import (MAX_ANSWER_CHARS, AnswerCore, Chunk, ContractError, Toggles, assemble, check_consistency,
                              core_to_text, parse)

GOOD = {"status": "answered", "citations": [2], "answer": "Kwanzaa was created in 1966 [2].", "unknowns": []}
GOOD_TEXT = core_to_text(AnswerCore(**GOOD))
CHUNKS = [make_chunk(i, chunk_id=f"doc{i}::chunk::0", doc_id=f"doc{i}", year=1900 + i, license="Public Domain",
                     canonical_url=f"https://example.org/{i}", content_type="speech") for i in range(1, 4)]
FIELDS = "(the fields are status, citations, answer, unknowns)"
CUT = "(the output ends before the object is closed: cut off by the token budget?)"


def bad(text, n_passages=3):
    r = parse(text, n_passages=n_passages)
    assert not r.ok and r.error_kind is not None and r.errors
    return r


# --- nothing usable ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "   ", "\n\t\n", None])
def test_empty(text):
    r = bad(text)
    assert (r.error_kind, r.errors, r.core, r.json_text) == ("empty", ["the model output is empty"], None, None)

def test_prose_only():
    r = bad("The passages do not say who founded Kwanzaa.")
    assert r.error_kind == "no_json"
    assert r.errors == ["no JSON object in the model output; it begins 'The passages do not say who founded Kwanzaa.'"]

def test_prose_only_long_is_abbreviated():
    r = bad("Kwanzaa " * 100)
    assert r.error_kind == "no_json" and r.message.endswith(" characters)") and len(r.message) < 140   # records.shown

def test_not_a_string():
    assert bad(42).errors == ["expected the model output as a string, got int"]


# --- truncated JSON ---------------------------------------------------------------------------------------------
def test_truncated_inside_string():
    r = bad(GOOD_TEXT[:60])
    assert r.error_kind == "invalid_json"
    assert r.errors == ["the JSON object starting at character 0 is not valid JSON: "
                        f"Unterminated string starting at character 51 {CUT}"]

def test_truncated_between_fields():
    text = '{"status": "answered", "citations": [2'
    assert bad(text).errors == ["the JSON object starting at character 0 is not valid JSON: "
                                f"Expecting ',' delimiter at character 38 {CUT}"]

def test_truncated_after_prose_reports_position_of_object():
    r = bad("Answer: " + GOOD_TEXT[:-1])
    assert r.error_kind == "invalid_json"
    assert r.message.startswith("the JSON object starting at character 8 is not valid JSON: ") and r.message.endswith(CUT)

def test_broken_json_in_middle_is_not_called_truncated():
    r = bad('{"status": "answered" "citations": [2], "answer": "x", "unknowns": []} and more')
    assert r.errors == ["the JSON object starting at character 0 is not valid JSON: Expecting ',' delimiter at character 22"]

def test_nested_too_deeply():
    r = bad('{"status": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert r.errors == ["the JSON object starting at character 0 is nested too deeply"]

def test_number_with_too_many_digits():
    r = bad('{"status": "answered", "citations": [' + "7" * 5000 + '], "answer": "x", "unknowns": []}')
    assert r.errors == ["the JSON object starting at character 0 holds a number with too many digits"]


# --- wrapping is tolerated --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "```json\n" + GOOD_TEXT + "\n```",
    "Sure! Here is the JSON you asked for:\n" + GOOD_TEXT + "\nI hope this helps.",
    "Set {a, b} aside. " + GOOD_TEXT,                                  # a brace that is not JSON comes first
    GOOD_TEXT + " " + json.dumps({**GOOD, "status": "refused"}),      # the first object wins
    json.dumps(GOOD, indent=2),
    GOOD_TEXT.replace("Kwanzaa was", "Kwanzaa\twas"),                   # raw tab: json strict=False
])
def test_wrapped_output_parses(text):
    r = parse(text, n_passages=3)
    assert r.ok and r.error_kind is None and r.errors == []
    assert r.core.status == "answered" and r.core.citations == [2]


# --- schema errors ----------------------------------------------------------------------------------------------
def test_extra_field():
    r = bad(json.dumps({**GOOD, "confidence": 0.9}))
    assert r.error_kind == "schema_error" and r.core is None
    assert r.errors == [f"unexpected field 'confidence' {FIELDS}"]
    assert r.json_text == json.dumps({**GOOD, "confidence": 0.9})

def test_missing_fields_and_metadata_from_model():
    r = bad(json.dumps({"status": "answered", "answer": "x", "canonical_url": "https://made.up"}))
    assert r.errors == ["missing field 'citations'", "missing field 'unknowns'",
                        f"unexpected field 'canonical_url' {FIELDS}"]

def test_wrong_types():
    r = bad(json.dumps({"status": ["answered"], "citations": ["2"], "answer": 5, "unknowns": "none"}))
    assert r.error_kind == "schema_error"
    assert r.errors == ["field 'status': expected one of 'answered', 'partial', 'refused' or 'clarify', got ['answered']",
                        "field 'citations[0]': expected an integer, got str '2'",
                        "field 'answer': expected a string, got int 5",
                        "field 'unknowns': expected a list, got str 'none'"]

@pytest.mark.parametrize("value,got", [(True, "bool True"), (2.0, "float 2.0"), (None, "null")])
def test_citation_must_be_a_plain_integer(value, got):
    assert bad(json.dumps({**GOOD, "citations": [value]})).errors == [f"field 'citations[0]': expected an integer, got {got}"]

def test_unknown_status():
    assert bad(json.dumps({**GOOD, "status": "maybe"})).errors == [
        "field 'status': expected one of 'answered', 'partial', 'refused' or 'clarify', got 'maybe'"]

def test_top_level_array_uses_first_object():
    r = bad('[{"status": "answered"}]')
    assert r.errors == ["missing field 'citations'", "missing field 'answer'", "missing field 'unknowns'"]

def test_duplicate_and_too_many_citations():
    assert bad(json.dumps({**GOOD, "citations": [2, 2]})).errors == [
        "field 'citations': passage 2 is cited more than once; cite each passage once"]
    r = bad(json.dumps({**GOOD, "citations": [1, 2, 3, 4, 5, 6]}), n_passages=8)
    assert r.errors == ["field 'citations': at most 5 items, got 6"]

def test_unknowns_limits():
    assert bad(json.dumps({**GOOD, "unknowns": ["a", "b", "c", "d"]})).errors == ["field 'unknowns': at most 3 items, got 4"]
    assert bad(json.dumps({**GOOD, "unknowns": ["x" * 121]})).errors == ["field 'unknowns[0]': at most 120 characters, got 121"]
    assert bad(json.dumps({**GOOD, "unknowns": [""]})).errors == ["field 'unknowns[0]': must not be empty"]


# --- citations to passages that were not in the context ---------------------------------------------------------
def test_citation_to_absent_passage():
    text = json.dumps({**GOOD, "citations": [2, 7], "answer": "In 1966 [2][7]."})
    r = bad(text, n_passages=3)
    assert r.error_kind == "citation_out_of_range"
    assert r.errors == ["citation 7 is not a passage number: the context had passages 1..3"]
    assert r.core is not None and r.core.citations == [2, 7]  # kept: the evaluator still scores the status

def test_citation_beyond_any_context():
    r = bad(json.dumps({**GOOD, "citations": [0, 9]}), n_passages=3)
    assert r.error_kind == "citation_out_of_range" and r.core is None
    assert r.errors == ["citation 0 is not a passage number: the context had passages 1..3",
                        "citation 9 is not a passage number: the context had passages 1..3"]

def test_citation_with_empty_context():
    assert bad(GOOD_TEXT, n_passages=0).errors == ["citation 2 is not a passage number: the context had no passages"]

def test_out_of_range_together_with_schema_error_is_a_schema_error():
    r = bad(json.dumps({**GOOD, "citations": [9], "answer": 5}), n_passages=3)
    assert r.error_kind == "schema_error"
    assert r.errors == ["field 'answer': expected a string, got int 5",
                        "citation 9 is not a passage number: the context had passages 1..3"]

def test_assemble_refuses_absent_passage():
    core = AnswerCore(status="answered", citations=[3], answer="x [3]", unknowns=[])
    with pytest.raises(ContractError, match=r"^citation 3 is not a passage number: the context had no passages$"):
        assemble(core, [], "q")
    with pytest.raises(ContractError, match=r"^citation 3 is not a passage number: the context had passages 1\.\.2$"):
        assemble(core, CHUNKS[:2], "q")


# --- a runaway answer -------------------------------------------------------------------------------------------
def test_100kB_answer():
    text = json.dumps({**GOOD, "answer": "Kwanzaa " * 12_500})
    assert len(text) > 100_000
    t0 = time.perf_counter()
    r = bad(text)
    assert time.perf_counter() - t0 < 1.0
    assert r.error_kind == "schema_error"
    assert r.errors == [f"field 'answer': at most {MAX_ANSWER_CHARS} characters, got 100000"]

def test_100kB_of_braces_is_fast():
    t0 = time.perf_counter()
    r = bad("{" * 100_000)
    assert time.perf_counter() - t0 < 2.0 and r.error_kind == "invalid_json"


# --- unusual Unicode --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer", ["Kwanzaa 🕯️✊🏾 [2]", "كوانزا عيد [2]", "\u202eright-to-left override [2]",
                                    "Umoja\u200d\u2060 zero-width [2]", "line one\nline two [2]"])
def test_unusual_but_printable_unicode_is_kept(answer):
    for ensure_ascii in (True, False):
        r = parse(json.dumps({**GOOD, "answer": answer}, ensure_ascii=ensure_ascii), n_passages=3)
        assert r.ok and r.core.answer == answer
    assert parse(core_to_text(r.core)).core == r.core

def test_emoji_counts_code_points_not_bytes():
    answer = "🕯" * MAX_ANSWER_CHARS
    assert parse(json.dumps({**GOOD, "answer": answer})).ok
    assert bad(json.dumps({**GOOD, "answer": answer + "🕯"})).errors == [
        f"field 'answer': at most {MAX_ANSWER_CHARS} characters, got {MAX_ANSWER_CHARS + 1}"]

@pytest.mark.parametrize("text", [json.dumps({**GOOD, "answer": "Kwanzaa\u0000 [2]"}),       # escaped NUL
                                  GOOD_TEXT.replace("Kwanzaa was", "Kwanzaa\x00was")])    # raw NUL
def test_nul_is_rejected(text):
    r = bad(text)
    assert r.error_kind == "schema_error"
    assert r.errors == ["field 'answer': contains the control character U+0000 at position 7; "
                        "only printable text, newlines and tabs are allowed"]

def test_control_character_in_unknowns():
    assert bad(json.dumps({**GOOD, "unknowns": ["a\x1bb"]})).errors == [
        "field 'unknowns': contains the control character U+001B at position 1; "
        "only printable text, newlines and tabs are allowed"]

def test_lone_surrogate_is_rejected():
    r = bad('{"status": "answered", "citations": [2], "answer": "x \\ud800 [2]", "unknowns": []}')
    assert r.errors == ["field 'answer': contains a lone surrogate such as \\ud800, which is not a character"]

def test_nul_outside_the_object_is_ignored():
    r = parse("\x00\x00" + GOOD_TEXT + "\x00", n_passages=3)
    assert r.ok and r.json_text == GOOD_TEXT


# --- incoherent but schema-valid cores are for the evaluator, not parse -----------------------------------------
def test_incoherent_core_parses_and_is_flagged():
    text = json.dumps({"status": "refused", "citations": [2], "answer": "The passages do not say [2].", "unknowns": []})
    r = parse(text, n_passages=3)
    assert r.ok
    assert check_consistency(r.core) == ["status 'refused' must cite nothing, got citations [2]",
                                         "status 'refused' must not mark passages in the answer, found [2]"]
    doc = assemble(r.core, CHUNKS, "q")
    assert doc.sources == [] and doc.integrity.fallback_behavior == "refusal"  # a refusal never carries sources

def test_answer_without_citation_when_required():
    core = AnswerCore(status="answered", citations=[], answer="In 1966.", unknowns=[])
    assert check_consistency(core, Toggles(require_citations=True)) == [
        "status 'answered' needs at least one citation when citations are required"]
    assert check_consistency(core, Toggles(require_citations=False)) == []
