#!/usr/bin/env bash
# GPU session 10 (#26, training speed): one suite run on one GPU, every job alone, the plain recipe first on each
# shape, then the levers (fused LoRA projections, Liger's RMSNorm and RoPE, LoRA dropout 0, side-stream offload,
# larger micro-batch) and Unsloth's own path in its own environment (kwanzaa.bench_unsloth), same random models,
# rows and batch. Run from the repository root on the lent GPU after `. ~/kw/env.sh` (../shared/tools/gpu-stage.py
# pack --with liger-kernel==0.8.5), with .uwhl/a then .uwhl/b carried (.ci/gpu/unsloth-site.sh download).
#   session10.sh start: copy the tree to ~/kw/repo (runs outlive a call), install Unsloth's site, start the suite
#   session10.sh wait SECONDS | pack
set -u
W=~/kw/work10; K="python3 -m kwanzaa"
S8=llama-3.1-8b; S1=llama-3.2-1b
j() { local IFS=,; echo "$*"; }
Q=${QUEUE:-}; [ -n "$Q" ] || Q=$(j $S8@1024/plain $S8@1024/fast_fused $S8@1024/fast_fused_liger_d0 $S8@1024/unsloth_d0 $S8@1024/fast_fused_liger \
      $S8@1024/unsloth $S8@1024/fast_fused_liger_d0_stream $S1@1024/plain $S1@1024/fast_fused_liger_d0 $S1@1024/unsloth_d0 \
      $S1@1024/fast_fused_liger_d0_mb16 $S8@2048/plain $S8@2048/fast_fused_liger_d0_stream $S8@2048/unsloth_d0 \
      $S8@1024/fast_fused_liger_d0_offload $S8@1024/plain_d0 prof:$S8@1024/fast_fused_liger_d0 $S1@1024/fast_fused \
      $S1@1024/fast_fused_liger_d0_stream $S8@2048/fast_fused_liger_d0_offload)
# QUEUE="spec,spec,..." replaces the queue (session 11: the 8B@2048 plain recipe with the parity fix, the 0.05-dropout
# side-stream rows, micro-batch 16 with the side stream on 1B, Liger's SiLU-mul now engaged).
# The machine goes back about 30 s after a call ends, killing the suite: keep a `wait` call running back to back
# (session 10 lost its first lease to a pause), and pack in the last one.
case "${1:-}" in
start)
  bash .ci/gpu/unsloth-site.sh install
  rm -rf ~/kw/repo && mkdir -p ~/kw/repo && tar cf - --exclude=./.git --exclude=./outputs --exclude=./.uwhl --exclude=./.gpu . | (cd ~/kw/repo && tar xf -)
  mkdir -p $W && cp .ci/gpu/session10.sh $W/driver.sh && echo "$Q" > $W/queue.txt
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $W/gpu.txt
  setsid nohup bash $W/driver.sh drive > $W/driver.out 2>&1 < /dev/null &
  sleep 30; cat $W/driver.out;;
drive)
  cd ~/kw/repo && export PYTHONPATH=$HOME/kw/site:$HOME/kw/repo KWANZAA_UNSLOTH_SITE=$HOME/kw/usite
  python3 -c "import liger_kernel, importlib.metadata as m; print('liger-kernel', m.version('liger-kernel'))"
  date -u +"suite start %FT%TZ"
  $K bench suite --queue "$Q" --out $W/suite --deadline ${DEADLINE:-1260} --steps 7 > $W/suite.out 2>&1
  echo "suite rc=$?"; date -u +"suite done %FT%TZ"; echo 0 > $W/driver.rc;;
wait)
  end=$(( $(date +%s) + ${2:-500} ))
  until [ -f $W/driver.rc ] || [ $(date +%s) -ge $end ]; do sleep 10; done
  date; cat $W/driver.out; grep "=====" $W/suite/bench.log | tail -n 30;;
pack)
  cp $W/suite/records.json $W/suite/bench.log $W/gpu.txt $W/queue.txt $W/driver.out "$OUT"/ 2>/dev/null; ls -la "$OUT";;
*) echo "usage: session10.sh start | wait SECONDS | pack"; exit 2;;
esac
