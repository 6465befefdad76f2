"""GPU session 12's quality runs (issues #25 and #26 item 2), summarized, with the decision rules fixed before any
result was seen (this file was committed before the run came back).

    python .ci/gpu/quality12.py RUNS_DIR        # RUNS_DIR holds drop0.0/, drop0.05/ and gemma/ as session12.sh made them

Each run is `kwanzaa run all --preset small-gpu` on the lent GPU (calibrated on the validation split, scored on the
golden set with the dataset's passages in eval/ and through the project's retrieval in eval/live/) and also scored on
the VALIDATION split without calibration (.ci/gpu/validation_choice.py, in val/: adapter+extractive and +overlap).
Choices look at the validation split only; the golden rows are reported beside them.

Rules, fixed in advance:
- #26 item 2, LoRA dropout 0 vs 0.05 (same recipe otherwise): dropout 0 may be a speed recipe's explicit choice when,
  on validation with +overlap, it holds all key facts on no fewer than 2 items below dropout 0.05 and its citation
  precision is no more than 3 points lower. The plain baseline keeps the seed's 0.05 either way.
- #25, Gemma 3 270M through the extractive pipeline (the validation sweep's best Gemma recipe, e3-lr5e-4-r16): it
  replaces SmolLM2-135M as the headline's base when, on validation with +overlap, it holds all key facts on at least
  3 more of the 59 answerable items than the better of the two SmolLM2 runs of the headline recipe (25,
  outputs/experiments/headline-choice/summary.json) with citation precision no lower (46/70) and refusal recall no more
  than one item lower (15/20). Otherwise the headline stays and the row is reported as measured.
Writes outputs/experiments/dropout-quality/summary.json and outputs/experiments/gemma-extractive/summary.json."""
import json, shutil, sys
from pathlib import Path
from kwanzaa.records import atomic_write_json, provenance

RUNS = Path(sys.argv[1])
EXP = Path("outputs/experiments")
KEYS = ("citation_coverage", "citation_precision", "refusal_precision", "refusal_recall", "key_fact_accuracy",
        "key_fact_recall", "unsupported_sentence_rate", "status_accuracy")
SMOLLM2_VAL = {"all_key_facts": (25, 59), "citation_precision": (46, 70), "refusal_recall": (15, 20)}   # headline-choice

def rows(d:Path) -> dict:
    "{arm: {metric: value, counts}} of every metrics.json one level under d."
    out = {}
    for m in sorted(d.glob("*/metrics.json")):
        j = json.loads(m.read_text())
        out[j["arm"]] = {k: j.get(k) for k in KEYS} | {"n": j["n"], "counts": {k: j["counts"].get(k) for k in KEYS}}
    return out

def run_summary(r:Path) -> dict:
    "The three scorings of one run, and what its manifests say about the device."
    man = next(iter(sorted(r.glob("**/manifest.json"))), None)
    dev = json.loads(man.read_text()).get("device") if man else None
    return {"golden (dataset passages)": rows(r / "eval"), "golden (own retrieval)": rows(r / "eval" / "live"),
            "validation (no calibration)": rows(r / "val"), "device": dev, "run_dir": r.name}

def val_counts(s:dict, arm="adapter+extractive+overlap") -> dict:
    c = s["validation (no calibration)"][arm]["counts"]
    return {"all_key_facts": tuple(c["key_fact_accuracy"]), "citation_precision": tuple(c["citation_precision"]),
            "refusal_recall": tuple(c["refusal_recall"])}

def ratio(t): return t[0] / t[1] if t[1] else 0.0

def copy_run(src:Path, dst:Path):
    "The run's records without weights (the manifests, metrics, predictions, executed notebooks)."
    if dst.exists(): shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoints", "*.safetensors", "tokenizer.json", ".best-adapter"))

def main():
    prov = lambda what: provenance({"what": what, "runs": str(RUNS)}, ["kwanzaa/datasets/validation.jsonl", "kwanzaa/datasets/golden.jsonl"], command="python .ci/gpu/quality12.py " + str(RUNS))
    if (RUNS / "drop0.0").is_dir() and (RUNS / "drop0.05").is_dir():
        d0, d5 = run_summary(RUNS / "drop0.0"), run_summary(RUNS / "drop0.05")
        v0, v5 = val_counts(d0), val_counts(d5)
        ok = (v0["all_key_facts"][0] >= v5["all_key_facts"][0] - 2
              and ratio(v0["citation_precision"]) >= ratio(v5["citation_precision"]) - 0.03)
        out = EXP / "dropout-quality"
        for n in ("drop0.0", "drop0.05"): copy_run(RUNS / n, out / n)
        atomic_write_json(out / "summary.json", {
            "what": "#26 item 2: the small-gpu recipe at LoRA dropout 0 and 0.05, same recipe otherwise, one lent GPU",
            "rule": __doc__.split("Rules, fixed in advance:")[1].split("- #25")[0].strip(),
            "dropout_0.0": d0, "dropout_0.05": d5, "validation": {"0.0": v0, "0.05": v5},
            "dropout_0_allowed": ok, "provenance": prov("dropout-quality")})
        print("dropout 0 allowed:", ok, v0, v5)
    if (RUNS / "gemma").is_dir():
        g = run_summary(RUNS / "gemma"); vg = val_counts(g)
        adopt = (vg["all_key_facts"][0] >= SMOLLM2_VAL["all_key_facts"][0] + 3
                 and ratio(vg["citation_precision"]) >= ratio(SMOLLM2_VAL["citation_precision"])
                 and vg["refusal_recall"][0] >= SMOLLM2_VAL["refusal_recall"][0] - 1)
        out = EXP / "gemma-extractive"
        copy_run(RUNS / "gemma", out / "run")
        atomic_write_json(out / "summary.json", {
            "what": "#25: Gemma 3 270M through the extractive pipeline (small-gpu, epochs 3, lr 5e-4, r 16), one lent GPU",
            "rule": __doc__.split("- #25, ")[1].split("Writes")[0].strip(), "gemma": g,
            "validation": {"gemma": vg, "smollm2 headline recipe (best of two runs)": SMOLLM2_VAL},
            "adopted": adopt, "provenance": prov("gemma-extractive")})
        print("gemma adopted:", adopt, vg)

if __name__ == "__main__": main()
