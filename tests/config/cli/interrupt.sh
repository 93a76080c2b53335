#!/bin/sh
# Ctrl-C during a run: SIGINT after a moment must stop the running solve,
# write the finished analyses' results and exit with 130.
# usage: interrupt.sh COTANGENT CONFIG OUTDIR
exe=$1 config=$2 out=$3
rm -rf "$out"
"$exe" run "$config" -o "$out" -q --set solver.rtol=1e-11 --set solver.atol=1e-13 &
pid=$!
sleep 0.3
kill -INT "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 130 ] || { echo "expected exit status 130, got $rc"; exit 1; }
grep -q '"status":[[:space:]]*"interrupted"' "$out/summary.json" ||
  { echo "summary.json does not say interrupted"; tail -5 "$out/summary.json"; exit 1; }
echo "interrupted cleanly (exit 130, summary.json written)"
