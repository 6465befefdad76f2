"""Issue #25: how far can an extractive answer go when it must copy one unit of the given passages, and how far do rules
that never look at the model get? Dataset passages (the gold passage always present).

For every answerable item with key facts: the ceiling is the share of items where some copy unit (kwanzaa.contract.
copy_units) of a gold passage holds all key facts (kwanzaa.evaluate.has_fact, word boundaries), or where two units of
gold passages hold them together. The rules pick one unit among all units of all passages, ignoring the model: most
question stems in common (overlap), most idf weight in common (idf), MiniLM cosine (dense, the shipped
all-MiniLM-L6-v2), the lead passage by idf then overlap (lead+overlap, kwanzaa.retrieval.lead_passage), and the shipped
unit ranker's best unit (kwanzaa.rank, a linear listwise ranker over those features fitted on the TRAIN split only; the
+rank arm keeps the model's decision and unit count instead of always one unit). A pick counts
when it is a unit of a gold passage holding all key facts. Read the rules on VALIDATION; the golden row is reported, not
chosen from.

    python outputs/experiments/chooser-ceiling/ceiling.py"""
import json, sys
from collections import defaultdict
from itertools import combinations
from pathlib import Path
import numpy as np
from kwanzaa.corpus import build_corpus
from kwanzaa.evaluate import has_fact
from kwanzaa.records import atomic_write_json, provenance
from kwanzaa.rank import FEATURES, UnitRanker, unit_features
from kwanzaa.retrieval import Embedder, idf_of, lead_passage

HERE, DATA = Path(__file__).parent, Path("kwanzaa/datasets")
corpus = build_corpus(); by = {c.chunk_id: c for c in corpus}; idf = idf_of(corpus); emb = Embedder.get(); ranker = UnitRanker.load()
def item(r):
    "Units of the item's passages (kwanzaa.rank.unit_features), which hold all key facts in a gold passage, and each rule's pick."
    q, g, texts = r["question"], r["gold"], [by[c].text for c in r["context"]]
    gold = {i for i, c in enumerate(r["context"]) if c in g["supporting"]}
    units, X = unit_features(q, texts, idf, emb.encode)
    facts = lambda u: {f for f in g["key_facts"] if has_fact(f, u)}
    ok = np.array([i in gold and len(facts(u)) == len(g["key_facts"]) for i, _, u in units])
    fs = [frozenset(facts(u)) if i in gold else frozenset() for i, _, u in units]
    two = bool(ok.any()) or any(len(a | b) == len(g["key_facts"]) for a, b in combinations(fs, 2))
    lead = lead_passage(q, texts, idf)
    col = lambda name: X[:, FEATURES.index(name)]
    lo = max((k for k, (i, *_ ) in enumerate(units) if i + 1 == lead), key=lambda k: col("shared_stems")[k], default=0)
    return dict(category=r["category"], X=X, ok=ok, two=two,
                picks={"overlap": int(np.argmax(col("shared_stems"))), "idf": int(np.argmax(col("shared_idf"))),
                       "dense": int(np.argmax(col("cosine"))), "lead+overlap": lo,
                       "ranker (kwanzaa.rank, fitted on train)": int(np.argmax(ranker.score(X)))})

def load(split):
    rows = [json.loads(l) for l in (DATA / f"{split}.jsonl").read_text().splitlines() if l.strip()]
    return [item(r) for r in rows if r["gold"]["status"] in ("answered", "partial") and r["gold"]["key_facts"]]

splits = {s: load(s) for s in ("train", "validation", "golden")}
def table(its):
    n, out = len(its), {"items": len(its), "ceiling: one unit": [int(sum(it["ok"].any() for it in its)), len(its)],
                        "ceiling: two units": [int(sum(it["two"] for it in its)), len(its)]}
    for rule in its[0]["picks"]: out[rule] = [int(sum(it["ok"][it["picks"][rule]] for it in its)), n]
    return out
res = {"what": __doc__.split("\n\n")[0], "all_key_facts_in_one_pick": {s: table(its) for s, its in splits.items()},
       "golden_by_category": {}}
cats = defaultdict(list)
for it in splits["golden"]: cats[it["category"]].append(it)
res["golden_by_category"] = {c: table(its) for c, its in sorted(cats.items())}
res["provenance"] = provenance(data_paths=[*(DATA / f"{s}.jsonl" for s in splits), Path("kwanzaa/rankers/units.json")], command="python " + " ".join(sys.argv))
atomic_write_json(HERE / "summary.json", res)
print(json.dumps(res["all_key_facts_in_one_pick"], indent=1)); print(json.dumps(res["golden_by_category"]))
