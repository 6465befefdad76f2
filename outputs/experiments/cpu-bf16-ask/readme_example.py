"""README's ask() example ("Who created Kwanzaa?", the committed headline adapter) on this CPU in each dtype: float32
and bfloat16 set explicitly, and `auto` in a child process with ONEDNN_MAX_CPU_ISA=AVX2 (the CPU then reports no native
bf16, so auto resolves to float32). Records the answer, its citations and the CPU.

    python outputs/experiments/cpu-bf16-ask/readme_example.py"""
import json, os, subprocess, sys
from pathlib import Path
HERE, Q = Path(__file__).parent, "Who created Kwanzaa?"
if len(sys.argv) > 1 and sys.argv[1] == "--one":
    from kwanzaa.inference import Asker, _config_for_adapter
    from kwanzaa.config import resolve_compute_dtype
    cfg = _config_for_adapter("outputs/golden/adapter")
    cfg.model.dtype = sys.argv[2]
    doc = Asker("outputs/golden/adapter", cfg=cfg)(Q, persona="educator")
    print(json.dumps({"dtype_setting": sys.argv[2], "dtype": str(resolve_compute_dtype(sys.argv[2], "cpu")).replace("torch.", ""),
                      "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), "answer": doc.answer.text,
                      "citations": [s.citation_label for s in doc.sources], "names_karenga": "Karenga" in doc.answer.text}))
    sys.exit()
from kwanzaa.records import atomic_write_json, provenance
runs = []
for dtype, env in (("float32", {}), ("bfloat16", {}), ("auto", {"ONEDNN_MAX_CPU_ISA": "AVX2"})):
    out = subprocess.run([sys.executable, __file__, "--one", dtype], env={**os.environ, **env}, capture_output=True, text=True, check=True)
    runs.append(json.loads(out.stdout.strip().splitlines()[-1])); print(runs[-1], flush=True)
atomic_write_json(HERE / "readme_example.json", {"question": Q, "runs": runs, "provenance": provenance(command="python " + " ".join(sys.argv))})
