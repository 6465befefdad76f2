#!/usr/bin/env bash
# pack.sh WORK OUT: the records of every run (no checkpoints, no tokenizer copies, no weights), then the weights of
# the golden-set adapters (the SmolLM2 headline first), as 15 MiB pieces (a call brings back at most 8 files, 64 MiB).
set -u
W=$1; OUT=$2; B=$(basename "$W"); cd "$(dirname "$W")"
tar czf /tmp/records.tgz --exclude='checkpoints' --exclude='tokenizer.json' --exclude='*.safetensors' "$B"
split -b 15m -d -a 1 /tmp/records.tgz "$OUT/records.tgz.part"
n=$(ls "$OUT" | wc -l); left=$(( 60 - $(du -m /tmp/records.tgz | cut -f1) ))
for d in "$B"/golden-smollm2 "$B"/golden-smollm2-* "$B"/golden-gemma3; do
  [ -f "$d/adapter/adapter_model.safetensors" ] || continue
  tar cf /tmp/w.tar "$d"/adapter/*.safetensors $( [ "$d" = "$B"/golden-smollm2 ] && echo "$d/adapter/tokenizer.json" )
  mb=$(( $(stat -c %s /tmp/w.tar) / 1048576 + 1 ))
  k=$(( mb / 15 + 1 ))
  if [ $mb -le $left ] && [ $(( n + k )) -le 8 ]; then
    split -b 15m -d -a 1 /tmp/w.tar "$OUT/weights$n.tar.part"; left=$(( left - mb )); n=$(( n + k ))
    echo "$d: $mb MiB"
  else echo "$d: $mb MiB, not brought back (room left $left MiB)"; fi
done
ls -la "$OUT"
