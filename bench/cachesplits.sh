#!/usr/bin/env bash
# cachesplits.sh KVBENCH [POLICY]: the replays docs/cache.md ("Ninth
# round") judges a change to an eviction policy on, for a kvbench build
# (go build -trimpath -o KVBENCH ./bench/cmd/kvbench) and one policy
# (default chain), each against LRU in the same run:
#   - the conversation half's design parts: q1 (-limit 3007), q2 cold
#     (-skip 3007), its two halves by conversation at 1.5M tokens, and the
#     whole half, at 3M tokens (5,859 blocks);
#   - sixteen more replays of it: cold starts (-skip N), its halves by
#     conversation at 3M tokens, its thirds and quarters by conversation
#     at a third and a quarter of 3M tokens;
#   - the synthetic trace at its four default capacities.
# Prints, per replay, the policy's hit rate and its ratio to LRU's, then
# the mean ratio over the sixteen. Environment variables pass through to
# kvbench (an experiment's switches). About 20-40 s on two loaded cores.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 KVBENCH [POLICY]" >&2
  exit 2
fi
kv=$1; pol=${2:-chain}
cd "$(dirname "$0")/.."
trace=bench/traces/mooncake_conversation_first_half.jsonl
row() { # NAME, then kvbench cache flags
  local name=$1; shift
  "$kv" cache -policies "lru,$pol" -json "$@" | python3 -c '
import json, sys
name, pol = sys.argv[1], sys.argv[2]
d = {}
for l in sys.stdin:
    o = json.loads(l)
    d.setdefault(o["capacity_tokens"], {})[o["policy"]] = o["hit_rate"]
print(name, " ".join("%.4f(%.3fx)" % (v[pol], v[pol] / v["lru"]) for _, v in sorted(d.items())))' "$name" "$pol"
}
conv() { row "$1" -trace "$trace" "${@:2}"; }
conv q1 -capacity-tokens 3000000 -limit 3007
conv q2-cold -capacity-tokens 3000000 -skip 3007
conv conv0/2 -capacity-tokens 1500000 -conversations 0/2
conv conv1/2 -capacity-tokens 1500000 -conversations 1/2
conv half -capacity-tokens 3000000
m=$(mktemp)
trap 'rm -f "$m"' EXIT
for s in 500 1000 1500 2000 2500 3500 4000; do conv "skip$s" -capacity-tokens 3000000 -skip "$s"; done >>"$m"
for k in 0 1; do conv "conv$k/2@3M" -capacity-tokens 3000000 -conversations "$k/2"; done >>"$m"
for k in 0 1 2 3; do conv "conv$k/4" -capacity-tokens 750000 -conversations "$k/4"; done >>"$m"
for k in 0 1 2; do conv "conv$k/3" -capacity-tokens 1000000 -conversations "$k/3"; done >>"$m"
cat "$m"
python3 -c '
import re, sys
r = [float(re.search(r"\(([\d.]+)x\)", l).group(1)) for l in open(sys.argv[1]) if l.strip()]
print("mean ratio over the %d replays: %.4fx" % (len(r), sum(r) / len(r)))' "$m"
row synthetic
