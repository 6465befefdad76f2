"""Issue #25: a refusal gate for answers whose retrieved passages do not hold the answer. VALIDATION split only.

Through the project's BM25 retrieval (top 4, kwanzaa.live) an answerable question whose gold passages were all missed
becomes a refusal item, and the headline adapter (outputs/golden/adapter, arm adapter+extractive+calibrated+overlap)
answers those anyway. A gate, computed after generation from the question, the context passages and the core's
citations only (no labels), turns an answered/partial core into kwanzaa.inference.refusal_core. Candidates, declared
before any validation prediction was read (DECLARED below, also in summary.json):
  G1 cited_stems: refuse when |stems(question) & stems(the cited passages' text)| < T           (T in 0..8)
  G2 cited_share: refuse when that count / |stems(question)| < T                                  (T in 0..1, step 0.05)
  G3 top_bm25:    refuse when the best BM25 score (Retriever.scores(question)) of the context < T (T in 0..16, step 0.5)
Rule, fixed in advance: on validation LIVE predictions of the headline arm, the T with the highest refusal F1 among
those that refuse at most 1 right answer (answerable gold, answered, key_fact_ok not False, in the ungated arm); ties
to the smallest T; the best gate by the same rule. The same T is then reported on the dataset's passages.

Predictions: step 1 ran the headline adapter on the validation split (CPU, float32, the headline's own settings):
    kwanzaa run evaluate --preset small-gpu -p model.device=cpu -p data.golden=package:validation \\
      -p 'eval.arms=[adapter+extractive+calibrated, adapter+extractive+calibrated+overlap]' --out /tmp/kw/valgate
(with outputs/golden/adapter copied to /tmp/kw/valgate/adapter). predictions.jsonl.gz here keeps their id, arm,
setting (dataset/live), generated text and scored core, enough to rescore; `--from DIR` reads a run's eval/ instead.

A diagnostic added after the three gates' results were seen (never a candidate, in-sample): the adapter's own
P(refused) on the same passages (status_probs.json; `--probs ADAPTER_DIR CONFIG_YAML` recomputes it, CPU ~9 min).

    HF_HUB_OFFLINE=1 python outputs/experiments/refusal-gate/gate.py            # from the repository root; CPU, ~15 s
    HF_HUB_OFFLINE=1 python outputs/experiments/refusal-gate/gate.py --from /tmp/kw/valgate/eval   # + refresh the copy
    HF_HUB_OFFLINE=1 python outputs/experiments/refusal-gate/gate.py --probs /tmp/kw/valgate/adapter /tmp/kw/valgate/evaluate.config.yaml"""
import gzip, json, sys
from pathlib import Path
from kwanzaa.contract import AnswerCore, stems
from kwanzaa.corpus import Retriever, build_corpus
from kwanzaa.evaluate import ANSWERABLE, compute_metrics, score_item
from kwanzaa.examples import load_dataset
from kwanzaa.inference import refusal_core
from kwanzaa.live import live_examples
from kwanzaa.records import arm_dirname, atomic_write_json, provenance, read_predictions

HERE = Path(__file__).parent
PREDS = HERE / "predictions.jsonl.gz"
SPLIT = "package:validation"
ARMS = ("adapter+extractive+calibrated+overlap", "adapter+extractive+calibrated")   # the headline arm first
HEADLINE = ARMS[0]
DECLARED = {
    "cited_stems": {"what": "refuse an answered/partial core when |stems(question) & stems(cited passages)| < T",
                    "grid": list(range(0, 9))},
    "cited_share": {"what": "refuse an answered/partial core when |stems(question) & stems(cited passages)| / |stems(question)| < T",
                    "grid": [round(0.05 * i, 2) for i in range(21)]},
    "top_bm25": {"what": "refuse an answered/partial core when the best BM25 score of the context passages < T",
                 "grid": [0.5 * i for i in range(33)]},
}
DIAGNOSTIC = {  # added AFTER the declared gates' results were seen: no candidate, never chosen; in-sample
    "p_answer": {"what": "refuse an answered/partial core when 1 - P(refused) < T, P from the adapter's status pass on the "
                         "same passages (status_probs.json, kwanzaa.inference.status_probabilities, batch 8, CPU float32)",
                 "grid": [0.5, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 1.0]}}
RULE = ("on validation live predictions of the headline arm: the T with the highest refusal F1 among those that refuse "
        "at most 1 right answer of the ungated arm (answerable gold, answered, key_fact_ok not False); ties to the smallest T; "
        "the best gate by the same rule (F1, then fewer right answers lost)")
MAX_LOST = 1
WORTH = ("worth building (fixed with the candidates): live refusal F1 of the headline arm up >= 0.10 with <= 1 right answer "
         "lost, and its dataset-passage refusal F1 down <= 0.05")

def slim_copy(eval_dir:Path) -> None:
    "Write predictions.jsonl.gz from a run's eval/ (dataset) and eval/live/ (live) folders: id, arm, setting, text, parsed."
    rows = [{"setting": setting, "id": r["id"], "arm": arm, "text": r["text"], "parsed": r["parsed"], "scores": r["scores"]}
            for setting, d in (("dataset", eval_dir), ("live", eval_dir / "live")) for arm in ARMS
            for r in read_predictions(d / arm_dirname(arm) / "predictions.jsonl").values()]
    with gzip.open(PREDS, "wt", encoding="utf-8") as f: f.writelines(json.dumps(r) + "\n" for r in rows)

def load_preds() -> dict:
    "{(setting, arm): {id: record}}."
    out = {}
    with gzip.open(PREDS, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line); out.setdefault((r["setting"], r["arm"]), {})[r["id"]] = r
    return out

def status_probs(adapter_dir:str, config:str) -> None:
    "Write status_probs.json: the adapter's status probabilities on each validation item, dataset and live passages."
    from kwanzaa.config import load_config
    from kwanzaa.examples import example_messages
    from kwanzaa.inference import load_for_inference, status_probabilities
    cfg, corpus = load_config(path=config), build_corpus(None)
    examples = load_dataset(SPLIT, corpus)
    model, tok = load_for_inference(cfg, adapter_dir)
    out = {s: {e.id: p for e, p in zip(exs, status_probabilities(model, tok, [example_messages(e, corpus, with_target=False)
                                                                               for e in exs], 8))}
           for s, exs in (("live", live_examples(examples, Retriever(corpus), k=4)[0]), ("dataset", examples))}
    atomic_write_json(HERE / "status_probs.json", out)

if "--probs" in sys.argv: status_probs(*sys.argv[sys.argv.index("--probs") + 1:][:2])
PROBS = json.loads((HERE / "status_probs.json").read_text())   # {setting: {id: status probabilities}}

def features(ex, core, corpus, retriever, setting:str) -> dict:
    "The gate's inputs for one item: question stems shared with the cited passages, their share, the best BM25 score."
    q = stems(ex.question)
    cited = [ex.context[n - 1] for n in (core.citations if core else []) if 1 <= n <= len(ex.context)]
    shared = q & set().union(*(stems(corpus.get(c).text) for c in cited)) if cited else set()
    scores = retriever.scores(ex.question)
    best = max((float(scores[corpus.index(c)]) for c in ex.context), default=0.0)
    return {"cited_stems": len(shared), "cited_share": len(shared) / len(q) if q else 0.0, "top_bm25": best,
            "p_answer": 1.0 - PROBS[setting][ex.id]["refused"]}

def right(s:dict) -> bool:
    "A right answer: answerable gold, answered/partial, and its key facts (if any) grounded."
    return s["gold_status"] in ANSWERABLE and s["status"] in ANSWERABLE and s["key_fact_ok"] is not False

def gated(items, gate:str, t) -> dict:
    "Metrics and the trade of refusing, at threshold t, every answered/partial item whose feature is below t."
    scored, lost, gained, wrong_refusals = [], [], [], []
    for ex, text, core, chunks, feat, base in items:
        fire = core is not None and core.status in ANSWERABLE and feat[gate] < t
        s = score_item(ex, text, core=refusal_core(f"gate {gate} < {t}"), chunks=chunks) if fire else base
        scored.append(s)
        if fire and right(base): lost.append(ex.id)
        if fire and base["gold_refused"]: gained.append(ex.id)
        if fire and not base["gold_refused"]: wrong_refusals.append(ex.id)
    m = compute_metrics(scored)
    return {"t": t, "refused": m["counts"]["refusal_precision"][1], "refusal_correct": m["counts"]["refusal_precision"][0],
            "gold_refused": m["counts"]["refusal_recall"][1], **{k: m[k] for k in
            ("refusal_precision", "refusal_recall", "refusal_f1", "status_accuracy", "key_fact_accuracy")},
            "key_fact_ok": m["counts"]["key_fact_accuracy"], "right_answers_lost": lost,
            "newly_correct_refusals": gained, "newly_wrong_refusals": wrong_refusals}

def items_for(examples, recs, corpus, retriever, setting:str) -> list:
    "(example, text, scored core, passages, features, ungated scores) per item; the ungated rescoring must match the run's."
    out = []
    for ex in examples:
        r = recs[ex.id]
        core = AnswerCore.model_construct(**r["parsed"]) if r["parsed"] else None   # as scored (overlap may pass 600 chars)
        chunks = [corpus.get(c) for c in ex.context]
        base = score_item(ex, r["text"], core=core, chunks=chunks)
        assert {k: base[k] for k in ("status", "gold_status", "key_fact_ok", "refused")} == \
               {k: r["scores"][k] for k in ("status", "gold_status", "key_fact_ok", "refused")}, ex.id
        out.append((ex, r["text"], core, chunks, features(ex, core, corpus, retriever, setting), base))
    return out

def choose(rows:list) -> dict:
    "The rule's pick: highest refusal F1 with at most MAX_LOST right answers lost, then the smallest T."
    ok = [r for r in rows if len(r["right_answers_lost"]) <= MAX_LOST]
    return max(ok, key=lambda r: (r["refusal_f1"] or 0.0, -r["t"]))

def main():
    if "--from" in sys.argv: slim_copy(Path(sys.argv[sys.argv.index("--from") + 1]))
    corpus = build_corpus(None); retriever = Retriever(corpus)
    examples = load_dataset(SPLIT, corpus)
    live, live_summary = live_examples(examples, retriever, k=4)
    preds = load_preds()
    settings = {"dataset": examples, "live": live}
    items = {(s, a): items_for(exs, preds[(s, a)], corpus, retriever, s) for s, exs in settings.items() for a in ARMS}
    out = {"split": SPLIT, "arms": list(ARMS), "declared": DECLARED, "rule": RULE, "max_right_answers_lost": MAX_LOST,
           "live_missed": live_summary["missed"], "live_gold_recall": live_summary["gold_recall"],
           "ungated": {f"{s}/{a}": gated(it, "top_bm25", float("-inf")) for (s, a), it in items.items()},
           "features": {f"{s}/{a}": [{"id": ex.id, "gold": b["gold_status"], "status": b["status"], "right": right(b), **f}
                                     for ex, _, _, _, f, b in it] for (s, a), it in items.items() if a == HEADLINE},
           "gates": {}}
    for gate, d in DECLARED.items():
        grid = {f"{s}/{a}": [gated(it, gate, t) for t in d["grid"]] for (s, a), it in items.items()}
        pick = choose(grid[f"live/{HEADLINE}"])
        at = {k: next(r for r in rows if r["t"] == pick["t"]) for k, rows in grid.items()}
        out["gates"][gate] = {"chosen_t": pick["t"], "at_chosen_t": at, "grid": grid}
    best = max(out["gates"], key=lambda g: (out["gates"][g]["at_chosen_t"][f"live/{HEADLINE}"]["refusal_f1"] or 0.0,
                                              -len(out["gates"][g]["at_chosen_t"][f"live/{HEADLINE}"]["right_answers_lost"])))
    out["chosen_gate"] = {"gate": best, "t": out["gates"][best]["chosen_t"]}
    at, base = out["gates"][best]["at_chosen_t"], out["ungated"]
    gain = at[f"live/{HEADLINE}"]["refusal_f1"] - base[f"live/{HEADLINE}"]["refusal_f1"]
    drop = base[f"dataset/{HEADLINE}"]["refusal_f1"] - at[f"dataset/{HEADLINE}"]["refusal_f1"]
    out["verdict"] = {"criterion": WORTH, "live_f1_gain": gain, "dataset_f1_drop": drop,
                      "live_right_lost": len(at[f"live/{HEADLINE}"]["right_answers_lost"]),
                      "worth_building": gain >= 0.10 and len(at[f"live/{HEADLINE}"]["right_answers_lost"]) <= MAX_LOST and drop <= 0.05}
    out["diagnostic"] = {}
    for gate, d in DIAGNOSTIC.items():
        grid = {f"{s}/{a}": [gated(it, gate, t) for t in d["grid"]] for (s, a), it in items.items() if a == HEADLINE}
        out["diagnostic"][gate] = {**d, "best_in_sample_t": choose(grid[f"live/{HEADLINE}"])["t"], "grid": grid}
    out["provenance"] = provenance({"split": SPLIT, "arms": list(ARMS), "adapter": "outputs/golden/adapter"},
                                   [PREDS, HERE / "status_probs.json"], "HF_HUB_OFFLINE=1 python outputs/experiments/refusal-gate/gate.py")
    atomic_write_json(HERE / "summary.json", out)
    for key in (f"live/{HEADLINE}", f"dataset/{HEADLINE}", f"live/{ARMS[1]}", f"dataset/{ARMS[1]}"):
        u = out["ungated"][key]
        print(f"{key}: ungated P {u['refusal_precision']} R {u['refusal_recall']} F1 {u['refusal_f1']} kf {u['key_fact_ok']}")
        for g, d in out["gates"].items():
            r = d["at_chosen_t"][key]
            print(f"  {g} < {d['chosen_t']}: P {r['refusal_precision']:.3f} R {r['refusal_recall']:.3f} F1 {r['refusal_f1']:.3f} "
                  f"kf {r['key_fact_ok']} lost {r['right_answers_lost']} gained {r['newly_correct_refusals']} "
                  f"wrong {r['newly_wrong_refusals']}")
    print("chosen:", out["chosen_gate"], out["verdict"])
    for g, d in [*out["gates"].items(), *out["diagnostic"].items()]:
        print(f"{g} on live/{HEADLINE} (T: refused, correct, P, R, F1, key facts ok, right lost, newly correct refusals)")
        for r in d["grid"][f"live/{HEADLINE}"]:
            print(f"  {r['t']:>6}: {r['refused']:2d} {r['refusal_correct']:2d} {r['refusal_precision']:.3f} {r['refusal_recall']:.3f} "
                  f"{r['refusal_f1']:.3f} {r['key_fact_ok'][0]:2d} {len(r['right_answers_lost']):2d} {len(r['newly_correct_refusals']):2d}")

if __name__ == "__main__": main()
