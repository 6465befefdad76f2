"""Issue #25: the unit ranker's check on the second context source, on the VALIDATION split: the headline adapter's
extractive answers through the project's own BM25 top 4 (as ask() gets them), +overlap against +rank, same generations.
Run on a 2-core CPU (float32), like the headline's evaluation.

Rule, written while this ran and before its numbers were seen (session 13, after the golden set showed live citation
precision 56% -> 48% and README's own example "Who created Kwanzaa?" losing Karenga under +rank): `rank` stays ask()'s
default only if, here, +rank holds all key facts on at least as many items as +overlap and its citation precision is at
most 2 points lower; otherwise ask() goes back to overlap and the ranker stays an opt-in (eval.sentence_choice: rank, the
+rank arm).

    python outputs/experiments/unit-ranker/live_validation.py"""
import sys
from kwanzaa.config import load_config
from kwanzaa.examples import load_examples, datasets_dir
from kwanzaa.live import compare_arms_live
ARMS = ["adapter+extractive+calibrated", "adapter+extractive+calibrated+overlap", "adapter+extractive+calibrated+rank"]
cfg = load_config("small-gpu", overrides={"model.device": "cpu", "eval.arms": ARMS})
res = compare_arms_live(cfg, load_examples(datasets_dir() / "validation.jsonl"), "outputs/experiments/unit-ranker/live-validation",
                        adapter_dir="outputs/golden/adapter", progress=True)
for arm, m in res.items():
    c = m["counts"]
    print(arm, {k: c[k] for k in ("key_fact_accuracy", "citation_precision", "citation_coverage", "refusal_precision", "refusal_recall")})
