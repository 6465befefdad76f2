#!/usr/bin/env bash
# GPU session 12 (#25, #26): session 11's run (never started: no GPU that session), quality first. One suite run on one GPU, every job alone, the plain recipe first on each shape, then the
# project's levers (fused LoRA, Liger's RMSNorm and RoPE, the side-stream offload, the input embedding table on the
# host: speed.embed_cpu, micro-batch 8) and Unsloth's path in its own environment (kwanzaa.bench_unsloth), same random
# models, rows and batch; then, the bench done, the dropout question of #26 item 2 on real weights: the small-gpu
# recipe trained twice side by side, LoRA dropout 0 and 0.05, each calibrated and scored on the golden set with the
# dataset's passages and through the project's retrieval (two runs sharing the GPU: their minutes are not timings).
# Session 12 order: the quality runs first (the dropout pair and, with GEMMA=1, the default here, #25's Gemma run; they
# share the GPU, so their minutes are not timings), then the suite alone on the GPU until END (epoch seconds, set by
# start as now + BUDGET, default 1080 s): the suite's deadline is what is left, so a short lease cuts the speed rows
# from the end of the queue, which is ordered by what the issue needs most. Each quality run is also scored on the
# VALIDATION split (.ci/gpu/validation_choice.py, adapter+extractive and +overlap, into RUN/val): choices use those.
# Run from the repository root on the lent GPU after `. ~/kw/env.sh` (../shared/tools/gpu-stage.py pack --with
# liger-kernel==0.8.5), with .uwhl/a then .uwhl/b carried (.ci/gpu/unsloth-site.sh download).
#   session12.sh start: copy the tree to ~/kw/repo (runs outlive a call), install Unsloth's site, start the driver
#   session12.sh wait SECONDS | pack
# QUALITY=0 skips the quality runs; BUDGET=seconds from start to the suite's end; GEMMA=0 drops Gemma 3 270M through
# the extractive pipeline beside the pair (#25: the validation sweep's best Gemma recipe, e3-lr5e-4-r16,
# outputs/sweeps/gpu-gemma3; stage it with gpu-stage.py pack --gemma).
# The machine goes back about 30 s after a call ends, killing the driver: keep a `wait` call running back to back.
# By the lease left when a machine finally starts (each refused start costs about 90 s of it; sessions 11 and 12 lost
# their whole leases so): >= 20 min: gpu-stage.py pack --gemma (7 calls) and the default; >= 12 min: pack without
# --gemma (3 calls, .uwhl/a with the third, .uwhl/b with start), GEMMA=0; >= 8 min: QUALITY=0 GEMMA=0 and a QUEUE of
# 8B@1024 plain, fast_fused_liger_d0_stream_embcpu, fast_fused_liger_d0_stream, then 8B@2048 plain and its embcpu row.
# Set BUDGET to the lease left at start less 90 s (the pack call and its margin).
# Session 14 ran it once on one H100 (bench run 11, outputs/bench/run11_records.json; the quality runs in
# outputs/experiments/dropout-quality and gemma-extractive): the deadline cut the queue after the 8B rows, and the
# embcpu rows saved no memory (the table went back to the GPU with accelerate's move; fixed since). Next lease:
# QUALITY=0 GEMMA=0 and QUEUE=8B@1024 plain, fast_fused_liger_d0_stream_embcpu, fast_fused_liger_d0_stream, then the
# 1B rows (llama-3.2-1b@1024 plain, fast_fused_liger_d0, unsloth_d0, fast_fused_liger_d0_mb8_stream).
# Session 15 ran that queue (with 8B@1024 unsloth_d0 last), then on the same warm H100 8B@2048 plain, its embcpu
# row and unsloth_d0, 8B@1024 fast_fused_liger_d0_mb8_stream_embcpu and the profile (bench run 12,
# outputs/bench/run12_records.json): both queues ran to the end in 5 and 4 minutes.
set -u
unset KWANZAA_SOURCES
W=~/kw/work12; K="python3 -m kwanzaa"
S8=llama-3.1-8b; S1=llama-3.2-1b
j() { local IFS=,; echo "$*"; }
Q=${QUEUE:-}; [ -n "$Q" ] || Q=$(j $S8@1024/plain $S8@1024/fast_fused_liger_d0_stream_embcpu \
      $S8@1024/fast_fused_liger_d0_stream $S8@1024/unsloth_d0 \
      $S8@2048/plain $S8@2048/fast_fused_liger_d0_stream_embcpu $S8@2048/unsloth_d0 \
      $S8@1024/fast_fused_liger_stream_embcpu $S8@1024/unsloth $S8@1024/fast_fused_liger_d0_mb8_stream_embcpu \
      $S1@1024/plain $S1@1024/fast_fused_liger_d0 $S1@1024/unsloth_d0 $S1@1024/fast_fused_liger_d0_mb8_stream \
      prof:$S8@1024/fast_fused_liger_d0_stream_embcpu)
case "${1:-}" in
start)
  bash .ci/gpu/unsloth-site.sh install
  rm -rf ~/kw/repo && mkdir -p ~/kw/repo && tar cf - --exclude=./.git --exclude=./outputs --exclude=./.uwhl --exclude=./.gpu . | (cd ~/kw/repo && tar xf -)
  mkdir -p $W && cp .ci/gpu/session12.sh $W/driver.sh && echo "$Q" > $W/queue.txt
  echo $(( $(date +%s) + ${BUDGET:-1080} )) > $W/end.txt
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $W/gpu.txt
  setsid nohup bash $W/driver.sh drive > $W/driver.out 2>&1 < /dev/null &
  sleep 20; cat $W/driver.out;;
drive)
  cd ~/kw/repo && export PYTHONPATH=$HOME/kw/site:$HOME/kw/repo
  python3 -c "import liger_kernel, importlib.metadata as m; print('liger-kernel', m.version('liger-kernel'))"
  if [ "${QUALITY:-1}" = 1 ]; then
    date -u +"quality start %FT%TZ"
    export OMP_NUM_THREADS=4 MKL_NUM_THREADS=4
    A='[adapter+extractive+calibrated, adapter+extractive+calibrated+overlap]'
    for d in 0.0 0.05; do
      ( $K run all --preset small-gpu -p model.device=cuda -p lora.dropout=$d -p "eval.arms=$A" --out $W/drop$d \
          > $W/drop$d.out 2>&1; echo $? > $W/drop$d.rc
        KWANZAA_VAL_OVERRIDES="model.device=cuda" python3 .ci/gpu/validation_choice.py $W/drop$d/val $W/drop$d/adapter \
          >> $W/drop$d.out 2>&1 ) &
    done
    if [ "${GEMMA:-1}" = 1 ]; then   # #25: Gemma 3 270M through the extractive pipeline (gpu-stage.py pack --gemma)
      ( $K run all --preset small-gpu -p model.device=cuda -p model.base=embedded:gemma3-270m -p training.epochs=3 \
          -p training.learning_rate=5e-4 -p lora.r=16 -p lora.alpha=32 -p "eval.arms=$A" --out $W/gemma \
          > $W/gemma.out 2>&1; echo $? > $W/gemma.rc
        KWANZAA_VAL_OVERRIDES="model.device=cuda;model.base=embedded:gemma3-270m" \
          python3 .ci/gpu/validation_choice.py $W/gemma/val $W/gemma/adapter >> $W/gemma.out 2>&1 ) &
    fi
    wait; date -u +"quality done %FT%TZ"; unset OMP_NUM_THREADS MKL_NUM_THREADS
  else echo "quality runs skipped (QUALITY=0)"; fi
  left=$(( $(cat $W/end.txt) - $(date +%s) ))
  date -u +"suite start %FT%TZ, deadline ${left}s"
  KWANZAA_UNSLOTH_SITE=$HOME/kw/usite $K bench suite --queue "$Q" --out $W/suite --deadline $left --steps 7 \
      > $W/suite.out 2>&1
  echo "suite rc=$?"; date -u +"suite done %FT%TZ"; echo 0 > $W/driver.rc;;
wait)
  end=$(( $(date +%s) + ${2:-500} ))
  until [ -f $W/driver.rc ] || [ $(date +%s) -ge $end ]; do sleep 10; done
  date; cat $W/driver.out; grep "=====" $W/suite/bench.log | tail -n 20; tail -n 2 $W/drop*.out $W/gemma.out 2>/dev/null;;
pack)
  cp $W/suite/records.json $W/suite/bench.log $W/gpu.txt $W/queue.txt $W/driver.out "$OUT"/ 2>/dev/null
  cd $W && tar czf "$OUT/quality.tgz" --exclude='checkpoints' --exclude='tokenizer.json' --exclude='*.safetensors' \
      --exclude='.best-adapter' drop* gemma* 2>/dev/null
  tar czf "$OUT/gemma-adapter.tgz" --exclude='checkpoints' --exclude='tokenizer.json' gemma 2>/dev/null; ls -la "$OUT";;
*) echo "usage: session12.sh start | wait SECONDS | pack"; exit 2;;
esac
