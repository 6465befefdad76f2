"""Issue #25: is there a better copy-unit scorer than choose_sentences' shared-stem count? VALIDATION split only.

The model picks status, cited passages and how many sentences per passage; a scorer then re-chooses which copy units
(kwanzaa.contract.copy_units) of each cited passage are copied: the same number per passage as the model copied, the
highest scores first, ties to the model's own units, then the passage's order; the chosen units are written in passage
order (exactly choose_sentences' procedure with its score replaced). Rules, fixed before any result was seen:
  1. overlap: |stems(question) & stems(unit)| (kwanzaa.contract.choose_sentences itself);
  2. idf: the sum of idf(s) over the shared stems, idf(s) = ln(N / df(s)) with df over the N passages of
     kwanzaa.corpus.build_corpus() (no validation or golden data fits anything);
  3. length: rule 1 / sqrt(|stems(unit)|) (0 for a unit without stems);
  4. dense: cosine(question, unit), the all-MiniLM-L6-v2 model of dense retrieval (kwanzaa.retrieval.Embedder, offline);
  5. idf+dense: rule 2, ties broken by rule 4.
Scoring is summarize.py's: of the validation items whose gold status is answered/partial with key facts (59), an item
counts when all its key facts are grounded (kwanzaa.evaluate.grounded_facts, in a sentence citing a gold passage);
key_fact_recall is evaluate's per-item share of grounded facts, summed (its metric divides by n); facts counts them
over all items. An unparsed or non-answering prediction scores 0 under every rule. "changed vs overlap" counts items
whose answer text differs from rule 1's; wins/losses count items that become (stop being) all-grounded vs rule 1.
"oracle" is the ceiling of any such rule: per item, the most facts that any choice of the same number of units from
each cited passage grounds (the model's status, passages and counts kept; it scores facts, it is no rule);
why_overlap_misses sorts the 59 items by what stops rule 1 (status, passages, unit counts, or the unit choice).
"chosen" is a rule beating overlap by >= 3 items on both runs (a decision rule fixed in advance), else overlap.
Two prediction files of the same recipe (session 7's epoch-6 adapter, session 8's shipped headline run) are scored.

    HF_HUB_OFFLINE=1 python outputs/experiments/sentence-choice/scorers.py   # from the repository root; CPU, ~10 s"""
import json, math, sys
from collections import Counter
from pathlib import Path
import numpy as np
from kwanzaa.contract import (choose_sentences, copy_units, extractive_sentence, inline_markers, parse, sentences,
                              stems, unquote_extractive)
from kwanzaa.corpus import build_corpus
from kwanzaa.evaluate import gold_positions, grounded_facts, has_fact
from kwanzaa.examples import load_examples
from kwanzaa.records import atomic_write_json, provenance
from kwanzaa.retrieval import Embedder

HERE = Path(__file__).parent
VALIDATION = Path("kwanzaa/datasets/validation.jsonl")
EXP = Path("outputs/experiments")
RUNS = {"session7 (extractive-gpu, last-epoch6)":
            EXP / "extractive-gpu/validation-epochs/last-epoch6/adapter_extractive/predictions.jsonl",
        "session8 (headline-choice, session8-run)":
            EXP / "headline-choice/session8-run/adapter_extractive/predictions.jsonl"}
RULES = ("model", "overlap", "idf", "length", "dense", "idf+dense")

def idf_table(corpus) -> dict[str, float]:
    "ln(N / df) of every stem over the corpus's passages."
    df = Counter(s for c in corpus for s in stems(c.text))
    return {s: math.log(len(corpus) / d) for s, d in df.items()}

_EMB: dict[str, np.ndarray] = {}
def embed(texts) -> None:
    "Embed the texts not yet embedded (one batch call)."
    new = sorted({t for t in texts if t not in _EMB})
    if new: _EMB.update(zip(new, Embedder.get().encode(new)))

def unit_keys(question:str, units:list[str], idf:dict) -> dict[str, list[tuple]]:
    "Each rule's sort key (larger is better) for every unit."
    q = stems(question); embed([question, *units])
    shared = [sorted(q & stems(u)) for u in units]
    ov = [len(s) for s in shared]
    iw = [round(sum(idf.get(w, 0.0) for w in s), 9) for s in shared]
    ln = [o / math.sqrt(len(stems(u))) if stems(u) else 0.0 for o, u in zip(ov, units)]
    cs = [round(float(_EMB[question] @ _EMB[u]), 6) for u in units]
    return {"overlap": [(x,) for x in ov], "idf": [(x,) for x in iw], "length": [(x,) for x in ln],
            "dense": [(x,) for x in cs], "idf+dense": list(zip(iw, cs))}

def rechoose(core, texts:list[str], question:str, idf:dict) -> dict:
    "{rule: core}, each cited passage's units re-chosen by the rule (choose_sentences' procedure, its score swapped)."
    out = {r: core for r in RULES} | {"_picked": None}
    if core is None or core.status not in ("answered", "partial"): return out
    units_of, picked = {}, {}
    for s in sentences(core.answer):
        n = (inline_markers(s) or [0])[-1]
        if n not in units_of: units_of[n] = copy_units(texts[n - 1] or "") if 1 <= n <= len(texts) else []
        got = unquote_extractive(s, units_of[n])
        if got is None or got[0] not in units_of[n]: return out      # not extractive: every rule keeps the model's
        picked.setdefault(n, []).append(got[0])
    ans = {r: [] for r in RULES[1:]}
    for n, mine in picked.items():
        units, keys = units_of[n], unit_keys(question, units_of[n], idf)
        for r in ans:
            rank = sorted(range(len(units)), key=lambda i: (tuple(-x for x in keys[r][i]), units[i] not in mine, i))
            ans[r] += [extractive_sentence(units[i], n) for i in sorted(rank[:len(mine)])]
    out.update({r: core.model_copy(update={"answer": " ".join(a)}) for r, a in ans.items()})
    out["_picked"] = {n: (units_of[n], len(mine)) for n, mine in picked.items()}
    assert out["overlap"].answer == choose_sentences(core, texts, question).answer   # rule 1 is choose_sentences
    return out

def oracle_facts(picked:dict, facts:list[str], gold:list[int]) -> int:
    "The most key facts any choice of the same number of units per cited passage grounds (the ceiling of every rule)."
    reach = {0}                                             # masks of facts grounded so far, over the passages seen
    for n, (units, k) in picked.items():
        if n not in gold: continue
        masks = [sum(1 << j for j, f in enumerate(facts) if has_fact(f, extractive_sentence(u, n))) for u in units]
        mine = {(0, 0)}                                     # (units taken, mask) reachable in this passage
        for m in masks: mine |= {(c + 1, x | m) for c, x in mine if c < k}
        reach = {a | x for a in reach for c, x in mine}      # fewer than k units never beats k: masks only grow
    return max(bin(a).count("1") for a in reach)

def _why(core, picked, ok:bool, reachable:bool, gold:list[int]) -> str:
    "Why an item is (not) all-grounded under rule 1: the model's status, its passages, its counts or the unit choice."
    if ok: return "all grounded by overlap"
    if picked is None: return f"no extractive answer ({core.status if core else 'unparsed'})"
    if reachable: return "reachable by re-choosing units, overlap misses"
    if set(picked) & set(gold): return "cites a gold passage, no choice of as many units grounds all facts"
    return "cites no gold passage"

def score_run(path:Path, exs:dict, corpus, idf:dict) -> dict:
    "Per rule: all key facts grounded, key_fact_recall, facts; changed/wins/losses vs overlap; the items that differ."
    preds = {(p := json.loads(l))["id"]: p for l in path.read_text().splitlines() if l.strip()}
    res = {r: {"all_key_facts_grounded": 0, "key_fact_recall_sum": 0.0, "facts_grounded": 0, "changed_vs_overlap": 0,
               "wins_vs_overlap": 0, "losses_vs_overlap": 0} for r in RULES}
    res["oracle"] = {"all_key_facts_grounded": 0, "key_fact_recall_sum": 0.0, "facts_grounded": 0}
    n, n_facts, items, why = 0, 0, [], Counter()
    for eid, ex in exs.items():
        if not ex.gold.key_facts or ex.gold.status not in ("answered", "partial"): continue
        n += 1; n_facts += len(ex.gold.key_facts)
        p = preds.get(eid)
        core = parse(p["text"], n_passages=len(ex.context)).core if p else None
        texts = [corpus.get(c).text for c in ex.context]
        cores = rechoose(core, texts, ex.question, idf); picked = cores.pop("_picked")
        answering = lambda c: c is not None and c.status in ("answered", "partial")
        found = {r: grounded_facts(c, ex.gold.key_facts, gold_positions(ex)) if answering(c) else []
                 for r, c in cores.items()}
        ok = {r: len(f) == len(ex.gold.key_facts) for r, f in found.items()}
        for r, c in cores.items():
            res[r]["all_key_facts_grounded"] += ok[r]; res[r]["facts_grounded"] += len(found[r])
            res[r]["key_fact_recall_sum"] += len(found[r]) / len(ex.gold.key_facts)
            res[r]["changed_vs_overlap"] += bool(c and cores["overlap"] and c.answer != cores["overlap"].answer)
            res[r]["wins_vs_overlap"] += ok[r] and not ok["overlap"]
            res[r]["losses_vs_overlap"] += ok["overlap"] and not ok[r]
        best = oracle_facts(picked, ex.gold.key_facts, gold_positions(ex)) if picked else len(found["model"])
        res["oracle"]["all_key_facts_grounded"] += best == len(ex.gold.key_facts)
        res["oracle"]["facts_grounded"] += best
        res["oracle"]["key_fact_recall_sum"] += best / len(ex.gold.key_facts)
        assert all(best >= len(f) for f in found.values())
        if len(set(ok.values())) > 1: items.append({"id": eid, "all_grounded": ok})
        why[_why(core, picked, ok["overlap"], best == len(ex.gold.key_facts), gold_positions(ex))] += 1
    for r in res.values():
        r["all_key_facts_grounded"] = [r["all_key_facts_grounded"], n]
        r["key_fact_recall"] = [round(r.pop("key_fact_recall_sum"), 6), n]
        r["facts_grounded"] = [r["facts_grounded"], n_facts]
    return {"predictions": str(path), "rules": res, "why_overlap_misses": dict(sorted(why.items())),
            "items_where_rules_disagree": items}

def _chosen(runs:dict) -> str:
    "The rule that beats overlap by >= 3 all-grounded items on every run (the best such), else overlap."
    gain = {r: min(run["rules"][r]["all_key_facts_grounded"][0] - run["rules"]["overlap"]["all_key_facts_grounded"][0]
                   for run in runs.values()) for r in RULES}
    return max((r for r in RULES if gain[r] >= 3), key=gain.get, default="overlap")

if __name__ == "__main__":
    exs = {e.id: e for e in load_examples(VALIDATION)}
    corpus = build_corpus(); idf = idf_table(corpus)
    runs = {name: score_run(path, exs, corpus, idf) for name, path in RUNS.items()}
    res = {"what": __doc__.split("\n\n")[0], "split": "validation", "rules": {
               "model": "the model's greedy sentences (no re-choice)",
               "overlap": "rule 1: shared stems (choose_sentences)",
               "idf": "rule 2: sum of ln(N/df) over shared stems, df over build_corpus()'s passages",
               "length": "rule 3: shared stems / sqrt(stems of the unit)",
               "dense": "rule 4: cosine(question, unit), all-MiniLM-L6-v2 (kwanzaa.retrieval.Embedder)",
               "idf+dense": "rule 5: rule 2, ties by rule 4",
               "oracle": "ceiling: the most facts any choice of the same number of units per cited passage grounds"},
           "corpus": {"hash": corpus.hash, "passages": len(corpus)}, "embedder_sha256": Embedder.get().sha256,
           "runs": runs, "decision_rule": "adopt a rule only if it grounds all facts on >= 3 more items than overlap "
                                            "on both runs", "chosen": _chosen(runs),
           "provenance": provenance(data_paths=[VALIDATION, *RUNS.values()], command="python " + " ".join(sys.argv))}
    atomic_write_json(HERE / "scorers.json", res)
    for name, run in runs.items():
        print(name, run["why_overlap_misses"])
        for r, v in run["rules"].items():
            vs = "" if r == "oracle" else \
                f"changed={v['changed_vs_overlap']} +{v['wins_vs_overlap']}/-{v['losses_vs_overlap']}"
            print(f"  {r:10s} {v['all_key_facts_grounded']} recall={v['key_fact_recall']} "
                  f"facts={v['facts_grounded']} {vs}")
