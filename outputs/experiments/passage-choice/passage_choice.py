"""Issue #25: which passage should an extractive answer be copied from? VALIDATION split only.

The model decides the status, the passages it cites and how many sentences it copies; `+overlap` re-chooses the
sentences of each cited passage (outputs/experiments/sentence-choice). Here the passage itself is re-chosen. The lead
passage of a question is the one whose crude stems shared with the question weigh most by idf (ln N/df over the
shipped corpus's passages; kwanzaa.retrieval.lead_passage). Variants, fixed before scoring:
  model   the model's passages, sentences by overlap (the `+overlap` arm, today's headline rule);
  lead    an answer that does not cite the lead passage is rebuilt from it alone, as many sentences as the model copied
          per cited passage, chosen by overlap (the `+overlap+lead` arm: kwanzaa.retrieval.choose_passage);
  always  every answer rebuilt from the lead passage alone, even when the model cited it among others;
  add     the lead passage added to the model's passages (each contributes that many sentences).
Scored by the project's own evaluator (kwanzaa.evaluate.score_item / compute_metrics; counts [hits, of]) on the validation split's
dataset contexts, for the two committed prediction files of the headline recipe (session 7's epoch-6 adapter and
session 8's shipped run). Decision rule (the one sentence-choice used, fixed in advance): adopt a variant only if it
holds all key facts on >= 3 more of the 59 answerable items than `model` on both runs, with citation precision no lower.

    HF_HUB_OFFLINE=1 python outputs/experiments/passage-choice/passage_choice.py   # from the repository root; CPU, ~20 s"""
import json, sys
from pathlib import Path
from kwanzaa.contract import (choose_sentences, copied_units, copy_units, extractive_sentence, overlap_units, parse,
                              sentences)
from kwanzaa.corpus import build_corpus
from kwanzaa.evaluate import compute_metrics, score_item
from kwanzaa.examples import load_examples
from kwanzaa.records import atomic_write_json, provenance
from kwanzaa.retrieval import choose_passage, idf_of, lead_passage

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "sentence-choice"))
from scorers import RUNS, VALIDATION   # the same two prediction files and split as the sentence-choice experiment

VARIANTS = ("model", "lead", "always", "add")
METRICS = ("key_fact_accuracy", "key_fact_recall", "citation_precision", "citation_coverage", "unsupported_sentence_rate")

def rebuild(core, texts, question, passages):
    "The core answered from `passages` only, as many sentences per passage as the model copied, chosen by overlap."
    k = max(1, round(len(sentences(core.answer)) / len(set(core.citations))))
    out = [extractive_sentence(u[i], n) for n in sorted(passages) for u in [copy_units(texts[n - 1])]
           for i in overlap_units(u, question, k)]
    return core.model_copy(update={"citations": sorted(passages), "answer": " ".join(out)})

def variant_core(v, core, texts, question, idf):
    core = choose_sentences(core, texts, question) if core is not None else None
    if v == "model" or core is None or core.status not in ("answered", "partial") or not core.citations: return core
    if v == "lead": return choose_passage(core, texts, question, idf)
    lead = lead_passage(question, texts, idf)
    if lead is None or not copied_units(core, texts): return core
    return rebuild(core, texts, question, {lead} if v == "always" else set(core.citations) | {lead})

def score_run(path, exs, corpus, idf):
    preds = {(p := json.loads(l))["id"]: p for l in path.read_text().splitlines() if l.strip()}
    out = {}
    for v in VARIANTS:
        scored = []
        for e in exs:
            chunks = [corpus.get(c) for c in e.context]; texts = [c.text for c in chunks]
            text = preds[e.id]["text"] if e.id in preds else ""
            core = parse(text, n_passages=len(texts)).core
            scored.append(score_item(e, text, core=variant_core(v, core, texts, e.question, idf), chunks=chunks))
        m = compute_metrics(scored)
        out[v] = {k: m["counts"][k] for k in METRICS} | {"n": m["n"]}
    return out

if __name__ == "__main__":
    exs = load_examples(VALIDATION); corpus = build_corpus(); idf = idf_of(corpus)
    runs = {name: score_run(p, exs, corpus, idf) for name, p in RUNS.items()}
    def all_facts(r, v): return r[v]["key_fact_accuracy"][0]
    def prec(r, v): c = r[v]["citation_precision"]; return c[0] / c[1] if c[1] else 0.0
    gain = {v: min(all_facts(r, v) - all_facts(r, "model") for r in runs.values()) for v in VARIANTS}
    prec_ok = {v: all(prec(r, v) >= prec(r, "model") - 1e-12 for r in runs.values()) for v in VARIANTS}
    chosen = max((v for v in VARIANTS[1:] if gain[v] >= 3 and prec_ok[v]), key=gain.get, default="model")
    res = {"what": __doc__.split("\n\n")[0], "split": "validation", "variants": {
               "model": "the model's passages, sentences by overlap (+overlap)",
               "lead": "an answer not citing the lead passage rebuilt from it (+overlap+lead, kwanzaa.retrieval.choose_passage)",
               "always": "every answer rebuilt from the lead passage alone",
               "add": "the lead passage added to the model's passages"},
           "corpus": {"hash": corpus.hash, "passages": len(corpus)}, "runs": runs,
           "gain_all_key_facts_vs_model_min_over_runs": gain, "citation_precision_not_lower": prec_ok,
           "decision_rule": "adopt a variant only if it holds all key facts on >= 3 more items than model on both runs, "
                            "citation precision no lower", "chosen": chosen,
           "provenance": provenance(data_paths=[VALIDATION, *RUNS.values()], command="python " + " ".join(sys.argv))}
    atomic_write_json(HERE / "summary.json", res)
    for name, r in runs.items():
        print(name)
        for v, m in r.items(): print(f"  {v:7s}", {k: m[k] for k in METRICS})
    print("gain", gain, "precision ok", prec_ok, "chosen", chosen)
