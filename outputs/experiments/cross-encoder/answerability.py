"""Issue #25: is round 1's cross-encoder (model/, fitted on the train split) a signal of whether the passages hold the
answer? On the VALIDATION split, through the project's BM25 top 4 (as ask() gets them), per question: the best unit's
logit over all the passages. Compared with BM25's top score (outputs/experiments/retrieval-gate): the AUC of
separating (a) answerable items whose gold passage was retrieved from those whose gold passage was missed, and (b)
those hits from the items that should be refused (gold status refused). A measurement only; nothing is adopted here.

    python outputs/experiments/cross-encoder/answerability.py"""
import json, sys
from pathlib import Path
import numpy as np, torch
import kwanzaa.rank as R
from kwanzaa.corpus import Retriever, build_corpus
from kwanzaa.examples import ANSWERABLE, datasets_dir, load_examples
from kwanzaa.live import live_examples
from kwanzaa.records import atomic_write_json, provenance
from kwanzaa.retrieval import embedding_model_dir
from transformers import AutoTokenizer, AutoModelForSequenceClassification
from peft import PeftModel

HERE = Path(__file__).parent
VAL = datasets_dir() / "validation.jsonl"
torch.set_num_threads(2)
corpus = build_corpus(); bm25 = Retriever(corpus)
d = str(embedding_model_dir())
tok = AutoTokenizer.from_pretrained(d)
model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(d, num_labels=1), str(HERE / "model")).eval()
@torch.inference_mode()
def best(q, passages):
    units = [u for *_, u in R.units_of(passages)]
    if not units: return float("-inf")
    enc = tok([q] * len(units), units, truncation=True, max_length=128, padding=True, return_tensors="pt")
    return float(model(**enc).logits.max())
val = load_examples(VAL, corpus)
live, summary = live_examples(val, bm25, 4)
rows = []
for e, l in zip(val, live):
    top = max([s for _, s in bm25.search(e.question, k=4)] or [0.0])
    kind = ("refuse" if e.gold.status == "refused" else
            "hit" if e.gold.status in ANSWERABLE and set(l.context) & set(e.gold.supporting) else
            "missed" if e.gold.status in ANSWERABLE and e.gold.supporting else "other")
    rows.append({"id": e.id, "kind": kind, "cross_best": best(e.question, [corpus.get(c).text for c in l.context]), "bm25_top": float(top)})
def auc(pos, neg):
    "P(a hit scores above the other kind), ties half."
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg)) if pos and neg else None
by = lambda k, f: [r[f] for r in rows if r["kind"] == k]
res = {f: {"hit_vs_missed": auc(by("hit", f), by("missed", f)), "hit_vs_refuse": auc(by("hit", f), by("refuse", f)),
           "median": {k: float(np.median(by(k, f))) if by(k, f) else None for k in ("hit", "missed", "refuse", "other")}}
       for f in ("cross_best", "bm25_top")}
out = {"what": __doc__.split("\n\n")[0], "split": "validation", "counts": {k: len(by(k, "bm25_top")) for k in ("hit", "missed", "refuse", "other")},
       "auc": res, "rows": rows, "provenance": provenance(data_paths=[VAL, HERE / "model" / "adapter_model.safetensors"],
                                                          command="python " + " ".join(sys.argv))}
atomic_write_json(HERE / "answerability.json", out)
print(json.dumps({"counts": out["counts"], "auc": res}, indent=1))
