"""Issue #25: how far can an extractive answer go when it must copy one unit of the given passages, and how far do rules
that never look at the model get? Dataset passages (the gold passage always present).

For every answerable item with key facts: the ceiling is the share of items where some copy unit (kwanzaa.contract.
copy_units) of a gold passage holds all key facts (kwanzaa.evaluate.has_fact, word boundaries), or where two units of
gold passages hold them together. The rules pick one unit among all units of all passages, ignoring the model: most
question stems in common (overlap), most idf weight in common (idf), MiniLM cosine (dense, the shipped
all-MiniLM-L6-v2), the lead passage by idf then overlap (lead+overlap, kwanzaa.retrieval.lead_passage), and a linear
listwise ranker over those features fitted on the TRAIN split only (seed 0, full-batch Adam, 300 steps). A pick counts
when it is a unit of a gold passage holding all key facts. Read the rules on VALIDATION; the golden row is reported, not
chosen from.

    python outputs/experiments/chooser-ceiling/ceiling.py"""
import json, math, re, sys
from collections import defaultdict
from itertools import combinations
from pathlib import Path
import numpy as np, torch
from kwanzaa.contract import copy_units, stems
from kwanzaa.corpus import build_corpus
from kwanzaa.evaluate import has_fact
from kwanzaa.records import atomic_write_json, provenance
from kwanzaa.retrieval import Embedder, idf_of, lead_passage

HERE, DATA = Path(__file__).parent, Path("kwanzaa/datasets")
torch.manual_seed(0); torch.set_num_threads(2)
corpus = build_corpus(); by = {c.chunk_id: c for c in corpus}; idf = idf_of(corpus); emb = Embedder.get()
YEAR, DIGIT, CAP = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b"), re.compile(r"\d"), re.compile(r"(?<![.!?] )(?<!^)\b[A-Z][a-z]+")

def item(r):
    "Units of the item's passages, their features, and which units hold all key facts in a gold passage."
    q, g, texts = r["question"], r["gold"], [by[c].text for c in r["context"]]
    gold = {i for i, c in enumerate(r["context"]) if c in g["supporting"]}
    units = [(i, j, u) for i, t in enumerate(texts) for j, u in enumerate(copy_units(t))]
    qs, ql = stems(q), q.lower(); qi = sum(idf.get(s, 0) for s in qs) or 1.0
    when, who = ql.startswith("when") or "what year" in ql, ql.startswith("who")
    pw = [sum(idf.get(s, 0) for s in qs & stems(t)) for t in texts]; top = max(pw) or 1.0
    E = emb.encode([q] + [u for *_, u in units]); cos = E[1:] @ E[0]
    X = []
    for k, (i, j, u) in enumerate(units):
        ov = qs & stems(u); w = sum(idf.get(s, 0) for s in ov)
        X.append([len(ov), len(ov) / max(len(qs), 1), w, w / qi, j == 0, min(j, 5) / 5, pw[i] / top, pw[i] == max(pw),
                  math.log(1 + len(u.split())), when and bool(YEAR.search(u)), who and bool(CAP.search(u)),
                  bool(DIGIT.search(u)), cos[k], cos[k] - cos.max()])
    facts = lambda u: {f for f in g["key_facts"] if has_fact(f, u)}
    ok = [i in gold and len(facts(u)) == len(g["key_facts"]) for i, _, u in units]
    fs = [frozenset(facts(u)) if i in gold else frozenset() for i, _, u in units]
    two = any(ok) or any(len(a | b) == len(g["key_facts"]) for a, b in combinations(fs, 2))
    lead = lead_passage(q, texts, idf)
    lo = max((k for k, (i, *_ ) in enumerate(units) if i + 1 == lead), key=lambda k: X[k][0], default=0)
    return dict(category=r["category"], X=np.array(X, float), ok=np.array(ok), two=two,
                picks={"overlap": int(np.argmax([x[0] for x in X])), "idf": int(np.argmax([x[2] for x in X])),
                       "dense": int(np.argmax(cos)), "lead+overlap": lo})

def load(split):
    rows = [json.loads(l) for l in (DATA / f"{split}.jsonl").read_text().splitlines() if l.strip()]
    return [item(r) for r in rows if r["gold"]["status"] in ("answered", "partial") and r["gold"]["key_facts"]]

splits = {s: load(s) for s in ("train", "validation", "golden")}
Xtr = np.concatenate([it["X"] for it in splits["train"]]); mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-6
fit = [(torch.tensor((it["X"] - mu) / sd, dtype=torch.float32), torch.tensor(it["ok"])) for it in splits["train"] if it["ok"].any()]
W = torch.zeros(Xtr.shape[1], requires_grad=True); opt = torch.optim.Adam([W], lr=0.05)
for _ in range(300):
    opt.zero_grad()
    loss = sum(torch.logsumexp(x @ W, 0) - torch.logsumexp((x @ W)[y], 0) for x, y in fit) / len(fit) + 1e-3 * (W ** 2).sum()
    loss.backward(); opt.step()
w = W.detach().numpy()
for its in splits.values():
    for it in its: it["picks"]["ranker (train split)"] = int(np.argmax(((it["X"] - mu) / sd) @ w))

def table(its):
    n, out = len(its), {"items": len(its), "ceiling: one unit": [int(sum(it["ok"].any() for it in its)), len(its)],
                        "ceiling: two units": [int(sum(it["two"] for it in its)), len(its)]}
    for rule in its[0]["picks"]: out[rule] = [int(sum(it["ok"][it["picks"][rule]] for it in its)), n]
    return out
res = {"what": __doc__.split("\n\n")[0], "all_key_facts_in_one_pick": {s: table(its) for s, its in splits.items()},
       "golden_by_category": {}, "ranker": {"features": 14, "train_loss": round(float(loss), 4)}}
cats = defaultdict(list)
for it in splits["golden"]: cats[it["category"]].append(it)
res["golden_by_category"] = {c: table(its) for c, its in sorted(cats.items())}
res["provenance"] = provenance(data_paths=[DATA / f"{s}.jsonl" for s in splits], command="python " + " ".join(sys.argv))
atomic_write_json(HERE / "summary.json", res)
print(json.dumps(res["all_key_facts_in_one_pick"], indent=1)); print(json.dumps(res["golden_by_category"]))
