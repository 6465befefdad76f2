"""Issue #25: where the headline's misses of "all key facts" come from, item by item, from the committed predictions
(no generation, nothing chosen here). Every answerable item (gold status answered or partial, with key facts) that the
arm scores as not holding all key facts is put in the first of these that applies:
  refused      the calibrated decision or the model refused / asked to clarify (the chooser never ran);
  no_gold      through retrieval: no gold passage among the passages given (counted apart by issue #25);
  wrong_unit   some unit of a gold passage holds all key facts, and the arm copied other sentences;
  wrong_pair   no single unit does, but two units of the gold passages together hold all key facts (the facts sit in
               two sentences or two passages), and the arm copied others;
  no_pair      not even two units of the gold passages hold them all (a fact worded apart from the passage's words).
Rows: the golden set with the dataset's passages and through BM25's top 4 (README's headline, `+overlap` and `+rank`),
and the validation split with the dataset's passages (the headline's run, the same two choosers re-applied).
Also per category. Run on a CPU; no model is loaded except all-MiniLM-L6-v2 for `+rank` on validation.

    python outputs/experiments/distance/breakdown.py"""
import json, sys
from collections import Counter, defaultdict
from pathlib import Path
from kwanzaa.contract import copied_units, copy_units
from kwanzaa.corpus import build_corpus
from kwanzaa.evaluate import has_fact, score_text
from kwanzaa.examples import ANSWERABLE, datasets_dir, load_examples
from kwanzaa.records import atomic_write_json, provenance

HERE = Path(__file__).parent
corpus = build_corpus()
G = Path("outputs/golden/eval")
golden = {e.id: e for e in load_examples(datasets_dir() / "golden.jsonl", corpus)}
live = {json.loads(l)["id"]: json.loads(l) for l in (G / "live" / "examples.jsonl").read_text().splitlines() if l.strip()}
VAL_RUN = Path("outputs/experiments/headline-choice/session8-run/adapter_extractive/predictions.jsonl")

def cause(e, context, score):
    if score["key_fact_ok"]: return "right"
    if score["refused"] or score["status"] in ("refused", "clarify", None): return "refused"
    gold = [c for c in context if c in e.gold.supporting]
    if not gold: return "no_gold"
    units = [u for c in gold for u in copy_units(corpus.get(c).text)]
    if any(all(has_fact(f, u) for f in e.gold.key_facts) for u in units): return "wrong_unit"
    if any(all(has_fact(f, u) or has_fact(f, v) for f in e.gold.key_facts) for i, u in enumerate(units) for v in units[i + 1:]):
        return "wrong_pair"
    return "no_pair"

def n_copied(e, context, parsed):
    "How many copy units the scored answer holds (None: no answer, or not all its sentences are copies)."
    if not parsed or not parsed.get("answer"): return None
    from kwanzaa.contract import AnswerCore
    picked = copied_units(AnswerCore.model_construct(**parsed), [corpus.get(c).text for c in context])
    return sum(len(mine) for _, mine in picked.values()) if picked else None

def tally(rows):
    "rows: (category, cause, units copied)."
    out = {"items": len(rows), "causes": dict(Counter(c for _, c, _ in rows)), "by_category": defaultdict(Counter),
           "wrong_pair_units_copied": dict(Counter(str(n) for _, c, n in rows if c == "wrong_pair"))}
    for cat, c, _ in rows: out["by_category"][cat][c] += 1
    out["by_category"] = {k: dict(v) for k, v in sorted(out["by_category"].items())}
    return out

res = {}
for src, sub in (("golden, dataset passages", ""), ("golden, BM25 top 4", "live/")):
    for arm in ("adapter_extractive_calibrated_overlap", "adapter_extractive_calibrated_rank"):
        rows = []
        for l in (G / sub / arm / "predictions.jsonl").read_text().splitlines():
            r = json.loads(l); e = golden[r["id"]]
            if e.gold.status not in ANSWERABLE or not e.gold.key_facts: continue
            ctx = live[r["id"]]["context"] if sub else e.context
            rows.append((e.category, cause(e, ctx, r["scores"]), n_copied(e, ctx, r.get("parsed"))))
        res[f"{src}, {arm}"] = tally(rows)
val = load_examples(datasets_dir() / "validation.jsonl", corpus)
preds = {json.loads(l)["id"]: json.loads(l) for l in VAL_RUN.read_text().splitlines() if l.strip()}
for name, kw in (("+overlap", {"overlap": True}), ("+rank", {"rank": True})):
    rows = []
    for e in val:
        if e.gold.status not in ANSWERABLE or not e.gold.key_facts: continue
        s, core = score_text(e, preds[e.id]["text"], [corpus.get(c) for c in e.context], False, **kw)
        rows.append((e.category, cause(e, e.context, s), n_copied(e, e.context, core.model_dump() if core else None)))
    res[f"validation, dataset passages, the headline's run, {name}"] = tally(rows)
# what the training targets of multi-source items copy: (units, passages cited) -> items
train_multi = Counter()
for e in load_examples(datasets_dir() / "train.jsonl", corpus):
    if e.category == "multi_source" and e.target is not None:
        picked = copied_units(e.target, [corpus.get(c).text for c in e.context])
        train_multi[f"{sum(len(m) for _, m in picked.values()) if picked else None} units, {len(e.target.citations)} passages"] += 1
for k, v in res.items(): print(k, v["items"], v["causes"], v["wrong_pair_units_copied"])
print("train multi-source targets:", dict(train_multi))
atomic_write_json(HERE / "summary.json", {"what": __doc__.split("\n\n")[0], "results": res,
    "train_multi_source_targets": dict(train_multi),
    "provenance": provenance(data_paths=[datasets_dir() / "golden.jsonl", datasets_dir() / "validation.jsonl", VAL_RUN],
                             command="python " + " ".join(sys.argv))})
