#!/usr/bin/env python3
"""Replays workload W1 (or W1-H) through vLLM v1's own KVCacheManager.

The manager is vLLM's unmodified source, loaded from a folder of its files
(by default ../shared/reference/vllm-v1-f20c3b0 beside the checkout); this
script supplies only what those files import from the rest of vLLM (a
logger, a few helpers, the Request the manager reads) and the driver of
WORKLOADS.md section 4. It prints one JSON line with the keys of
`kvbench overhead -json`, so the two can be compared side by side:
counters must match exactly, timings give the ratio.

Timing follows WORKLOADS.md section 6: time.perf_counter_ns around each
manager call (get_computed_blocks, allocate_slots, free, Request
construction with its prompt hashing, append_output_token_ids).

Usage: w1_vllm.py [--requests N] [--blocks B] [--sliding-window W]
                  [--vllm DIR] [--trace CSV] [--digest] [--lines FILE]
Needs only the Python standard library (3.9 or newer).
"""

import argparse
import collections
import csv
import dataclasses
import enum
import hashlib
import importlib.util
import json
import logging
import os
import pickle
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))


def _module(name, **attrs):
    mod = types.ModuleType(name)
    mod.__path__ = []  # importable as a package
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, mod)
    return mod


def _sha256(obj):
    # vllm.utils.sha256 at f20c3b0: SHA-256 of the pickled object.
    return hashlib.sha256(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)).digest()


class RequestStatus(enum.IntEnum):
    WAITING = enum.auto()
    RUNNING = enum.auto()
    PREEMPTED = enum.auto()
    FINISHED_STOPPED = enum.auto()


class Request:
    """The part of vllm.v1.request.Request that the KV cache manager reads:
    tokens, block hashes kept up to date as tokens are appended, status."""

    def __init__(self, request_id, prompt, block_hasher):
        self.request_id = request_id
        self.prompt_token_ids = prompt
        self._output_token_ids = []
        self._all_token_ids = list(prompt)
        self.num_computed_tokens = 0
        self.status = RequestStatus.WAITING
        self.sampling_params = None
        self.lora_request = None
        self.cache_salt = None
        self.mm_features = []
        self.block_hashes = []
        self._block_hasher = block_hasher
        self.block_hashes = block_hasher(self)

    @property
    def num_tokens(self):
        return len(self._all_token_ids)

    @property
    def num_output_tokens(self):
        return len(self._output_token_ids)

    @property
    def all_token_ids(self):
        return self._all_token_ids

    def append_output_token_ids(self, token_id):
        self._output_token_ids.append(token_id)
        self._all_token_ids.append(token_id)
        self.block_hashes.extend(self._block_hasher(self))


def load_vllm(folder):
    """Registers stand-ins for what the manager files import, then loads
    the files themselves as the vllm.v1 modules they are."""
    class _Dtype:
        def __init__(self, name, size):
            self.name, self.itemsize = name, size

    _module("torch", dtype=_Dtype, float16=_Dtype("float16", 2), bfloat16=_Dtype("bfloat16", 2))
    _module("vllm")
    _module("vllm.envs", VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=False)
    _module("vllm.config", VllmConfig=object)
    _module("vllm.logger", init_logger=logging.getLogger)
    _module("vllm.utils", cdiv=lambda a, b: -(a // -b), GiB_bytes=1 << 30,
            sha256=_sha256, sha256_cbor=lambda obj: _sha256(obj),
            get_dtype_size=lambda dtype: dtype.itemsize)
    _module("vllm.distributed")

    class _Event:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    _module("vllm.distributed.kv_events", MEDIUM_GPU="GPU", KVCacheEvent=_Event,
            BlockStored=_Event, BlockRemoved=_Event, AllBlocksCleared=_Event)
    _module("vllm.v1")
    _module("vllm.v1.metrics")

    @dataclasses.dataclass
    class PrefixCacheStats:
        reset: bool = False
        requests: int = 0
        queries: int = 0
        hits: int = 0

    _module("vllm.v1.metrics.stats", PrefixCacheStats=PrefixCacheStats)
    _module("vllm.v1.request", Request=Request, RequestStatus=RequestStatus)
    _module("vllm.v1.core")
    loaded = {}
    for name, file in [
        ("vllm.v1.kv_cache_interface", "kv_cache_interface.py"),
        ("vllm.v1.core.kv_cache_utils", "kv_cache_utils.py"),
        ("vllm.v1.core.block_pool", "block_pool.py"),
        ("vllm.v1.core.single_type_kv_cache_manager", "single_type_kv_cache_manager.py"),
        ("vllm.v1.core.kv_cache_coordinator", "kv_cache_coordinator.py"),
        ("vllm.v1.core.kv_cache_manager", "kv_cache_manager.py"),
    ]:
        spec = importlib.util.spec_from_file_location(name, os.path.join(folder, file))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        loaded[name.rsplit(".", 1)[1]] = mod
    return loaded


def read_trace(path, n):
    rows = []
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            rows.append((int(rec["ContextTokens"]), int(rec["GeneratedTokens"])))
            if len(rows) == n:
                break
    if len(rows) < n:
        sys.exit(f"w1_vllm: the trace has {len(rows)} requests, {n} wanted")
    return rows


def ids_text(groups):
    return ";".join(",".join(str(b) for b in g) for g in groups)


def run(args, vllm):
    iface, utils, mgr_mod = vllm["kv_cache_interface"], vllm["kv_cache_utils"], vllm["kv_cache_manager"]
    os.environ["PYTHONHASHSEED"] = "0"
    utils.init_none_hash(_sha256)
    import torch  # the stand-in registered by load_vllm

    bs, L = args.block_size, args.max_model_len
    groups = [iface.KVCacheGroupSpec(["full"], iface.FullAttentionSpec(
        block_size=bs, num_kv_heads=1, head_size=1, dtype=torch.float16, use_mla=False))]
    if args.sliding_window:
        groups.append(iface.KVCacheGroupSpec(["window"], iface.SlidingWindowSpec(
            block_size=bs, num_kv_heads=1, head_size=1, dtype=torch.float16, use_mla=False,
            sliding_window=args.sliding_window)))
    if args.chunked_local:
        groups.append(iface.KVCacheGroupSpec(["chunked"], iface.ChunkedLocalAttentionSpec(
            block_size=bs, num_kv_heads=1, head_size=1, dtype=torch.float16, use_mla=False,
            attention_chunk_size=args.chunked_local)))
    if args.mamba:
        # vLLM gives a Mamba group one page per request: its block size is
        # the longest a request can be.
        groups.append(iface.KVCacheGroupSpec(["mamba"], iface.MambaSpec(
            block_size=L, shapes=((1,),), dtypes=(torch.float16,))))
    config = iface.KVCacheConfig(num_blocks=args.blocks, kv_cache_tensors=[], kv_cache_groups=groups)
    hasher = utils.get_request_block_hasher(bs, _sha256)
    trace = read_trace(args.trace, args.requests)

    res = collections.Counter()
    ns = collections.Counter()
    digest = hashlib.sha256() if args.digest or args.lines else None
    lines = open(args.lines, "w") if args.lines else None

    def emit(line):
        if digest is not None:
            digest.update(line.encode())
        if lines is not None:
            lines.write(line)

    clock = time.perf_counter_ns
    wall0 = clock()
    # vLLM at f20c3b0 caches no Mamba state and refuses prefix caching with
    # a Mamba group's page size: such a model runs without the prefix
    # cache, which takes the same decisions as a cache that never hits.
    m = mgr_mod.KVCacheManager(config, max_model_len=L, enable_caching=not args.mamba)
    reqs = []
    for i, (ctx, gen) in enumerate(trace):
        gen = min(max(gen, 1), L - 1)
        ctx = min(max(ctx, 1), L - gen)
        prompt = [(i % 8) * 1000 + j + 1 if j < min(ctx, 256) else (i * 7919 + j * 104729) % 32000 + 1
                  for j in range(ctx)]
        t0 = clock()
        r = Request(str(i), prompt, hasher)
        ns["request_init_prompt_hash"] += clock() - t0
        res["calls.request_init"] += 1
        r.i, r.gen, r.preempted_step = i, gen, -1
        reqs.append(r)
    waiting = collections.deque(reqs)
    running = []
    step = 0
    peak_used = 0
    usable = args.blocks - 1
    while waiting or running:
        step += 1
        emit(f"S{step}\n")
        scheduled = []
        idx = 0
        while idx < len(running):
            r = running[idx]
            n = r.num_tokens - r.num_computed_tokens
            self_preempted = False
            while True:
                t0 = clock()
                new = m.allocate_slots(r, n)
                ns["allocate_slots_decode"] += clock() - t0
                res["calls.allocate_slots_decode"] += 1
                if new is not None:
                    break
                v = running.pop()
                t0 = clock()
                m.free(v)
                ns["free"] += clock() - t0
                res["calls.free"] += 1
                v.num_computed_tokens = 0
                v.status = RequestStatus.PREEMPTED
                v.preempted_step = step
                waiting.appendleft(v)
                res["preemptions"] += 1
                emit(f"P{v.i}\n")
                if v is r:
                    self_preempted = True
                    break
            if self_preempted:
                break
            peak_used = max(peak_used, usable - m.block_pool.get_num_free_blocks())
            emit(f"D{r.i}:{ids_text(new.get_block_ids())}\n")
            scheduled.append((r, n, True))
            idx += 1
        while waiting and len(running) < args.max_num_seqs:
            r = waiting[0]
            t0 = clock()
            hit, n_hit = m.get_computed_blocks(r)
            ns["get_computed_blocks"] += clock() - t0
            res["calls.get_computed_blocks"] += 1
            res["prefix_lookups"] += 1
            res["prefix_query_tokens"] += r.num_tokens
            res["prefix_hit_tokens"] += n_hit
            n = r.num_tokens - n_hit
            t0 = clock()
            new = m.allocate_slots(r, n, n_hit, hit)
            ns["allocate_slots_admit"] += clock() - t0
            res["calls.allocate_slots_admit"] += 1
            if new is None:
                break
            waiting.popleft()
            running.append(r)
            r.status = RequestStatus.RUNNING
            r.num_computed_tokens = n_hit
            res["admissions"] += 1
            res["admitted_query_tokens"] += r.num_tokens
            res["admitted_hit_tokens"] += n_hit
            res["prefill_tokens"] += n
            if r.num_output_tokens > 0:
                res["resumed_prefill_tokens"] += n
            if r.preempted_step == step:
                res["readmitted_same_step"] += 1
            peak_used = max(peak_used, usable - m.block_pool.get_num_free_blocks())
            emit(f"A{r.i}:{ids_text(hit.get_block_ids())}|{ids_text(new.get_block_ids())}\n")
            scheduled.append((r, n, False))
        res["peak_running"] = max(res["peak_running"], len(running))
        finished = set()
        for r, n, decode in scheduled:
            r.num_computed_tokens += n
            if decode:
                res["decode_tokens"] += 1
            tok = (r.i * 31 + r.num_output_tokens) % 32000 + 1
            t0 = clock()
            r.append_output_token_ids(tok)
            ns["append_output_token_ids"] += clock() - t0
            res["calls.append_output_token_ids"] += 1
            if r.num_tokens >= L or r.num_output_tokens >= r.gen:
                t0 = clock()
                m.free(r)
                ns["free"] += clock() - t0
                res["calls.free"] += 1
                r.status = RequestStatus.FINISHED_STOPPED
                finished.add(r.i)
                res["finished"] += 1
                emit(f"F{r.i}\n")
        if finished:
            running = [r for r in running if r.i not in finished]
    wall = clock() - wall0
    if lines is not None:
        lines.close()

    tokens = res["prefill_tokens"] + res["decode_tokens"]
    manager = sum(ns.values())
    out = {
        "steps": step, "preemptions": res["preemptions"], "finished": res["finished"],
        "admissions": res["admissions"], "tokens_processed": tokens,
        "prefill_tokens": res["prefill_tokens"], "resumed_prefill_tokens": res["resumed_prefill_tokens"],
        "decode_tokens": res["decode_tokens"], "prefix_query_tokens": res["prefix_query_tokens"],
        "prefix_hit_tokens": res["prefix_hit_tokens"], "prefix_lookups": res["prefix_lookups"],
        "admitted_query_tokens": res["admitted_query_tokens"], "admitted_hit_tokens": res["admitted_hit_tokens"],
        "peak_blocks_in_use": peak_used, "peak_running": res["peak_running"],
        "readmitted_same_step": res["readmitted_same_step"],
    }
    for k in ["get_computed_blocks", "allocate_slots_decode", "allocate_slots_admit", "free",
              "append_output_token_ids", "request_init"]:
        out["calls." + k] = res["calls." + k]
    if digest is not None:
        out["alloc_digest_sha256"] = digest.hexdigest()
    for k in ["get_computed_blocks", "allocate_slots_decode", "allocate_slots_admit", "free",
              "append_output_token_ids", "request_init_prompt_hash"]:
        out["ns." + k] = ns[k]
    out["manager_ns"] = manager
    out["manager_ns_excl_prompt_hash"] = manager - ns["request_init_prompt_hash"]
    out["total_wall_ns"] = wall
    out["manager_us_per_step"] = round(manager / step / 1e3, 3)
    out["manager_ns_per_token"] = round(manager / tokens, 3)
    out["wall_ns_per_token"] = round(wall / tokens, 3)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
    p.add_argument("--vllm", default=os.path.join(root, "shared", "reference", "vllm-v1-f20c3b0"),
                   help="folder of vLLM's v1 KV cache manager files")
    p.add_argument("--trace", default=os.path.join(HERE, "..", "traces", "azure_conv_2023.csv"),
                   help="Azure trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens)")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--blocks", type=int, default=8192)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--max-num-seqs", type=int, default=256)
    p.add_argument("--max-model-len", type=int, default=16384)
    p.add_argument("--sliding-window", type=int, default=0, help="W1-H: add a sliding-window group of W tokens")
    p.add_argument("--chunked-local", type=int, default=0, help="add a chunked local attention group of C tokens instead")
    p.add_argument("--mamba", action="store_true", help="add a Mamba (state) group of one page per request instead")
    p.add_argument("--digest", action="store_true", help="compute the allocation digest")
    p.add_argument("--lines", metavar="FILE", help="write the digest's lines to FILE (implies --digest), to find the first decision that differs")
    p.add_argument("--repeat", type=int, default=1,
                   help="replay R times in this process and print the replay with the median manager time (as kvbench overhead -repeat)")
    args = p.parse_args()
    if not os.path.isdir(args.vllm):
        sys.exit(f"w1_vllm: no vLLM sources at {args.vllm} (pass --vllm DIR)")
    if not 1 <= args.repeat <= 1000:
        sys.exit(f"w1_vllm: --repeat {args.repeat} must be in [1, 1000]")
    vllm = load_vllm(args.vllm)
    runs = sorted((run(args, vllm) for _ in range(args.repeat)), key=lambda r: r["manager_ns"])
    print(json.dumps(runs[len(runs) // 2]))


if __name__ == "__main__":
    main()
