#!/usr/bin/env bash
# GPU session 4, step 1: convert the embedded models once, then start the two validation sweeps and the
# seed's gated plan (QLoRA first, 16-bit LoRA as its fallback) in the background, so that they outlive this call.
# Run from the repository root on the lent GPU machine, after `. ~/kw/env.sh` (../shared/tools/gpu-stage.py).
set -u
unset KWANZAA_SOURCES                    # the texts shipped in the package, as users have them
# the runs outlive this call, and the next call re-sends the working tree: run from a copy of it that stays put
rm -rf ~/kw/repo && mkdir -p ~/kw/repo && tar cf - --exclude=./.gpu --exclude=./.git . | (cd ~/kw/repo && tar xf -)
cd ~/kw/repo && export PYTHONPATH=$HOME/kw/site:$HOME/kw/repo
W=~/kw/work; mkdir -p "$W"
nvidia-smi --query-gpu=name,memory.used,memory.total,driver_version --format=csv,noheader | tee "$W/gpu.txt"
t0=$(date +%s)
for m in smollm2 gemma3-270m; do
  python3 -c "from kwanzaa.loader import embedded_model_path as e; print(e('$m'))" &
done; wait
echo "embedded models converted in $(( $(date +%s) - t0 )) s"
bg() {  # name, command: run detached (a new session), output in $W/name.out, exit status in $W/name.rc
  local name=$1; shift
  setsid nohup bash -c "$* > $W/$name.out 2>&1; echo \$? > $W/$name.rc" > /dev/null 2>&1 < /dev/null &
}
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2   # eight processes share 16 cores
K="python3 -m kwanzaa"
bg sw-smollm2 "$K sweep outputs/sweeps/gpu-smollm2.yaml --out $W/sw-smollm2 ${DRY_RUN:-}"
bg sw-gemma3 "$K sweep outputs/sweeps/gpu-gemma3.yaml --out $W/sw-gemma3 ${DRY_RUN:-}"
bg plan "$K run plan --preset small-gpu -p adapter.method=qlora -p training.optim=paged_adamw_8bit -p 'arms=[adapter]' -p model.device=cuda --out $W/plan ${DRY_RUN:-}"
sleep ${WAIT:-45}; date; ls "$W" "$W"/sw-*; tail -n 3 "$W"/*.out; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
