#!/usr/bin/env bash
# paired.sh OLD NEW N [kvbench overhead flags]: N pairs of fresh-process
# runs of two kvbench builds (go build -trimpath -o OLD ./bench/cmd/kvbench
# at each commit), alternating, each `overhead -compat vllm -repeat 5 -json`
# plus the flags (for example -window 1024). Prints each pair's
# manager_ns_per_token and manager_vs_sha_floor, then the medians and the
# median of the per-pair ratios NEW/OLD (docs/performance.md).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 OLD NEW N [kvbench overhead flags]" >&2
  exit 2
fi
old=$1; new=$2; n=$3; shift 3
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["manager_ns_per_token"], d["manager_vs_sha_floor"])'; }
for _ in $(seq 1 "$n"); do
  o=$("$old" overhead -compat vllm -repeat 5 -json "$@" 2>/dev/null | field)
  w=$("$new" overhead -compat vllm -repeat 5 -json "$@" 2>/dev/null | field)
  echo "$o $w"
done | python3 -c '
import sys, statistics
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
for r in rows:
    print("old %.2f (%.3fx)  new %.2f (%.3fx)  ratio %.3f" % (r[0], r[1], r[2], r[3], r[2] / r[0]))
print("median old %.2f new %.2f; ratio median %.3f; lower in %d of %d; floor ratio old %.3f new %.3f" % (
    statistics.median(r[0] for r in rows), statistics.median(r[2] for r in rows),
    statistics.median(r[2] / r[0] for r in rows), sum(r[2] < r[0] for r in rows), len(rows),
    statistics.median(r[1] for r in rows), statistics.median(r[3] for r in rows)))'
