"""Score adapters on the VALIDATION split (never the golden set) to choose between runs of one recipe (issue #25).

    python .ci/gpu/validation_choice.py OUT ADAPTER_DIR [ARM ...]
Runs on a CPU in float32 (the small-gpu preset's dtype), arms default adapter+extractive and its +overlap twin (the
calibrated arms are left out: the threshold was itself chosen on this split). KWANZAA_VAL_OVERRIDES="k=v;k=v" adds
configuration overrides (model.device=cuda on the lent GPU, model.base=embedded:gemma3-270m for a Gemma adapter)."""
import os, sys
from kwanzaa.config import load_config
from kwanzaa.evaluate import compare_arms

out, adapter = sys.argv[1], sys.argv[2]
arms = sys.argv[3:] or ["adapter+extractive", "adapter+extractive+overlap"]
extra = dict(kv.split("=", 1) for kv in os.environ.get("KWANZAA_VAL_OVERRIDES", "").split(";") if kv)
cfg = load_config("small-gpu", overrides={"model.device": "cpu", "data.golden": "package:validation"} | extra)
res = compare_arms(cfg, "package:validation", out, arms=arms, adapter_dir=adapter, command="python " + " ".join(sys.argv),
                   progress=True)
for a, m in res.items():
    print(a, {k: m[k] for k in ("citation_precision", "refusal_precision", "refusal_recall", "key_fact_accuracy")})
