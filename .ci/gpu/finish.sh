#!/usr/bin/env bash
# GPU session 4, steps 2 and 3: wait for the sweeps, evaluate the chosen adapters on the golden set (golden.py, once),
# then pack what is done into $OUT.  finish.sh SECONDS [plan]: end within SECONDS from now; with `plan`, also wait
# for the seed's plan (started by start.sh).
set -u
unset KWANZAA_SOURCES
cd ~/kw/repo && export PYTHONPATH=$HOME/kw/site:$HOME/kw/repo   # the copy start.sh made
W=~/kw/work; T_END=$(( $(date +%s) + ${1:-480} )); WANT_PLAN=${2:-}
until { [ -f $W/sw-smollm2.rc ] && [ -f $W/sw-gemma3.rc ]; } || [ $(date +%s) -ge $(( T_END - 60 )) ]; do sleep 5; done
date; grep -H . $W/*.rc; tail -n 3 $W/sw-*.out
[ -f $W/golden.started ] || { touch $W/golden.started; python3 .ci/gpu/golden.py "$W"; }
busy() { pgrep -f "golden_file=golden" > /dev/null || { [ -n "$WANT_PLAN" ] && [ ! -f $W/plan.rc ]; }; }
while busy && [ $(date +%s) -lt $(( T_END - 25 )) ]; do sleep 5; done
date; ls $W; grep -H . $W/*.rc; tail -n 2 $W/golden-*.out $W/plan.out
bash .ci/gpu/pack.sh "$W" "$OUT"
