"""outputs/experiments/method-quality/summary.json from the two runs' own files (issue #28 item 3): the small-gpu recipe
with 16-bit LoRA and with QLoRA, each trained on one lent GPU (side by side with a third job: minutes are not timings),
scored on the golden set with the dataset's contexts (eval/) and through the project's own BM25 top-4 (eval/live/).

    python .ci/gpu/method_quality_summary.py"""
import json, sys
from pathlib import Path
from kwanzaa.records import atomic_write_json, provenance

D = Path("outputs/experiments/method-quality")
runs = {}
for name, what in (("lora", "small-gpu: LoRA on the unquantized base (float32 weights, the preset's dtype), r 32, 6 epochs, the last kept"),
                   ("qlora", "small-gpu with adapter.method=qlora: the same recipe on a 4-bit NF4 (double quant) base, bf16 compute")):
    r = D / name
    man = json.loads((r / "manifest.json").read_text())
    live = json.loads((r / "eval/live/live.json").read_text())
    runs[name] = {"what": what,
                  "dataset": json.loads((r / "eval/comparison.json").read_text()),
                  "live": json.loads((r / "eval/live/comparison.json").read_text()),
                  "live_retrieval": {k: live[k] for k in ("retrieval", "n", "answerable_with_gold", "missed", "gold_recall", "missed_refused")},
                  "train_seconds_shared_gpu": json.loads((r / "train.done.json").read_text())["seconds"],
                  "peak_memory": man["peak_memory"], "weights_sha256": json.loads((r / "adapter/kwanzaa_adapter.json").read_text()).get("weights_sha256")}
card = (D / "gpu.txt").read_text().strip()
atomic_write_json(D / "summary.json", {
    "what": "issue #28 item 3: the seed's choice (QLoRA) against LoRA on the unquantized (float32) base, on the embedded SmolLM2-135M, the same recipe "
            "otherwise, the grounded answer design (extractive, calibrated, sentences chosen by overlap)",
    "card": card, "driver": ".ci/gpu/session8.sh start / wait / pack, from the working tree of commit ab9a59f (the GPU got an "
              "untracked copy, so the runs' manifests record no git commit)",
    "headline_arm": "adapter+extractive+calibrated+overlap", "runs": runs,
    "note": "one training run per method: run-to-run spread on 28 answerable items is several items (the same LoRA recipe "
            "gave 9/28 and 6/28 key facts in two runs, outputs/experiments/extractive-gpu and this folder)",
    "provenance": provenance(command="python " + " ".join(sys.argv))})
