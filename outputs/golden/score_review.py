"""outputs/golden/human_review_scores.json from the filled sheet (issue #25 item 6).

    python outputs/golden/score_review.py"""
import sys
from pathlib import Path
from kwanzaa.records import atomic_write_json, provenance
from kwanzaa.review import score_review_sheet

HERE = Path("outputs/golden")
sheet, preds = HERE / "human_review.csv", HERE / "eval/adapter_extractive_calibrated_rank/predictions.jsonl"
res = score_review_sheet(sheet) | {
    "arm": "adapter+extractive+calibrated+rank",
    "reviewer": "one reviewer, a separate agent session (not a person), reading each answer against its passages and the "
                "gold answer, with the rules in the sheet's columns (2026-12-06); "
                "session 13 (2026-12-07): the 15 answers the +rank arm left as the +overlap arm wrote them keep their ratings, "
                "the 5 it changed (notes-gold-08, ps-g-12, ps-g-11, notes-gold-15, ps-g-02) were rated again by a separate "
                "agent session with the same rules",
    "provenance": provenance(data_paths=[sheet, preds], command="python " + " ".join(sys.argv))}
atomic_write_json(HERE / "human_review_scores.json", res)
print(res["critical_hallucinations"], res["flagged"], res["means"])
