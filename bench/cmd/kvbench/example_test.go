package main

import "os"

// Example_plan plans the KV cache of Llama-3-70B on four 80 GB devices in
// fp16: the bytes one token takes per device and what the pool holds.
func Example_plan() {
	code := run([]string{"plan", "-model", "Llama-3-70B", "-gpus", "4", "-gpu-mem", "80GB", "-kv", "fp16"}, os.Stdout, os.Stderr)
	if code != 0 {
		panic(code)
	}
	// Output:
	// model    Llama-3-70B: 80 layers x 8 KV heads x 128 (64 query heads)
	// params   70.55B
	// devices  4 x 80.0 GB, TP 4, CP 1, 1 replica(s)
	// weights  fp8_e4m3: 70.6 GB, 17.6 GB per device; reserve 4.00 GB per device
	// KV       58.4 GB per device; context 8,192 tokens, block size 16
	//
	//   kv type    bytes/token  per device  seq @ 8K/device  blocks/device  KV tokens  seqs @ 8K  longest 1 seq
	//   fp16           327,680      81,920           671 MB         44,526    712,400         86        712,400
	//
	// Every KV type holds at least one 8,192-token sequence.
}
