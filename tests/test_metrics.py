"""Every evaluation metric on hand-made predictions whose right values are worked out by hand below."""
import csv, json

import pytest
from hypothesis import given, settings, strategies as st

from kwanzaa.contract import AnswerCore, Chunk, Toggles
from kwanzaa.examples import DataError, Example, Gold
from kwanzaa.evaluate import METRICS, breakdown, check_thresholds, compute_metrics, recite, score_item
from kwanzaa.review import REVIEW_COLUMNS, ReviewSheetError, score_review_sheet

CTX = [f"kwanzaa_notes_n{i}::chunk::0" for i in range(1, 5)]  # four passages; gold is passage 3 unless said


def ex(id, status="answered", persona="educator", category="single_source", supporting=(CTX[2],), facts=("1966",),
       n=4, **toggles):
    context = CTX[:n]
    cites = [context.index(s) + 1 for s in supporting] if status in ("answered", "partial") else []
    return Example(id=id, persona=persona, category=category, toggles=Toggles(**toggles), question="q?",
                   context=context,
                   gold=Gold(status=status, supporting=list(supporting) if cites else [], key_facts=list(facts) if cites else []),
                   target=AnswerCore(status=status, citations=cites, answer="x" if cites else "no", unknowns=[]))


def out(status, cites, answer, unknowns=()):
    return json.dumps({"status": status, "citations": cites, "answer": answer, "unknowns": list(unknowns)})


def metrics(pairs):
    return compute_metrics([score_item(e, o) for e, o in pairs])


def test_json_parse_strict_and_schema_rates():
    pairs = [(ex("a"), out("answered", [3], "In 1966 [3].")),                        # strict, valid
             (ex("b"), "Here: " + out("answered", [3], "In 1966 [3].")),             # readable, not strict, valid
             (ex("c"), out("answered", [9], "In 1966 [9].")),                        # JSON, out-of-range citation
             (ex("d"), '{"status": "answered", "citations": [3], "answer": 1966, "unknowns": []}'),  # wrong type
             (ex("e"), '{"status": "answered", "citations": [3], "answer": "In 19'),  # truncated
             (ex("f"), ""),                                                          # empty
             (ex("g"), "In 1966.")]                                                  # prose
    m = metrics(pairs)
    # JSON objects found: a, b, c, d = 4/7; exactly one object: a, c, d = 3/7; valid cores in context: a, b = 2/7
    assert m["counts"]["json_parse_rate"] == [4, 7]
    assert m["counts"]["json_strict_rate"] == [3, 7]
    assert m["counts"]["schema_compliance"] == [2, 7]
    assert m["error_kinds"] == {"none": 2, "citation_out_of_range": 1, "schema_error": 1, "invalid_json": 1,
                                "empty": 1, "no_json": 1}
    assert m["json_parse_rate"] == pytest.approx(4 / 7)


@pytest.mark.parametrize("wrap", [lambda j: j + "\n", lambda j: "\n  " + j + "  \n", lambda j: "\t" + j + "\r\n"])
def test_surrounding_whitespace_is_still_strict(wrap):
    "A model's one JSON object followed by a newline (as most do) counts as strict; whitespace is not extra text."
    raw = wrap(out("answered", [3], "In 1966 [3]."))
    s = score_item(ex("a"), raw)
    assert (s["json_ok"], s["json_strict"], s["schema_ok"]) == (True, True, True)
    assert score_item(ex("a"), raw + "ok")["json_strict"] is False   # extra text after it is not strict


def test_citation_coverage_counts_only_answerable_items_that_require_citations():
    pairs = [(ex("a"), out("answered", [3], "1966 [3].")),                            # covered
             (ex("b"), out("answered", [], "1966.")),                                 # not covered
             (ex("c"), out("answered", [7], "1966 [7].")),                            # cites no context passage
             (ex("d", require_citations=False), out("answered", [], "1966.")),        # citations optional: excluded
             (ex("e", status="refused"), out("refused", [], "No.")),                  # unanswerable: excluded
             (ex("f"), "garbage")]                                                    # not covered
    m = metrics(pairs)
    assert m["counts"]["citation_coverage"] == [1, 4]
    assert m["citation_coverage"] == 0.25


def test_citation_validity_checks_citations_and_markers():
    pairs = [(ex("a"), out("answered", [3], "1966 [3].")),                            # valid
             (ex("b"), out("answered", [3], "1966 [3] and [5].")),                    # marker 5 not in context
             (ex("c", n=2, supporting=(CTX[1],)), out("answered", [3], "1966 [3].")), # only 2 passages
             (ex("d"), out("answered", [], "1966.")),                                 # cites nothing: excluded
             (ex("e"), out("refused", [], "No."))]                                    # excluded
    m = metrics(pairs)
    assert m["counts"]["citation_validity"] == [1, 3]


def test_citation_precision_and_recall_are_pooled_over_cited_and_gold_passages():
    pairs = [(ex("a"), out("answered", [3], "1966 [3].")),                            # cited {3}, gold {3}
             (ex("b", supporting=(CTX[0], CTX[2])), out("answered", [1, 2], "1966 [1][2].")),  # gold {1,3}
             (ex("c"), out("answered", [4], "1966 [4].")),                            # wrong
             (ex("d"), out("refused", [], "No.")),                                    # gold {3} missed
             (ex("e", status="refused"), out("answered", [2], "1999 [2]."))]          # cites on unanswerable
    m = metrics(pairs)
    # cited: 1 + 2 + 1 + 0 + 1 = 5; gold among them: a's 3, b's 1 -> 2/5
    # gold passages of answerable items: 1 + 2 + 1 + 1 = 5; cited: a's 3, b's 1 -> 2/5
    assert m["counts"]["citation_precision"] == [2, 5]
    assert m["counts"]["citation_recall"] == [2, 5]


def test_refusal_precision_recall_f1():
    refused = out("refused", [], "The passages do not say.")
    pairs = [(ex("u1", status="refused"), refused),                                   # TP
             (ex("u2", status="refused"), refused),                                   # TP
             (ex("u3", status="refused"), out("answered", [1], "1999 [1].")),         # FN
             (ex("u4", status="refused"), "{broken"),                                 # FN
             (ex("a1"), refused),                                                     # FP
             (ex("a2"), out("answered", [3], "1966 [3]."))]                           # TN
    m = metrics(pairs)
    assert m["counts"]["refusal_precision"] == [2, 3]
    assert m["counts"]["refusal_recall"] == [2, 4]
    p, r = 2 / 3, 2 / 4
    assert m["refusal_f1"] == pytest.approx(2 * p * r / (p + r))  # 4/7
    assert m["refusal_f1"] == pytest.approx(4 / 7)


def test_refusal_precision_is_undefined_without_refusals_and_fails_its_threshold():
    m = metrics([(ex("a"), out("answered", [3], "1966 [3].")), (ex("u", status="refused"), out("answered", [1], "x [1]."))])
    assert m["refusal_precision"] is None and m["refusal_recall"] == 0.0 and m["refusal_f1"] is None
    th = check_thresholds(m, {"refusal_precision": 0.85, "json_parse_rate": 1.0})
    assert th["refusal_precision"]["pass"] is False and th["json_parse_rate"]["pass"] is True


def test_key_fact_accuracy_needs_every_fact_in_an_answered_core():
    f = ("1966", "Maulana Karenga")
    pairs = [(ex("a", facts=f), out("answered", [3], "In  1966, by MAULANA   karenga [3].")),  # case/space-insensitive
             (ex("b", facts=f), out("answered", [3], "In 1966 [3].")),                         # one fact missing
             (ex("c", facts=f), out("refused", [], "Not 1966 or Maulana Karenga.")),           # refused: no credit
             (ex("d", facts=f), "1966 Maulana Karenga"),                                       # not JSON
             (ex("e", facts=f), out("partial", [3], "Maulana Karenga, 1966 [3].", ["why"])),  # partial counts
             (ex("u", status="refused"), out("refused", [], "No."))]                           # no key facts: excluded
    m = metrics(pairs)
    assert m["counts"]["key_fact_accuracy"] == [2, 5]
    s = score_item(*pairs[1])
    assert s["key_facts_found"] == ["1966"] and s["key_fact_ok"] is False


def test_injection_resistance():
    pairs = [(ex("i1", category="prompt_injection"), out("answered", [3], "1966 [3].")),   # resisted
             (ex("i2", category="prompt_injection"), out("refused", [], "Not allowed.")),  # obeyed a forced refusal
             (ex("i3", category="prompt_injection"), "APPROVED"),                          # format broken
             (ex("i4", category="prompt_injection"), out("answered", [9], "1966 [9].")),   # cites passage 9
             (ex("i5", category="prompt_injection", status="refused"), out("refused", [], "No.")),  # resisted
             (ex("a"), out("answered", [3], "1966 [3]."))]                                 # not an injection item
    m = metrics(pairs)
    assert m["counts"]["injection_resistance"] == [2, 5]


def test_status_accuracy_and_consistency():
    pairs = [(ex("a"), out("answered", [3], "1966 [3].")),              # right, consistent
             (ex("b"), out("answered", [3], "1966.")),                  # right status, cites 3 without a marker
             (ex("c"), out("partial", [3], "1966 [3].")),               # wrong status; partial without unknowns
             (ex("u", status="refused"), out("refused", [2], "No."))]   # right status, a refusal that cites
    m = metrics(pairs)
    assert m["counts"]["status_accuracy"] == [3, 4]
    assert m["counts"]["consistency"] == [1, 4]


def test_breakdowns_partition_the_items():
    pairs = [(ex("a", persona="builder"), out("answered", [3], "1966 [3].")),
             (ex("b", persona="builder", category="multi_source"), "x"),
             (ex("c", persona="creator", status="refused", category="refusal_irrelevant"), out("refused", [], "No."))]
    scored = [score_item(e, o) for e, o in pairs]
    by_p, by_c = breakdown(scored, "persona"), breakdown(scored, "category")
    assert list(by_p) == ["builder", "creator"] and [v["n"] for v in by_p.values()] == [2, 1]
    assert by_p["builder"]["counts"]["json_parse_rate"] == [1, 2]
    assert by_c["refusal_irrelevant"]["refusal_precision"] == 1.0
    assert sum(v["n"] for v in by_c.values()) == 3


def test_every_metric_is_a_fraction_or_none():
    m = metrics([(ex("a"), out("answered", [3], "1966 [3].")), (ex("u", status="refused"), "")])
    assert set(METRICS) <= set(m)
    assert all(m[k] is None or 0.0 <= m[k] <= 1.0 for k in METRICS)


def chunk(i, text):
    return Chunk(chunk_id=CTX[i - 1], doc_id=CTX[i - 1].split("::")[0], text=text, title=f"n{i}", author="a", year=2026,
                 source_org="o", license="CC-BY-4.0", canonical_url="https://example.org", namespace="kwanzaa_notes",
                 content_type="reference_note")


def test_recite_moves_a_wrong_citation_to_the_best_supported_passage_and_lifts_precision():
    chunks = [chunk(1, "Kwanzaa lasts seven days."), chunk(2, "The kinara holds seven candles."),
              chunk(3, "Kwanzaa was created in 1966 by Maulana Karenga."), chunk(4, "Zawadi are gifts.")]
    e = ex("a", facts=("1966",))
    wrong = out("answered", [1], "It was created in 1966 by Maulana Karenga [1].")
    before = score_item(e, wrong)
    from kwanzaa.contract import parse
    core = recite(parse(wrong).core, chunks)
    after = score_item(e, wrong, core=core)
    assert core.citations == [3] and core.answer.endswith("[3].")
    assert (before["n_cited_gold"], after["n_cited_gold"]) == (0, 1)
    assert after["consistent"]
    # a right citation, a refusal and an uncited answer are left alone
    right = parse(out("answered", [3], "Created in 1966 by Maulana Karenga [3].")).core
    assert recite(right, chunks) == right
    assert recite(parse(out("refused", [], "No.")).core, chunks).citations == []
    assert recite(parse(out("answered", [], "1966.")).core, chunks).citations == []


@settings(deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=100), st.integers(), st.none(),
                 st.lists(st.integers(), max_size=3),
                 st.builds(lambda d: json.dumps(d), st.dictionaries(st.sampled_from(["status", "citations", "answer",
                           "unknowns", "x"]), st.one_of(st.text(max_size=20), st.integers(), st.lists(st.integers(), max_size=6))))))
def test_score_item_never_raises_on_any_output(raw):
    s = score_item(ex("a"), raw)
    assert isinstance(s["json_ok"], bool) and isinstance(s["schema_ok"], bool)
    assert s["schema_ok"] == (s["error_kind"] is None)


def test_over_long_output_is_a_schema_error():
    s = score_item(ex("a"), out("answered", [3], "1966 " * 200 + "[3]"))
    assert (s["error_kind"], s["json_ok"], s["schema_ok"]) == ("schema_error", True, False)
    assert any("at most 600 characters" in e for e in s["errors"])


def test_bad_golden_line_names_the_line(tmp_path):
    from kwanzaa.config import load_config
    from kwanzaa.evaluate import evaluate
    good = ex("a").model_dump(mode="json")
    p = tmp_path / "golden.jsonl"
    p.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", "persona": "teacher"}) + "\n")
    with pytest.raises(DataError, match=r"golden.jsonl:2: field 'persona'"):
        evaluate(load_config("cpu"), p, "base", tmp_path / "out", corpus={})


def test_review_sheet_scoring(tmp_path):
    rows = [dict(id=f"q{i}", persona=p, answer_quality=a, citation_quality=c, integrity=g, critical_hallucination=h)
            for i, (p, a, c, g, h) in enumerate([("educator", 5, 4, 5, "no"), ("educator", 3, 2, 3, "yes"),
                                                 ("builder", 4, 3, 1, "No")])]
    p = tmp_path / "sheet.csv"
    def write(rows):
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=REVIEW_COLUMNS, restval=""); w.writeheader(); w.writerows(rows)
    write(rows)
    r = score_review_sheet(p)
    assert r["n"] == 3 and r["means"] == {"answer_quality": 4.0, "citation_quality": 3.0, "integrity": 3.0}
    assert r["by_persona"]["educator"]["answer_quality"] == 4.0 and r["by_persona"]["builder"]["integrity"] == 1.0
    assert (r["critical_hallucinations"], r["flagged"]) == (1, ["q1"])
    rows[0]["answer_quality"] = ""; rows[2]["citation_quality"] = "3.5"
    write(rows)
    with pytest.raises(ReviewSheetError) as e:
        score_review_sheet(p)
    assert "sheet.csv:2: column 'answer_quality'" in str(e.value) and "sheet.csv:4: column 'citation_quality'" in str(e.value)
