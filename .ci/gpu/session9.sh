#!/usr/bin/env bash
# GPU session 9 (issues #28, #25), run from the repository root on the lent GPU after `. ~/kw/env.sh`
# (../shared/tools/gpu-stage.py). session9.sh start | wait SECONDS | pack
#   start: copy the tree to ~/kw/repo (runs outlive a call), then in the background:
#     1. alone on the GPU, so its minutes and cost are the plan's own: the seed's gated plan (pilot, full r16, r32,
#        16-bit LoRA fallback), the seed's qlora recipe on the embedded SmolLM2, gated on the VALIDATION split,
#        micro-batch 4 x accumulation 4 (#28 item 4; session 8's copy stopped in step 3 and its weights were not kept,
#        so it starts again);
#     2. then ALONE on the GPU, each in its own process, the trainer bench at the seed's batch 1 x 16 (#28 item 1,
#        speed): 8B 16-bit LoRA, 8B QLoRA, 1B QLoRA, 1B 16-bit LoRA, 7 steps (2 warm-up), host load recorded.
#        (It needs .benchdata carried with the start call; session 9 carried it only to the later 1B call, and the lease
#        ended before this stage, so the 1B pair ran by hand: outputs/bench/seed-decision-alone-1b-h100.json.)
#   wait:  until the driver has ended or SECONDS passed.
#   pack:  records (no checkpoints, no weights) into $OUT.
set -u
unset KWANZAA_SOURCES
W=~/kw/work9; K="python3 -m kwanzaa"
case "${1:-}" in
start)
  rm -rf ~/kw/repo && mkdir -p ~/kw/repo && tar cf - --exclude=./.git --exclude=./outputs . | (cd ~/kw/repo && tar xf -)
  mkdir -p $W && cp .ci/gpu/session9.sh $W/driver.sh
  cd ~/kw/repo && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $W/gpu.txt
  setsid nohup bash $W/driver.sh drive > $W/driver.out 2>&1 < /dev/null &
  sleep 40; tail -n 2 $W/*.out;;
drive)
  cd ~/kw/repo && export PYTHONPATH=$HOME/kw/site:$HOME/kw/repo OMP_NUM_THREADS=4 MKL_NUM_THREADS=4
  job() { local n=$1; shift; bash -c "$* > $W/$n.out 2>&1; echo \$? > $W/$n.rc" & }
  job plan "$K run plan --preset qlora -p model.base=embedded:smollm2 -p model.device=cuda -p data.golden=package:validation \
        -p training.per_device_train_batch_size=4 -p training.gradient_accumulation_steps=4 \
        -p training.gradient_checkpointing=false -p 'eval.arms=[adapter]' --out $W/plan"
  wait; date -u +"plan done %FT%TZ"
  for s in "llama-3.1-8b lora" "llama-3.1-8b qlora" "llama-3.2-1b qlora" "llama-3.2-1b lora"; do
    set -- $s
    $K bench trainer --shape $1 --paths $2 --steps 7 --warmup 2 --json $W/bench-$2-$1.json > $W/bench-$2-$1.out 2>&1
    echo "bench $1 $2 rc=$?"; tail -n 1 $W/bench-$2-$1.out
  done; date -u +"driver done %FT%TZ"; echo 0 > $W/driver.rc;;
wait)
  end=$(( $(date +%s) + ${2:-500} ))
  until [ -f $W/driver.rc ] || [ $(date +%s) -ge $end ]; do sleep 10; done
  date; grep -H . $W/*.rc 2>/dev/null; tail -n 2 $W/plan.out; cat $W/driver.out; ls $W/plan;;
pack)
  cd $W && tar czf /tmp/records.tgz --exclude='checkpoints' --exclude='tokenizer.json' --exclude='*.safetensors' \
      --exclude='.best-adapter' plan bench-* *.out *.rc gpu.txt driver.sh 2>/dev/null
  split -b 15m -d -a 1 /tmp/records.tgz "$OUT/records.tgz.part"; ls -la "$OUT";;
*) echo "usage: session9.sh start | wait SECONDS | pack"; exit 2;;
esac
