#!/usr/bin/env bash
# GPU session 7 (issues #25, #28), run from the repository root on the lent GPU after `. ~/kw/env.sh`
# (../shared/tools/gpu-stage.py). session7.sh start | wait SECONDS | bench | pack
#   start: copy the tree to ~/kw/repo (runs outlive a call), start two runs in the background, side by side:
#          g7  = the small-gpu recipe (16-bit LoRA) on the extractive data: train, calibrate, evaluate (dataset
#                contexts and the project's own retrieval) -> the new headline adapter;
#          g7q = the same recipe with adapter.method=qlora (the seed's choice), headline arms only (#28 item 3).
#          They share the GPU: their minutes are not timings (#28's timings come from `bench`, alone on the GPU).
#   wait:  until both runs have ended or SECONDS passed.
#   bench: the project's trainer on random Llama-3.2-1B and Llama-3.1-8B shapes, QLoRA and 16-bit LoRA at the seed's
#          batch 1 x 16, each alone on the GPU (#28 item 1).
#   pack:  records (no checkpoints) and the g7 adapter weights into $OUT.
set -u
unset KWANZAA_SOURCES
W=~/kw/work7; K="python3 -m kwanzaa"
case "${1:-}" in
start)
  rm -rf ~/kw/repo && mkdir -p ~/kw/repo && tar cf - --exclude=./.git . | (cd ~/kw/repo && tar xf -)
  cd ~/kw/repo && export PYTHONPATH=$HOME/kw/site:$HOME/kw/repo && mkdir -p $W
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $W/gpu.txt
  python3 -c "from kwanzaa.loader import embedded_model_path as e; print(e('smollm2'))"
  bg() { local n=$1; shift; setsid nohup bash -c "$* > $W/$n.out 2>&1; echo \$? > $W/$n.rc" > /dev/null 2>&1 < /dev/null & }
  export OMP_NUM_THREADS=4 MKL_NUM_THREADS=4
  bg g7 "$K run all --preset small-gpu -p model.device=cuda --out $W/g7"
  bg g7q "$K run all --preset small-gpu -p adapter.method=qlora -p model.device=cuda \
          -p 'arms=[adapter+constrained+calibrated, adapter+extractive, adapter+extractive+calibrated]' --out $W/g7q"
  sleep 60; tail -n 3 $W/*.out;;
wait)
  end=$(( $(date +%s) + ${2:-500} ))
  until { [ -f $W/g7.rc ] && [ -f $W/g7q.rc ]; } || [ $(date +%s) -ge $end ]; do sleep 10; done
  date; grep -H . $W/*.rc 2>/dev/null; tail -n 4 $W/g7.out $W/g7q.out;;
bench)
  cd ~/kw/repo && export PYTHONPATH=$HOME/kw/site:$HOME/kw/repo
  for s in llama-3.2-1b llama-3.1-8b; do
    $K bench trainer --shape $s --paths qlora,lora --steps ${STEPS:-5} --warmup 2 --json $W/bench-$s.json \
      > $W/bench-$s.out 2>&1; echo "$s rc=$?"; tail -n 3 $W/bench-$s.out
  done;;
pack)
  cd $W && tar czf /tmp/records.tgz --exclude='checkpoints' --exclude='tokenizer.json' --exclude='*.safetensors' \
      --exclude='.best-adapter' g7 g7q bench-* *.out *.rc gpu.txt 2>/dev/null
  split -b 15m -d -a 1 /tmp/records.tgz "$OUT/records.tgz.part"
  tar cf /tmp/w.tar g7/adapter/adapter_model.safetensors g7q/adapter/adapter_model.safetensors 2>/dev/null
  split -b 15m -d -a 1 /tmp/w.tar "$OUT/weights.tar.part"; ls -la "$OUT";;
*) echo "usage: session7.sh start | wait SECONDS | bench | pack"; exit 2;;
esac
