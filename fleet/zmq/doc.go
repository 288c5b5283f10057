// Package zmq carries KV events over ZeroMQ the way vLLM does, so a Go
// server built on paged can feed llm-d's or NVIDIA Dynamo's KV-aware
// router, and package fleet can follow a running vLLM engine.
//
// The protocol is vLLM's ZmqEventPublisher (vllm/distributed/kv_events.py,
// checked against vllm-project/vllm commit 0181ea31):
//
//   - a PUB socket sends each batch as three frames: the topic, the batch
//     sequence number as 8 big-endian bytes (from 0), and the msgpack
//     KVEventBatch (package fleet/kvevents writes and reads it);
//   - a ROUTER socket keeps the last Buffer batches; a client that sends
//     (empty, start as 8 big-endian bytes) gets every buffered batch from
//     start on as (empty, seq, payload), then (empty, -1, empty).
//
// Publisher implements both sides of that. Subscriber dials a publisher
// (this package's or vLLM's), detects a gap in sequence numbers, asks the
// replay socket for the missing batches through a DEALER socket and
// delivers batches in order; Follow decodes them into numbered
// paged.Event values for fleet's Index.Apply. A gap replay cannot fill
// stays visible in the events' sequence numbers, which is how the index
// learns that a server's state is incomplete.
//
// The subscriber's sockets redial a publisher that went away. A restarted
// engine numbers its batches from 0 again; the subscriber flags the first
// batch that goes back (Message.Restarted) and Follow leaves a gap in the
// event numbers, so the index forgets the old engine's cache. vLLM's
// protocol carries no epoch, so a restart whose new numbers overtake the
// old ones before the subscriber reconnects looks like a gap instead: the
// index then marks the server partial, which is safe as well.
//
// The transport is github.com/go-zeromq/zmq4, pure Go. Its PUB socket
// (v0.17.0) leaves one idle goroutine behind when closed; nothing else
// outlives Close. Left alone, that library allocates whatever size a
// peer's frame header announces and handshakes new connections in its
// accept loop without a deadline; this package's tcp:// and ipc://
// sockets go through a guard that drops a peer announcing a message over
// MaxMessage (DefaultMaxMessage) before anything is allocated, and one
// that has not greeted within HandshakeTimeout, so a stray or hostile
// client of a Publisher's ports cannot exhaust its memory or keep other
// subscribers out.
//
// # Concurrency
//
// Publisher methods are safe for concurrent use. A Subscriber's Next,
// Stats and Follow belong to one goroutine; Close may be called from any
// and ends a blocked Next with ErrClosed.
package zmq
