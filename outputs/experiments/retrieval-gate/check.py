"""Issue #25: could ask() refuse when BM25's top 4 miss every gold passage, from retrieval alone? On the VALIDATION split,
BM25's top score and the best passage's share of the question's idf weight, for answerable items whose gold passage was
retrieved (hit), missed (miss), and refusal items. A gate needs the misses to sit below the hits; quartiles say whether.

    python outputs/experiments/retrieval-gate/check.py"""
import sys
from pathlib import Path
from kwanzaa.contract import stems
from kwanzaa.corpus import Retriever, build_corpus
from kwanzaa.examples import ANSWERABLE, datasets_dir, load_examples
from kwanzaa.records import atomic_write_json, provenance
from kwanzaa.retrieval import idf_of

VAL = datasets_dir() / "validation.jsonl"
corpus = build_corpus(); bm25, idf = Retriever(corpus), idf_of(corpus)
groups = {}
for e in load_examples(VAL, corpus):
    hits = [(h, s) for h, s in bm25.search(e.question, k=4) if s > 0]
    ans = e.gold.status in ANSWERABLE and bool(e.gold.supporting)
    kind = ("hit" if any(h.chunk_id in e.gold.supporting for h, _ in hits) else "miss") if ans else "refusal item"
    qs = stems(e.question); qw = sum(idf.get(s, 0.0) for s in qs) or 1.0
    cover = max((sum(idf.get(s, 0.0) for s in qs & stems(h.text)) / qw for h, _ in hits), default=0.0)
    groups.setdefault(kind, []).append({"id": e.id, "top_score": hits[0][1] if hits else 0.0, "coverage": cover})
q = lambda v: {p: sorted(v)[min(int(p / 100 * len(v)), len(v) - 1)] for p in (0, 25, 50, 75, 100)}
summary = {k: {"n": len(v), "top_score_quartiles": q([r["top_score"] for r in v]),
               "coverage_quartiles": q([r["coverage"] for r in v])} for k, v in sorted(groups.items())}
atomic_write_json(Path(__file__).parent / "summary.json", {"what": __doc__.split("\n\n")[0], "split": "validation",
    "retrieval": {"retriever": "Retriever (BM25)", "k": 4}, "groups": summary, "items": groups,
    "provenance": provenance(data_paths=[VAL], command="python " + " ".join(sys.argv))})
for k, v in summary.items(): print(k, v)
