"""outputs/golden/human_review_scores.json from the filled sheet (issue #25 item 6).

    python outputs/golden/score_review.py"""
import sys
from pathlib import Path
from kwanzaa.records import atomic_write_json, provenance
from kwanzaa.review import score_review_sheet

HERE = Path("outputs/golden")
sheet, preds = HERE / "human_review.csv", HERE / "eval/adapter_extractive_calibrated_overlap/predictions.jsonl"
res = score_review_sheet(sheet) | {
    "arm": "adapter+extractive+calibrated+overlap",
    "reviewer": "one reviewer, a separate agent session (not a person), reading each answer against its passages and the "
                "gold answer, with the rules in the sheet's columns (2026-12-06)",
    "provenance": provenance(data_paths=[sheet, preds], command="python " + " ".join(sys.argv))}
atomic_write_json(HERE / "human_review_scores.json", res)
print(res["critical_hallucinations"], res["flagged"], res["means"])
