"The decision comparison in outputs/freetext/decisions.json is what the command computes from the committed predictions."
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_decisions_file_is_reproduced_from_the_committed_predictions(tmp_path):
    out = tmp_path / "decisions.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, "-m", "kwanzaa", "calibrate", "decisions", "outputs/freetext/eval", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    got, committed = json.loads(out.read_text()), json.loads((ROOT / "outputs/freetext/decisions.json").read_text())
    assert got["decisions"] == committed["decisions"] and got["check_threshold"] == committed["check_threshold"]
    assert got["provenance"]["data_hash"] == committed["provenance"]["data_hash"]
    cal = got["decisions"]["calibrated threshold (adapter+constrained+calibrated)"]
    metrics = json.loads((ROOT / "outputs/freetext/eval/adapter_constrained_calibrated/metrics.json").read_text())
    assert cal["refusal_precision"] == metrics["refusal_precision"] and cal["refusal_recall"] == metrics["refusal_recall"]
    assert "refusal precision" in p.stdout


def test_human_review_scores_are_those_of_the_filled_sheet():
    "The scored review in outputs/freetext is the sheet's own: every row rated, the means and flags recomputed."
    from kwanzaa.review import score_review_sheet
    sheet = ROOT / "outputs/freetext/human_review.csv"
    got, committed = score_review_sheet(sheet), json.loads((ROOT / "outputs/freetext/human_review_scores.json").read_text())
    assert got["n"] == 20 and {k: committed[k] for k in got} == got
    import csv
    rows = list(csv.DictReader(open(sheet, encoding="utf-8")))
    assert all(r["arm"] == committed["arm"] and r["notes"].strip() for r in rows)   # the headline arm, each with a note


def test_the_headline_review_is_its_filled_sheet_on_the_headline_arm():
    "Issue #25 item 6: the review of the extractive headline (outputs/golden) is its own sheet's, on the arm ask() uses."
    import csv
    from kwanzaa.review import score_review_sheet
    sheet, scores = ROOT / "outputs/golden/human_review.csv", ROOT / "outputs/golden/human_review_scores.json"
    got, committed = score_review_sheet(sheet), json.loads(scores.read_text())
    assert got["n"] == 20 and {k: committed[k] for k in got} == got
    rows = list(csv.DictReader(open(sheet, encoding="utf-8")))
    assert {r["arm"] for r in rows} == {"adapter+extractive+calibrated+overlap"} == {committed["arm"]}
    assert all(r["notes"].strip() for r in rows)
    preds = {json.loads(l)["id"]: json.loads(l) for l in
             open(ROOT / "outputs/golden/eval/adapter_extractive_calibrated_overlap/predictions.jsonl", encoding="utf-8")}
    for r in rows:   # each rated answer is the one the evaluation scored
        assert r["answer"] == (preds[r["id"]]["parsed"] or {}).get("answer", r["answer"]), r["id"]
