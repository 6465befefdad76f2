#!/usr/bin/env bash
# GPU session 5 (#17, training speed): one run of the current code on one H200, every job one after another
# (never two at once, so that the timings are clean), detached so that it outlives the call that starts it.
# Run from the repository root on the lent GPU machine after `. ~/kw/env.sh` (../shared/tools/gpu-stage.py),
# with .benchdata carried (python -c "from kwanzaa.bench import bench_bundle; bench_bundle()").
# DRY=1 runs a smoke version on a CPU (tiny shapes, 2 steps) to check the script itself.
set -u
unset KWANZAA_SOURCES                    # the texts shipped in the package, as users have them
W=${W:-$HOME/kw/work5}; mkdir -p "$W"
rm -rf ~/kw/repo5 && mkdir -p ~/kw/repo5 && tar cf - --exclude=./.gpu --exclude=./.git . | (cd ~/kw/repo5 && tar xf -)
cd ~/kw/repo5 && export PYTHONPATH=${SITE:-$HOME/kw/site}:$HOME/kw/repo5
(nvidia-smi --query-gpu=name,memory.used,memory.total,driver_version --format=csv,noheader || echo "no GPU") > "$W/gpu.txt"
B="python3 -m kwanzaa bench"
if [ -n "${DRY:-}" ]; then
  S8=tiny; S1=tiny; STEPS=3; TSTEPS=2; TW=1; T135="--steps 2 --warmup 1"
else
  S8=llama-3.1-8b; S1=llama-3.2-1b; STEPS=7; TSTEPS=8; TW=2; T135="--steps 30 --warmup 5"
fi
j() { local IFS=,; echo "$*"; }
# 1. the 8B and 1B shapes at 1024: the plain recipe, the measured levers, the fused LoRA projections; profiles
QA=$(j $S8@1024/plain $S8@1024/fast_offload $S8@1024/fast_fused $S8@1024/fast_fused_offload \
       prof:$S8@1024/plain prof:$S8@1024/fast_fused_offload \
       $S1@1024/plain $S1@1024/fast $S1@1024/fast_offload $S1@1024/fast_fused $S1@1024/fast_fused_offload \
       $S1@1024/fast_mb16 prof:$S1@1024/fast_fused)
# 4. the 8B shape at 2048 (batch 4 x 4, and batch 1 for the long-context peak), 1B on the real lengths (packing)
QB=$(j $S8@2048/plain $S8@2048/fast_offload $S8@2048/fast_fused_offload $S8@2048/fast_fused_mb1_offload \
       $S1@train/plain $S1@train/fast_rows $S1@train/fast_rows_fused $S1@train/fast_rows_fused_offload)
TP="qlora,qlora-fast,qlora-fast+speed.fused_lora=true"
SG="small-gpu,small-gpu+speed.no_sync=true+speed.lm_head_chunk=8192,small-gpu+speed.no_sync=true+speed.lm_head_chunk=8192+speed.fused_lora=true"
cat > "$W/driver.sh" <<DRV
set -u; cd ~/kw/repo5
step() { local n=\$1; shift; echo "== \$n start \$(date +%T)" >> $W/progress; "\$@" > $W/\$n.out 2>&1; echo "== \$n rc=\$? \$(date +%T)" >> $W/progress; }
step suite-a $B suite --queue "$QA" --out $W/run8a --deadline 840 --steps $STEPS
step trainer-1b $B trainer --shape $S1 --paths "$TP" --steps $TSTEPS --warmup $TW --json $W/trainer_raw.json
step trainer-135m $B trainer --model embedded:smollm2 --paths "$SG" $T135 --json $W/trainer_135m.json
step suite-b $B suite --queue "$QB" --out $W/run8b --deadline 600 --steps $STEPS
echo "== all done \$(date +%T)" >> $W/progress
DRV
echo "queue A: $QA"; echo "queue B: $QB"
setsid nohup bash "$W/driver.sh" > "$W/driver.log" 2>&1 < /dev/null &
sleep ${WAIT:-20}; cat "$W/progress" 2>/dev/null; tail -n 5 "$W"/*.out 2>/dev/null | cut -c1-300
