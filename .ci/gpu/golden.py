"""GPU session step 2: the best run of each sweep (validation split), copied to bf16 and evaluated on the golden set.

For each sweep: the best run by its `select` metrics (comparison.json; if the sweep has not finished, ranked from the
runs that have). SmolLM2's r16 recipe with each method (QLoRA and 16-bit LoRA) is evaluated too on the golden
set, for the QLoRA-vs-LoRA table. Each evaluation is `kwanzaa run evaluate` (papermill), started detached.
"""
import json, os, shlex, subprocess, sys
from pathlib import Path
from kwanzaa.config_yaml import load_yaml
from kwanzaa.sweeps import compare_runs, select_best, sweep_runs, SELECT
from kwanzaa.publish import cast_adapter

W = Path(sys.argv[1])
ARMS = "arms=[base, adapter, adapter+constrained, adapter+constrained+citecheck, adapter+constrained+calibrated]"
TWIN_ARMS = "arms=[adapter, adapter+constrained, adapter+constrained+calibrated]"

def best_of(name, spec_file):
    spec = load_yaml(Path(spec_file).read_text(encoding="utf-8"), spec_file)   # the spec the sweep ran (and checked)
    runs = dict(sweep_runs(spec))
    comp = W / name / "comparison.json"
    if comp.exists(): best = json.loads(comp.read_text())["selection"]["best"]
    else:  # unfinished sweep: rank the runs that have validation metrics
        done = [n for n in runs if (W / name / n / "eval" / "comparison.json").exists()]
        rows = compare_runs([W / name / n for n in done], arm=spec.get("arm", "adapter"))
        best = select_best(rows, spec.get("select", SELECT))
        print(f"{name}: not finished; best of {done}: {best}")
    return best, runs, spec

def launch(tag, run_dir, params, preset, arms):
    out = W / f"golden-{tag}"
    cast_adapter(run_dir / "adapter", out / "adapter")            # the bf16 copy that is committed and shipped
    args = ["run", "evaluate", "--preset", preset, "--out", str(out)] + [a for p in params for a in ("-p", p)] + \
           ["-p", "golden_file=golden", "-p", arms] + shlex.split(os.environ.get("GOLDEN_EXTRA", ""))  # a dry run: --smoke
    (out / "source.json").write_text(json.dumps(dict(run=str(run_dir), params=params, command="kwanzaa " + shlex.join(args))))
    log = open(W / f"golden-{tag}.out", "w")
    subprocess.Popen([sys.executable, "-m", "kwanzaa", *args], stdout=log, stderr=subprocess.STDOUT,
                     start_new_session=True, env=dict(os.environ, KWANZAA_COMMAND="kwanzaa " + shlex.join(args)))
    print("started", tag, "from", run_dir.name, flush=True)

for name, spec_file, tag in (("sw-smollm2", "outputs/sweeps/gpu-smollm2.yaml", "smollm2"),
                             ("sw-gemma3", "outputs/sweeps/gpu-gemma3.yaml", "gemma3")):
    best, runs, spec = best_of(name, spec_file)
    if best is None: print(f"{name}: no finished run"); continue
    launch(tag, W / name / best, runs[best], spec["preset"], ARMS)
    if tag == "smollm2":  # the seed's r16 recipe with each method, for QLoRA vs 16-bit LoRA on the golden set
        for twin, label in (("recipe_e4-lr1e-3-r16", "lora-r16"), ("recipe_e4-lr1e-3-r16-qlora", "qlora-r16")):
            if twin != best and (W / name / twin / "adapter" / "adapter_model.safetensors").exists():
                launch(f"smollm2-{label}", W / name / twin, runs[twin], spec["preset"], TWIN_ARMS)
