"""Issue #25: Gemma 3 270M's validation generations (GPU session 14, no calibration) re-scored with the shipped unit
ranker (+rank) beside +overlap, on the CPU, no new generation. For the record only: Gemma's adoption rule
(.ci/gpu/quality12.py) is on +overlap and was decided (not adopted); SmolLM2's headline recipe with +rank holds all key
facts on 30 and 32 of 59 (outputs/experiments/unit-ranker/summary.json).

    python outputs/experiments/gemma-extractive/rank_validation.py"""
import json, sys
from pathlib import Path
from kwanzaa.corpus import build_corpus
from kwanzaa.evaluate import compute_metrics, score_text
from kwanzaa.examples import datasets_dir, load_examples
from kwanzaa.rank import RANKER_FILE
from kwanzaa.records import atomic_write_json, provenance

HERE = Path(__file__).parent
PRED = HERE / "run/val/adapter_extractive/predictions.jsonl"
VAL = datasets_dir() / "validation.jsonl"
KEYS = ("key_fact_accuracy", "key_fact_recall", "citation_precision", "citation_coverage", "refusal_precision", "refusal_recall")
exs, corpus = load_examples(VAL), build_corpus()
preds = {json.loads(l)["id"]: json.loads(l) for l in PRED.read_text().splitlines() if l.strip()}
res = {}
for arm, flags in (("adapter+extractive+overlap", {"overlap": True}), ("adapter+extractive+rank", {"rank": True})):
    c = compute_metrics([score_text(e, preds[e.id]["text"], [corpus.get(x) for x in e.context], False, **flags)[0] for e in exs])["counts"]
    res[arm] = {k: c[k] for k in KEYS}
atomic_write_json(HERE / "rank_validation.json", {"what": __doc__.split("\n\n")[0], "split": "validation", "items": len(exs),
    "arms": res, "provenance": provenance(data_paths=[VAL, RANKER_FILE, PRED], command="python " + " ".join(sys.argv))})
print(json.dumps(res, indent=1))
