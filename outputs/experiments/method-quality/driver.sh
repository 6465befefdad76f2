#!/usr/bin/env bash
# GPU session 8 (issues #25, #28), run from the repository root on the lent GPU after `. ~/kw/env.sh`
# (../shared/tools/gpu-stage.py). session8.sh start | wait SECONDS | pack
#   start: copy the tree to ~/kw/repo (runs outlive a call); then, alone on the GPU, the project's trainer with 16-bit
#          LoRA on the random Llama-3.2-1B and Llama-3.1-8B shapes, each in its own process (#28 item 1: session 7's
#          LoRA rows ran after QLoRA in one process, whose model was still in memory); then three runs side by side:
#          g8   = the small-gpu recipe (16-bit LoRA, the last of 6 epochs): train, calibrate, evaluate on the golden
#                 set with the dataset's contexts and through the project's own retrieval (#25's headline candidate);
#          g8q  = the same recipe with adapter.method=qlora (#28 item 3: the seed's choice against 16-bit LoRA);
#          plan = the seed's gated plan (pilot, full r16, r32, 16-bit LoRA fallback) with the seed's qlora recipe on
#                 the embedded SmolLM2, gated on the VALIDATION split (a choice of configuration is model
#                 selection), micro-batch 4 x accumulation 4 (the seed's effective batch 16, fewer host round trips)
#                 (#28 item 4). The three share the GPU: their minutes are not timings.
#   wait:  until the three have ended or SECONDS passed.
#   pack:  records (no checkpoints) and the g8/g8q adapter weights into $OUT.
set -u
unset KWANZAA_SOURCES
W=~/kw/work8; K="python3 -m kwanzaa"
case "${1:-}" in
start)
  rm -rf ~/kw/repo && mkdir -p ~/kw/repo && tar cf - --exclude=./.git . | (cd ~/kw/repo && tar xf -)
  cd ~/kw/repo && export PYTHONPATH=$HOME/kw/site:$HOME/kw/repo && mkdir -p $W
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $W/gpu.txt
  for s in llama-3.2-1b llama-3.1-8b; do
    $K bench trainer --shape $s --paths lora --steps 4 --warmup 2 --json $W/bench-lora-$s.json > $W/bench-lora-$s.out 2>&1
    echo "$s rc=$?"; tail -n 2 $W/bench-lora-$s.out
  done
  bg() { local n=$1; shift; setsid nohup bash -c "$* > $W/$n.out 2>&1; echo \$? > $W/$n.rc" > /dev/null 2>&1 < /dev/null & }
  export OMP_NUM_THREADS=4 MKL_NUM_THREADS=4
  A='[adapter, adapter+constrained+calibrated, adapter+extractive+calibrated, adapter+extractive+calibrated+overlap]'
  bg g8 "$K run all --preset small-gpu -p model.device=cuda -p 'eval.arms=$A' --out $W/g8"
  bg g8q "$K run all --preset small-gpu -p adapter.method=qlora -p model.device=cuda \
          -p 'eval.arms=[adapter+extractive+calibrated, adapter+extractive+calibrated+overlap]' --out $W/g8q"
  bg plan "$K run plan --preset qlora -p model.base=embedded:smollm2 -p model.device=cuda -p data.golden=package:validation \
          -p training.per_device_train_batch_size=4 -p training.gradient_accumulation_steps=4 \
          -p training.gradient_checkpointing=false -p 'eval.arms=[adapter]' --out $W/plan"
  sleep 45; tail -n 2 $W/*.out;;
wait)
  end=$(( $(date +%s) + ${2:-500} ))
  until { [ -f $W/g8.rc ] && [ -f $W/g8q.rc ] && [ -f $W/plan.rc ]; } || [ $(date +%s) -ge $end ]; do sleep 10; done
  date; grep -H . $W/*.rc 2>/dev/null; tail -n 3 $W/g8.out $W/g8q.out $W/plan.out; ls $W/plan;;
pack)
  cd $W && tar czf /tmp/records.tgz --exclude='checkpoints' --exclude='tokenizer.json' --exclude='*.safetensors' \
      --exclude='.best-adapter' g8 g8q plan bench-* *.out *.rc gpu.txt 2>/dev/null
  split -b 15m -d -a 1 /tmp/records.tgz "$OUT/records.tgz.part"
  tar cf /tmp/w.tar g8/adapter/adapter_model.safetensors g8/adapter/tokenizer.json g8q/adapter/adapter_model.safetensors 2>/dev/null
  split -b 15m -d -a 1 /tmp/w.tar "$OUT/weights.tar.part"; ls -la "$OUT";;
*) echo "usage: session8.sh start | wait SECONDS | pack"; exit 2;;
esac
