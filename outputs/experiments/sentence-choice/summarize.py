"""Issue #25: which rule chooses the copied sentence, measured on the VALIDATION split only.

The epoch-6 adapter of outputs/experiments/extractive-gpu (session 7, 16-bit LoRA small-gpu recipe) wrote its greedy
extractive answers to validation-epochs/last-epoch6/adapter_extractive/predictions.jsonl. For each answered item,
likelihood_scores.py (run on a CPU with that adapter, whose weights were not committed) scored every copy unit of each
cited passage by the model's log-likelihood after the answer's prefix (validation_unit_scores.json: sum and mean per
unit). This script re-chooses one unit per cited passage by each rule and scores all key facts, grounded in a cited gold
passage (kwanzaa.evaluate.grounded_facts), against the model's own greedy sentences and against choose_sentences.

    python outputs/experiments/sentence-choice/summarize.py"""
import json, sys
from pathlib import Path
from kwanzaa.contract import AnswerCore, choose_sentences, extractive_sentence, parse
from kwanzaa.corpus import build_corpus
from kwanzaa.evaluate import gold_positions, grounded_facts
from kwanzaa.examples import load_examples
from kwanzaa.records import atomic_write_json, provenance

HERE = Path(__file__).parent
PRED = Path("outputs/experiments/extractive-gpu/validation-epochs/last-epoch6/adapter_extractive/predictions.jsonl")
exs = {e.id: e for e in load_examples("kwanzaa/datasets/validation.jsonl")}
corpus = build_corpus()
units = {r["id"]: r["units"] for r in json.loads((HERE / "validation_unit_scores.json").read_text())}
preds = {json.loads(l)["id"]: json.loads(l) for l in PRED.read_text().splitlines() if l.strip()}
rules = ("model's greedy sentences", "likelihood (sum of log-probs)", "likelihood (mean log-prob per token)",
         "overlap with the question (choose_sentences)")
hits, n = dict.fromkeys(rules, 0), 0
for eid, p in preds.items():
    ex = exs[eid]
    if not ex.gold.key_facts or ex.gold.status not in ("answered", "partial"): continue
    n += 1
    core = parse(p["text"], n_passages=len(ex.context)).core
    if core is None or core.status not in ("answered", "partial") or eid not in units: continue
    texts, gp = [corpus.get(c).text for c in ex.context], gold_positions(ex)
    pick = lambda key: core.model_copy(update={"answer": " ".join(
        extractive_sentence(u["units"][max(range(len(u["units"])), key=u[key].__getitem__)], u["pn"]) for u in units[eid])})
    cores = dict(zip(rules, (core, pick("sum"), pick("mean"), choose_sentences(core, texts, ex.question))))
    for r, c in cores.items(): hits[r] += len(grounded_facts(c, ex.gold.key_facts, gp)) == len(ex.gold.key_facts)
res = {"what": __doc__.split("\n\n")[0], "split": "validation", "answerable_items_with_key_facts": n,
       "all_key_facts_grounded": {r: [h, n] for r, h in hits.items()}, "chosen": rules[-1],
       "predictions": str(PRED), "provenance": provenance(data_paths=[PRED, HERE / "validation_unit_scores.json"],
                                                          command="python " + " ".join(sys.argv))}
atomic_write_json(HERE / "summary.json", res)
print(json.dumps(res["all_key_facts_grounded"]))
