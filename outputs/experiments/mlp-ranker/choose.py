"""Issue #25: is the shipped unit ranker held back by being linear? Candidate M scores the same 14 features
(kwanzaa.rank.FEATURES, standardized as the shipped ranker does) with a small MLP (14 -> 32 tanh -> 1), fitted on the
same TRAIN-split rows (kwanzaa.rank.training_rows: the dataset's passages) by the same listwise softmax loss, full-batch
Adam (lr 0.01, 600 steps, weight decay 1e-3), seed 0, on a CPU. Scored on the VALIDATION split by re-choosing the same
generations as outputs/experiments/unit-ranker-v2 (the two headline runs on the dataset's passages and the headline
adapter through BM25's top 4), against the shipped linear ranker A.

Rule, written before M's numbers were seen (session 15; the cross-encoder and the two-part rule had failed): M replaces
A if on validation it holds all key facts on at least 3 more items summed over the three sources, loses at most 1 item
on any one source, and keeps citation precision within 2 points of A's on each.

    python outputs/experiments/mlp-ranker/choose.py"""
import json, sys
from pathlib import Path
import numpy as np, torch
import kwanzaa.rank as R
from kwanzaa.corpus import Retriever, build_corpus
from kwanzaa.contract import parse, extractive_sentence, copied_units
from kwanzaa.evaluate import compute_metrics, has_fact, score_item, score_text
from kwanzaa.examples import ANSWERABLE, datasets_dir, load_examples
from kwanzaa.live import live_examples
from kwanzaa.records import atomic_write_json, provenance
from kwanzaa.retrieval import Embedder, idf_of

HERE = Path(__file__).parent
TRAIN, VAL = datasets_dir() / "train.jsonl", datasets_dir() / "validation.jsonl"
RUNS = {"session8 (the headline's run)": Path("outputs/experiments/headline-choice/session8-run/adapter_extractive/predictions.jsonl"),
        "session7 (extractive-gpu, last-epoch6)":
            Path("outputs/experiments/extractive-gpu/validation-epochs/last-epoch6/adapter_extractive/predictions.jsonl")}
LIVE = Path("outputs/experiments/unit-ranker/live-validation/adapter_extractive_calibrated/predictions.jsonl")
KEYS = ("key_fact_accuracy", "key_fact_recall", "citation_precision", "citation_coverage", "refusal_precision", "refusal_recall")
torch.manual_seed(0); torch.set_num_threads(2)
corpus = build_corpus(); idf = idf_of(corpus); text = lambda c: corpus.get(c).text
_enc, _cache = Embedder.get().encode, {}
def embed(texts):
    new = [t for t in dict.fromkeys(texts) if t not in _cache]
    if new: _cache.update(zip(new, _enc(new)))
    return np.stack([_cache[t] for t in texts])
A = R.UnitRanker.load()

rows = [(X, y) for X, y in R.training_rows(load_examples(TRAIN, corpus), text, idf, embed, has_fact) if len(X) and y.any()]
fit = [(torch.tensor((X - A.mean) / A.std, dtype=torch.float64), torch.tensor(y)) for X, y in rows]
mlp = torch.nn.Sequential(torch.nn.Linear(len(R.FEATURES), 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)).double()
opt = torch.optim.Adam(mlp.parameters(), lr=0.01, weight_decay=1e-3)
for step in range(600):
    opt.zero_grad()
    loss = sum(torch.logsumexp(mlp(X)[:, 0], 0) - torch.logsumexp(mlp(X)[:, 0][y], 0) for X, y in fit) / len(fit)
    loss.backward(); opt.step()
train_loss = float(loss)
print(f"{len(fit)} train rows, final loss {train_loss:.4f} (the shipped linear ranker's: {A.record.get('train_loss'):.4f})", flush=True)

@torch.inference_mode()
def m_score(X): return mlp(torch.tensor((X - A.mean) / A.std, dtype=torch.float64))[:, 0].numpy() if len(X) else np.zeros(0)
def choose(core, passages, question, how):
    if how == "A": return R.rank_units(core, passages, question, A, idf, embed)
    if core is None or core.status not in ANSWERABLE: return core
    picked = copied_units(core, passages)
    if not picked: return core
    units, X = R.unit_features(question, passages, idf, embed)
    k = min(sum(len(mine) for _, mine in picked.values()), len(units))
    s = m_score(X)
    best = sorted(sorted(range(len(units)), key=lambda i: (-s[i], i))[:k])
    return core.model_copy(update={"answer": " ".join(extractive_sentence(units[i][2], units[i][0] + 1) for i in best),
                                   "citations": sorted({units[i][0] + 1 for i in best})})

bm25 = Retriever(corpus)
val = load_examples(VAL, corpus)
val_live, _ = live_examples(val, bm25, 4)
def load(p): return {json.loads(l)["id"]: json.loads(l) for l in p.read_text().splitlines() if l.strip()}
sources = {**{f"dataset passages, {r}": (val, load(p)) for r, p in RUNS.items()}, "BM25 top 4, the headline adapter": (val_live, load(LIVE))}
res = {}
for src, (exs, preds) in sources.items():
    ov = [score_text(e, preds[e.id]["text"], [corpus.get(c) for c in e.context], False, overlap=True)[0] for e in exs]
    c = compute_metrics(ov)["counts"]; res[src] = {"+overlap": {k: c[k] for k in KEYS}}
    for name in ("A", "M"):
        scored = []
        for e in exs:
            chunks = [corpus.get(c) for c in e.context]
            core = choose(parse(preds[e.id]["text"], n_passages=len(e.context)).core, [ch.text for ch in chunks], e.question, name)
            scored.append(score_item(e, preds[e.id]["text"], core=core, chunks=chunks))
        c = compute_metrics(scored)["counts"]; res[src][name] = {k: c[k] for k in KEYS}
    print(src, {n: (m["key_fact_accuracy"], m["citation_precision"]) for n, m in res[src].items()}, flush=True)
pct = lambda a: a[0] / a[1] if a[1] else 0.0
kf = lambda src, n: res[src][n]["key_fact_accuracy"][0]
adopt = (sum(kf(s, "M") for s in res) >= sum(kf(s, "A") for s in res) + 3
         and all(kf(s, "M") >= kf(s, "A") - 1 for s in res)
         and all(pct(res[s]["M"]["citation_precision"]) >= pct(res[s]["A"]["citation_precision"]) - 0.02 for s in res))
out = {"what": __doc__.split("\n\n")[0], "rule": __doc__.split("\n\n")[1], "split": "validation", "results": res,
       "adopted": adopt, "train": {"rows": len(fit), "final_loss": train_loss, "linear_train_loss": A.record.get("train_loss")},
       "provenance": provenance(data_paths=[TRAIN, VAL, R.RANKER_FILE, LIVE, *RUNS.values()], command="python " + " ".join(sys.argv))}
atomic_write_json(HERE / "summary.json", out)
print(json.dumps({"adopted": adopt}, indent=1))
