#!/usr/bin/env bash
# GPU session 5: bring back what the speed run wrote (records, profiles, logs), as one archive in $OUT.
set -u
W=${W:-$HOME/kw/work5}; OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cat "$W/progress"; tail -n 4 "$W"/*.out | cut -c1-400
tar czf "$OUT/speed5.tgz" -C "$(dirname "$W")" --exclude='*.safetensors' --exclude='checkpoint-*' --exclude='tokenizer.json' "$(basename "$W")"
ls -la "$OUT"
