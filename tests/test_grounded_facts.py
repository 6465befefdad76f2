"""Issue #25, item 5: key facts on word boundaries and grounded in a cited gold passage, per-fact recall, unsupported
sentences, and the re-score of the committed golden predictions. Every expected value is worked out by hand."""
import json
from pathlib import Path

import pytest

from kwanzaa.contract import AnswerCore, Toggles
from kwanzaa.examples import Example, Gold
from kwanzaa.contract import sentences
from kwanzaa.evaluate import METRICS, compute_metrics, has_fact, score_item, summary_lines, write_report
from kwanzaa.review import rescore, rescore_table

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_EVAL = ROOT / "outputs" / "freetext" / "eval"
CTX = [f"kwanzaa_notes_n{i}::chunk::0" for i in range(1, 4)]  # passage 2 supports; 1 and 3 are distractors
PASSAGES = ["Kwanzaa is observed every year from December 26 to January 1, a period of seven days.",
            "Kwanzaa was created in 1966 by Maulana Karenga, a professor of Africana studies.",
            "The colours of Kwanzaa are black for the people, red for their struggle and green for hope."]
FACTS = ("1966", "Maulana Karenga")


def ex(id, status="answered", facts=FACTS):
    ok = status in ("answered", "partial")
    return Example(id=id, persona="educator", category="single_source", toggles=Toggles(), question="Who and when?",
                   context=CTX, gold=Gold(status=status, supporting=[CTX[1]] if ok else [], key_facts=list(facts) if ok else []),
                   target=AnswerCore(status=status, citations=[2] if ok else [], answer="x [2]." if ok else "no", unknowns=[]))


def out(cites, answer, status="answered"):
    return json.dumps({"status": status, "citations": cites, "answer": answer, "unknowns": []})


def score(e, o):
    return score_item(e, o, chunks=PASSAGES)


def test_a_fact_counts_in_a_sentence_citing_a_supporting_passage_not_a_distractor():
    good = score(ex("a"), out([2], "Kwanzaa was created in 1966 by Maulana Karenga [2]."))
    distractor = score(ex("b"), out([3], "Kwanzaa was created in 1966 by Maulana Karenga [3]."))
    assert good["key_facts_found"] == ["1966", "Maulana Karenga"] and good["key_fact_ok"] is True
    assert distractor["key_facts_found"] == [] and distractor["key_fact_ok"] is False
    assert distractor["key_fact_ok_substring"] is True          # the old rule was fooled
    assert distractor["key_fact_ok_ungrounded"] is True         # word boundaries alone are too
    # two sentences: the facts must sit in the one citing passage 2
    split = score(ex("c"), out([1, 2], "Kwanzaa was created in 1966 [1]. Maulana Karenga made it [2]."))
    assert split["key_facts_found"] == ["Maulana Karenga"] and split["key_fact_share"] == 0.5


def test_a_fact_inside_a_longer_number_or_word_does_not_count():
    s = score(ex("a"), out([2], "It began in 19660 by Maulana Karenga [2]."))
    assert s["key_facts_found"] == ["Maulana Karenga"] and s["key_fact_ok"] is False
    assert s["key_fact_ok_substring"] is True
    assert not has_fact("Umoja", "Umojaa is not a word") and has_fact("Umoja", "Umoja, meaning unity")
    assert not has_fact("1", "a marker [1] is not text") and has_fact("1", "day 1 [2]")


def test_a_verbatim_copy_is_supported_and_a_paraphrase_is_not():
    copied = score(ex("a"), out([2], "Kwanzaa was created in 1966 by Maulana Karenga [2]."))
    para = score(ex("b"), out([2], "Maulana Karenga, a professor, founded it in 1966 [2]."))
    wrong = score(ex("c"), out([1], "Kwanzaa was created in 1966 by Maulana Karenga [1]."))   # copied, wrong passage
    gap = score(ex("d"), out([2], "A period of seven days [2]. The passages do not say why.", status="partial"))
    assert (copied["n_sentences"], copied["n_unsupported"]) == (1, 0)
    assert (para["n_sentences"], para["n_unsupported"]) == (1, 1)
    assert (wrong["n_sentences"], wrong["n_unsupported"]) == (1, 1)
    assert (gap["n_sentences"], gap["n_unsupported"]) == (1, 1)  # the gap sentence is not counted; [2] is the wrong passage
    refused = score(ex("e"), out([], "The passages do not say.", status="refused"))
    assert refused["n_sentences"] is None                        # only answered/partial cores are counted


def test_metrics_over_the_hand_made_items():
    pairs = [(ex("a"), out([2], "Kwanzaa was created in 1966 by Maulana Karenga [2].")),     # grounded, copied
             (ex("b"), out([3], "Kwanzaa was created in 1966 by Maulana Karenga [3].")),     # distractor
             (ex("c"), out([2], "Created in 1966 [2].")),                                     # one of two facts, copied
             (ex("d"), out([], "Not said.", status="refused")),                               # false refusal
             (ex("u", status="refused"), out([2], "In 1999 [2]."))]                           # unanswerable, answered
    m = compute_metrics([score(e, o) for e, o in pairs])
    # answerable with facts: a, b, c, d. grounded all: a -> 1/4; substring: a, b -> 2/4; shares 1 + 0 + 0.5 + 0 = 1.5
    assert m["counts"]["key_fact_accuracy"] == [1, 4] and m["counts"]["key_fact_accuracy_substring"] == [2, 4]
    assert m["counts"]["key_fact_accuracy_ungrounded"] == [2, 4]
    assert m["counts"]["key_fact_recall"][0] == pytest.approx(1.5) and m["key_fact_recall"] == pytest.approx(1.5 / 4)
    # sentences of answered cores a, b, c, u: b (wrong passage) and u ("In 1999") unsupported -> 2/4
    assert m["counts"]["unsupported_sentence_rate"] == [2, 4] and m["unsupported_sentence_rate"] == pytest.approx(0.5)
    assert all(m[k] is None or 0 <= m[k] <= 1 for k in METRICS)


def test_without_passages_the_unsupported_rate_is_undefined_not_zero():
    m = compute_metrics([score_item(ex("a"), out([2], "Created in 1966 by Maulana Karenga [2]."))])
    assert m["unsupported_sentence_rate"] is None and m["counts"]["unsupported_sentence_rate"] == [0, 0]
    assert m["key_fact_accuracy"] == 1.0


def test_sentence_splitting_rules():
    assert sentences("It cost 2.5 dollars [1]. Dr. Karenga and W. E. B. Du Bois wrote [2]! Why? Fine.") == [
        "It cost 2.5 dollars [1].", "Dr. Karenga and W. E. B. Du Bois wrote [2]!", "Why?", "Fine."]
    assert sentences("They ask 'Habari gani?' and reply [1]. Swahili spread [1]; tutaonana means 'see you' [3].") == [
        "They ask 'Habari gani?' and reply [1].", "Swahili spread [1];", "tutaonana means 'see you' [3]."]


def test_report_and_summary_show_the_new_metrics(tmp_path):
    m = compute_metrics([score(ex("a"), out([2], "Created in 1966 by Maulana Karenga [2].")),
                         score(ex("b"), out([3], "In 1966, by Maulana Karenga [3]."))])
    text = write_report({"adapter": {"arm": "adapter", **m}}, tmp_path / "report.md")
    assert "| key_fact_accuracy | 50% (1/2) |" in text and "| key_fact_accuracy_substring | 100% (2/2) |" in text
    assert "| unsupported_sentence_rate | 50% (1/2) |" in text and "lower is better" in text
    lines = summary_lines({"adapter": m})
    assert lines[1].startswith("  key facts: all found, grounded in a cited gold passage, on 1/2 answerable items "
                               "(substring rule: 2/2); per-fact recall 50%")


def test_rescore_reproduces_the_committed_key_fact_accuracy_exactly(tmp_path):
    arms = {json.loads(p.read_text())["arm"]: json.loads(p.read_text()) for p in GOLDEN_EVAL.glob("*/metrics.json")}
    before = {p: p.read_bytes() for p in GOLDEN_EVAL.rglob("*") if p.is_file()}
    v2 = rescore(GOLDEN_EVAL, out=tmp_path / "v2.json", command="test")
    assert set(v2["arms"]) == set(arms) and len(arms) >= 4
    for a, r in v2["arms"].items():
        assert r["counts"]["key_fact_accuracy_substring"] == arms[a]["counts"]["key_fact_accuracy"], a
        assert r["key_fact_accuracy_substring"] == arms[a]["key_fact_accuracy"], a
        assert r["old"]["counts"] == arms[a]["counts"]["key_fact_accuracy"]
    assert v2["gold_targets"]["key_fact_accuracy"] == 1.0
    assert {p: p.read_bytes() for p in GOLDEN_EVAL.rglob("*") if p.is_file()} == before   # nothing rewritten
    saved = json.loads((tmp_path / "v2.json").read_text())
    assert saved["arms"] == v2["arms"] and {"command", "data_hash", "git_commit"} <= set(saved["provenance"])
    assert rescore_table(v2).count("\n") == len(arms) + 3


def test_committed_metrics_v2_matches_a_fresh_rescore(tmp_path):
    committed = json.loads((ROOT / "outputs" / "freetext" / "metrics_v2.json").read_text())
    fresh = rescore(GOLDEN_EVAL, out=tmp_path / "v2.json", command="test")
    assert committed["arms"] == fresh["arms"] and committed["gold_targets"] == fresh["gold_targets"]
