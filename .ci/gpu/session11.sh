#!/usr/bin/env bash
# GPU session 11 (#26): one suite run on one GPU, every job alone, the plain recipe first on each shape, then the
# project's levers (fused LoRA, Liger's RMSNorm and RoPE, the side-stream offload, the input embedding table on the
# host: speed.embed_cpu, micro-batch 8) and Unsloth's path in its own environment (kwanzaa.bench_unsloth), same random
# models, rows and batch; then, the bench done, the dropout question of #26 item 2 on real weights: the small-gpu
# recipe trained twice side by side, LoRA dropout 0 and 0.05, each calibrated and scored on the golden set with the
# dataset's passages and through the project's retrieval (two runs sharing the GPU: their minutes are not timings).
# Run from the repository root on the lent GPU after `. ~/kw/env.sh` (../shared/tools/gpu-stage.py pack --with
# liger-kernel==0.8.5), with .uwhl/a then .uwhl/b carried (.ci/gpu/unsloth-site.sh download).
#   session11.sh start: copy the tree to ~/kw/repo (runs outlive a call), install Unsloth's site, start the driver
#   session11.sh wait SECONDS | pack
# QUALITY=0 skips the dropout pair (a short lease); DEADLINE=seconds caps the suite; GEMMA=1 adds Gemma 3 270M through
# the extractive pipeline beside the pair (#25: the validation sweep's best Gemma recipe, e3-lr5e-4-r16,
# outputs/sweeps/gpu-gemma3; stage it with gpu-stage.py pack --gemma).
# The machine goes back about 30 s after a call ends, killing the driver: keep a `wait` call running back to back.
set -u
unset KWANZAA_SOURCES
W=~/kw/work11; K="python3 -m kwanzaa"
S8=llama-3.1-8b; S1=llama-3.2-1b
j() { local IFS=,; echo "$*"; }
Q=${QUEUE:-}; [ -n "$Q" ] || Q=$(j $S8@1024/plain $S8@1024/fast_fused_liger_d0_stream_embcpu $S8@1024/unsloth_d0 \
      $S8@1024/fast_fused_liger_stream_embcpu $S8@1024/unsloth $S8@1024/fast_fused_liger_d0_mb8_stream_embcpu \
      $S1@1024/plain $S1@1024/fast_fused_liger_d0 $S1@1024/unsloth_d0 $S1@1024/fast_fused_liger_d0_mb8_stream \
      $S8@2048/plain $S8@2048/fast_fused_liger_d0_stream_embcpu $S8@2048/unsloth_d0 \
      $S8@1024/fast_fused_liger_d0_stream prof:$S8@1024/fast_fused_liger_d0_stream_embcpu)
case "${1:-}" in
start)
  bash .ci/gpu/unsloth-site.sh install
  rm -rf ~/kw/repo && mkdir -p ~/kw/repo && tar cf - --exclude=./.git --exclude=./outputs --exclude=./.uwhl --exclude=./.gpu . | (cd ~/kw/repo && tar xf -)
  mkdir -p $W && cp .ci/gpu/session11.sh $W/driver.sh && echo "$Q" > $W/queue.txt
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $W/gpu.txt
  setsid nohup bash $W/driver.sh drive > $W/driver.out 2>&1 < /dev/null &
  sleep 20; cat $W/driver.out;;
drive)
  cd ~/kw/repo && export PYTHONPATH=$HOME/kw/site:$HOME/kw/repo KWANZAA_UNSLOTH_SITE=$HOME/kw/usite
  python3 -c "import liger_kernel, importlib.metadata as m; print('liger-kernel', m.version('liger-kernel'))"
  date -u +"suite start %FT%TZ"
  $K bench suite --queue "$Q" --out $W/suite --deadline ${DEADLINE:-660} --steps 7 > $W/suite.out 2>&1
  echo "suite rc=$?"; date -u +"suite done %FT%TZ"
  [ "${QUALITY:-1}" = 1 ] || { echo "quality runs skipped (QUALITY=0)"; echo 0 > $W/driver.rc; exit 0; }
  export OMP_NUM_THREADS=4 MKL_NUM_THREADS=4 PYTHONPATH=$HOME/kw/site:$HOME/kw/repo
  unset KWANZAA_UNSLOTH_SITE
  A='[adapter+extractive+calibrated, adapter+extractive+calibrated+overlap]'
  for d in 0.0 0.05; do
    ( $K run all --preset small-gpu -p model.device=cuda -p lora.dropout=$d -p "eval.arms=$A" --out $W/drop$d \
        > $W/drop$d.out 2>&1; echo $? > $W/drop$d.rc ) &
  done
  if [ "${GEMMA:-0}" = 1 ]; then   # #25: Gemma 3 270M through the extractive pipeline (staged with gpu-stage.py pack --gemma)
    ( $K run all --preset small-gpu -p model.device=cuda -p model.base=embedded:gemma3-270m -p training.epochs=3 \
        -p training.learning_rate=5e-4 -p lora.r=16 -p lora.alpha=32 -p "eval.arms=$A" --out $W/gemma \
        > $W/gemma.out 2>&1; echo $? > $W/gemma.rc ) &
  fi
  wait; date -u +"quality done %FT%TZ"; echo 0 > $W/driver.rc;;
wait)
  end=$(( $(date +%s) + ${2:-500} ))
  until [ -f $W/driver.rc ] || [ $(date +%s) -ge $end ]; do sleep 10; done
  date; cat $W/driver.out; grep "=====" $W/suite/bench.log | tail -n 20; tail -n 2 $W/drop*.out 2>/dev/null;;
pack)
  cp $W/suite/records.json $W/suite/bench.log $W/gpu.txt $W/queue.txt $W/driver.out "$OUT"/ 2>/dev/null
  cd $W && tar czf "$OUT/quality.tgz" --exclude='checkpoints' --exclude='tokenizer.json' --exclude='*.safetensors' \
      --exclude='.best-adapter' drop* gemma* 2>/dev/null; ls -la "$OUT";;
*) echo "usage: session11.sh start | wait SECONDS | pack"; exit 2;;
esac
