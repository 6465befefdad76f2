#!/usr/bin/env bash
# Unsloth's own environment for kwanzaa.bench_unsloth (Unsloth 2026.10.9 needs transformers<=5.17, trl<=1.15,
# datasets<5; the project pins transformers>=5.23, trl 1.16).
#   here:    unsloth-site.sh download   -> .uwhl/a and .uwhl/b (ignored; each under 32 MiB), the wheels the GPU machine
#            lacks for Python 3.12: Unsloth's closure less what its image has (torch, triton, nvidia-*, numpy, pandas,
#            pyarrow, pillow, sympy, networkx, torchvision, xformers) and less what gpu-stage.py already sends at the
#            same version (the project's venv versions).
#   there:   unsloth-site.sh install    -> ~/kw/usite (pip install --target, no index), to be named by
#            KWANZAA_UNSLOTH_SITE; run from the tree that carried .uwhl/a and .uwhl/b (one call each: a, then b).
set -euo pipefail
V="unsloth==2026.10.9 unsloth_zoo==2026.10.9 transformers==5.17.0 trl==1.15.0 datasets==4.8.5 bitsandbytes==0.50.2"
case "${1:-}" in
download)
  d=$(mktemp -d); grep -qx '/.uwhl/' .git/info/exclude 2>/dev/null || echo '/.uwhl/' >> .git/info/exclude
  .venv/bin/python -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d "$d" $V
  rm -rf .uwhl && mkdir -p .uwhl/a .uwhl/b
  .venv/bin/python - "$d" <<'PY'
import os, re, shutil, sys
from importlib import metadata
src = sys.argv[1]; key = lambda n: re.sub(r"[-_.]+", "-", n).lower()
venv = {key(d.metadata["Name"]): d.version for d in metadata.distributions()}
image = {"torch", "triton", "numpy", "pandas", "pyarrow", "pillow", "sympy", "mpmath", "networkx", "torchvision",
         "xformers", "setuptools", "wheel", "cuda-bindings", "cuda-pathfinder"}
keep = []
for f in sorted(os.listdir(src)):
    name, ver = f.split("-")[:2]
    if key(name) in image or key(name).startswith("nvidia") or venv.get(key(name)) == ver: continue
    keep.append(f)
keep.sort(key=lambda f: -os.path.getsize(os.path.join(src, f)))
size = {"a": 0, "b": 0}
for f in keep:   # largest first, each into the lighter half
    half = min(size, key=size.get); shutil.copy(os.path.join(src, f), f".uwhl/{half}/{f}")
    size[half] += os.path.getsize(os.path.join(src, f))
print({h: f"{s / 2**20:.1f} MiB" for h, s in size.items()}, len(keep), "wheels")
for h in size: open(f".uwhl/{h}/COUNT", "w").write(f"{len(keep)}\n")
PY
  rm -rf "$d";;
install)
  mkdir -p ~/kw/uwhl && cp .uwhl/*/*.whl ~/kw/uwhl/ 2>/dev/null || true
  want=$(cat .uwhl/*/COUNT | head -n 1)
  if [ "$(ls ~/kw/uwhl | wc -l)" = "$want" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target ~/kw/usite ~/kw/uwhl/*.whl \
      && echo "unsloth site ready: ~/kw/usite ($(ls ~/kw/uwhl | wc -l) wheels)"
  else echo "unsloth site: $(ls ~/kw/uwhl | wc -l) wheels here; send the other half"; fi;;
*) echo "usage: unsloth-site.sh download | install"; exit 2;;
esac
