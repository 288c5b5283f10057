#!/usr/bin/env bash
# Side by side: replays W1 through vLLM v1's own KV cache manager (Python,
# w1_vllm.py) and through pagedkv (`kvbench overhead -compat vllm`) in
# interleaved rounds on this machine, checks that their counters agree, and
# prints the manager time per processed token of each and their ratio
# (median over the rounds).
# Usage: bench/vllmside/compare.sh [ROUNDS] [--requests=N] [--blocks=B] [--sliding-window=W] [--repeat=R]
#   --repeat=R: each side replays R times in one process per round and
#   reports its replay of median manager time (warm: later replays reuse
#   memory the process already touched); the default, 1, is one replay in
#   a fresh process on each side.
#   VLLM_DIR=... points at the vLLM sources (default: ../shared/reference/
#   vllm-v1-f20c3b0 beside the checkout).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${1:-3}
shift || true
vllm_dir=${VLLM_DIR:-$root/../shared/reference/vllm-v1-f20c3b0}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/kvbench" ./bench/cmd/kvbench)
go_flags=()
for a in "$@"; do
  case "$a" in
    --requests=*) go_flags+=("-requests" "${a#*=}") ;;
    --sliding-window=*) go_flags+=("-window" "${a#*=}") ;;
    --blocks=*) go_flags+=("-blocks" "${a#*=}") ;;
    --repeat=*) go_flags+=("-repeat" "${a#*=}") ;;
  esac
done
for r in $(seq 1 "$rounds"); do
  python3 "$here/w1_vllm.py" --vllm "$vllm_dir" "$@" > "$tmp/vllm.$r.json"
  "$tmp/kvbench" overhead -compat vllm -json "${go_flags[@]}" > "$tmp/go.$r.json"
  echo "round $r done" >&2
done
python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
keys = ["steps", "preemptions", "admissions", "tokens_processed", "prefix_hit_tokens",
        "prefix_query_tokens", "admitted_hit_tokens", "peak_blocks_in_use", "peak_running",
        "readmitted_same_step"]
v = [json.load(open(f"{tmp}/vllm.{r}.json")) for r in range(1, rounds + 1)]
g = [json.load(open(f"{tmp}/go.{r}.json")) for r in range(1, rounds + 1)]
for k in keys:
    if v[0][k] != g[0][k]:
        sys.exit(f"counters differ: {k} vLLM {v[0][k]} pagedkv {g[0][k]}")
vt = [x["manager_ns_per_token"] for x in v]
gt = [x["manager_ns_per_token"] for x in g]
ratios = [a / b for a, b in zip(vt, gt)]
print(f"counters agree ({', '.join(keys)})")
print(f"vLLM v1 manager: {statistics.median(vt):.0f} ns per token (rounds: {', '.join(f'{x:.0f}' for x in vt)})")
print(f"pagedkv manager: {statistics.median(gt):.1f} ns per token (rounds: {', '.join(f'{x:.1f}' for x in gt)})")
print(f"ratio (median of per-round ratios): {statistics.median(ratios):.0f}x")
PY
