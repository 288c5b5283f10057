"""Page faults of kvbench overhead's manager-alone replay, by where they fall.

Usage:
  perf record -q -c 1 -e page-faults -g -o pf.data kvbench overhead -compat vllm -json [-window 1024]
  perf script -i pf.data > pf.txt
  python3 bench/vllmside/pagefaults.py pf.txt

Counts the faults whose stack passes through bench.replayW1 (the replay whose
manager calls are timed): in paged.New (construction, untimed), in the
harness's own untimed work (making the prompts), or in the manager calls the
replay times, the last also by the first paged frame of the stack.
(docs/performance.md, "Manager time, session 12: first replay".)
"""
import collections
import sys

c, sites = collections.Counter(), collections.Counter()
for b in open(sys.argv[1]).read().split('\n\n'):
    lines = b.strip().split('\n')
    if not lines or 'page-faults' not in lines[0]:
        continue
    frames = [l.split()[1] for l in lines[1:] if len(l.split()) > 1]
    if not any('bench.replayW1' in f for f in frames):
        continue
    if any('paged.New' in f for f in frames):
        c['construction (paged.New)'] += 1
        continue
    site = next((f for f in frames if 'pagedkv/paged.' in f), None)
    if site is None:
        c['harness, untimed (prompts, ids)'] += 1
        continue
    c['timed manager calls'] += 1
    sites[site.split('+')[0]] += 1
for k, v in c.items():
    print(f'{v:6d} {k}')
for k, v in sites.most_common(6):
    print(f'{v:6d}   {k}')
