// Package integration holds end-to-end tests that use pagedkv as an
// inference server does, through the public API only: package sched driving
// paged managers of hybrid layouts with prefix caching, chunked prefill, a
// host tier, swap and recompute preemption, speculative drafts, parallel
// sampling, prefix pins and retention, with KV events feeding a fleet index
// directly, through fleet/kvevents frames and over fleet/zmq on 127.0.0.1.
// A shadow KV store executes every step's directives and writes as kernels
// would and checks every read. The package has no non-test code.
package integration
