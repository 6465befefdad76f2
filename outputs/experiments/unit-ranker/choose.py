"""Issue #25: does the unit ranker (kwanzaa.rank, fitted on the train split) choose the copied sentences better than
overlap with the question? Decided on the VALIDATION split only, on the generations of both trained runs of the
headline recipe (the same raw outputs re-scored: +overlap vs +rank; the model's status decisions are unchanged).

Rule: `eval.sentence_choice` becomes `rank` (the `ask()` default) if, on each run, all key facts hold on at least 3 more
of the 59 answerable items and citation precision drops by at most 2 points. The rule was written after the first
prototype's validation numbers were seen (session 13); the golden set was not looked at for the choice.

    python outputs/experiments/unit-ranker/choose.py"""
import json, sys
from pathlib import Path
from kwanzaa.corpus import build_corpus
from kwanzaa.evaluate import compute_metrics, score_text
from kwanzaa.examples import load_examples
from kwanzaa.rank import RANKER_FILE, UnitRanker
from kwanzaa.records import atomic_write_json, provenance

HERE = Path(__file__).parent
RUNS = {"session8 (the headline's run)": Path("outputs/experiments/headline-choice/session8-run/adapter_extractive/predictions.jsonl"),
        "session7 (extractive-gpu, last-epoch6)":
            Path("outputs/experiments/extractive-gpu/validation-epochs/last-epoch6/adapter_extractive/predictions.jsonl")}
KEYS = ("key_fact_accuracy", "key_fact_recall", "citation_precision", "citation_coverage", "citation_recall",
        "refusal_precision", "refusal_recall", "unsupported_sentence_rate")
VAL = Path("kwanzaa/datasets/validation.jsonl")
exs, corpus = load_examples(VAL), build_corpus()
res = {}
for run, path in RUNS.items():
    preds = {json.loads(l)["id"]: json.loads(l) for l in path.read_text().splitlines() if l.strip()}
    res[run] = {}
    for arm, flags in (("adapter+extractive+overlap", {"overlap": True}), ("adapter+extractive+rank", {"rank": True})):
        scored = [score_text(e, preds[e.id]["text"], [corpus.get(c) for c in e.context], False, **flags)[0] for e in exs]
        c = compute_metrics(scored)["counts"]
        res[run][arm] = {k: c[k] for k in KEYS}
pct = lambda a: a[0] / a[1] if a[1] else 0.0
adopt = all(r["adapter+extractive+rank"]["key_fact_accuracy"][0] - r["adapter+extractive+overlap"]["key_fact_accuracy"][0] >= 3
            and pct(r["adapter+extractive+rank"]["citation_precision"]) >= pct(r["adapter+extractive+overlap"]["citation_precision"]) - 0.02
            for r in res.values())
out = {"what": __doc__.split("\n\n")[0], "rule": __doc__.split("\n\n")[1], "split": "validation", "items": len(exs),
       "runs": res, "adopted": adopt, "ranker": {"file": "kwanzaa/rankers/units.json",
       **{k: v for k, v in UnitRanker.load().record.items() if k != "provenance"}},
       "provenance": provenance(data_paths=[VAL, RANKER_FILE, *RUNS.values()], command="python " + " ".join(sys.argv))}
atomic_write_json(HERE / "summary.json", out)
print(json.dumps(res, indent=1)); print("adopted:", adopt)
