"""Issue #25: which trained run of the small-gpu recipe becomes the headline, decided on the VALIDATION split only.

Two runs of the same recipe (16-bit LoRA small-gpu, the last of 6 epochs) exist: session 7's (its epoch-6 checkpoint,
outputs/experiments/extractive-gpu/lora-epoch6; generations on validation made on the GPU) and session 8's
(outputs/experiments/method-quality/lora; generations on validation made on this CPU by .ci/gpu/validation_choice.py into
session8-run/). Both are scored here with the same arms, adapter+extractive and its +overlap re-score.

    python outputs/experiments/headline-choice/summarize.py"""
import json, sys
from pathlib import Path
from kwanzaa.config import load_config
from kwanzaa.corpus import build_corpus
from kwanzaa.evaluate import compute_metrics, score_text
from kwanzaa.examples import load_examples
from kwanzaa.records import atomic_write_json, provenance, read_predictions

HERE = Path(__file__).parent
exs = load_examples("kwanzaa/datasets/validation.jsonl")
corpus = build_corpus()
runs = {"session7-epoch6": Path("outputs/experiments/extractive-gpu/validation-epochs/last-epoch6/adapter_extractive/predictions.jsonl"),
        "session8": HERE / "session8-run/adapter_extractive/predictions.jsonl"}
keys = ("citation_coverage", "citation_precision", "refusal_precision", "refusal_recall", "status_accuracy", "key_fact_accuracy",
        "key_fact_recall", "unsupported_sentence_rate")
out = {}
for name, p in runs.items():
    recs = read_predictions(p)
    for overlap in (False, True):
        scored = [score_text(e, recs[e.id]["text"], [corpus.get(c) for c in e.context], False, overlap)[0] for e in exs]
        m = compute_metrics(scored)
        out.setdefault(name, {})["adapter+extractive" + ("+overlap" if overlap else "")] = {
            k: m[k] for k in keys} | {"counts": {k: m["counts"][k] for k in keys}}
res = {"what": __doc__.split("\n\n")[0], "split": "validation (84 items)", "runs": out,
       "decision": "session8: the two runs tie on validation (all key facts with +overlap 24 vs 25 of 59; refusal precision "
                   "and recall within one item); session 8's run is the one the shipped preset makes end to end, with its "
                   "manifest, executed notebooks and calibration, so it ships. Not compared on the golden set.",
       "provenance": provenance(data_paths=list(runs.values()), command="python " + " ".join(sys.argv))}
atomic_write_json(HERE / "summary.json", res)
for n, arms in out.items():
    for a, m in arms.items(): print(n, a, {k: m["counts"][k] for k in ("citation_precision", "refusal_precision", "refusal_recall", "key_fact_accuracy")})
