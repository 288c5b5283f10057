package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pagedkv/pagedkv/bench/traces"
	"github.com/pagedkv/pagedkv/paged"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := env{stdout: os.Stdout, stderr: os.Stderr, tty: isTerminal(os.Stdout), sleep: sleepCtx}
	if err := run(ctx, os.Args[1:], e); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, errorLine(err))
		}
		os.Exit(2)
	}
}

// errorLine is the line main prints for err: prefixed "server: " once,
// whether or not the error (the server package's own) already is.
func errorLine(err error) string {
	if msg := err.Error(); strings.HasPrefix(msg, "server: ") {
		return msg
	}
	return "server: " + err.Error()
}

// env is what run needs from the outside world, so tests can replace it.
type env struct {
	stdout, stderr io.Writer
	tty            bool
	sleep          func(context.Context, time.Duration) error
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type options struct {
	requests, blocks, blockSize, maxNumSeqs, maxModelLen int
	maxQueue, drafts                                     int
	nParallel, speed, watermark                          float64
	stepTime                                             time.Duration
	httpAddr, layout                                     string
	groups                                               []paged.Group
	steps                                                uint64
	events, reserve                                      bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.requests, "requests", 250, "requests to replay from the embedded Azure conversation trace (0: none)")
	fs.IntVar(&o.blocks, "blocks", 2048, "KV blocks in the pool, the null block included")
	fs.IntVar(&o.blockSize, "block-size", 16, "tokens per block")
	fs.StringVar(&o.layout, "layout", "", "KV cache groups of a hybrid model, group 0 first: full, window:<tokens>, chunked:<tokens>, state:<pages>, shared:<group> (e.g. \"full window:128\"; empty: one full-attention group)")
	fs.IntVar(&o.maxNumSeqs, "max-num-seqs", 128, "most sequences running at once")
	fs.IntVar(&o.maxQueue, "max-queue", 512, "most requests waiting for admission; more are refused (HTTP 429)")
	fs.IntVar(&o.maxModelLen, "max-model-len", 8192, "most tokens of one sequence (prompt + output); longer trace requests are clipped")
	fs.Float64Var(&o.nParallel, "n-parallel", 0.1, "share of requests sampled n=4 ways (fork + copy-on-write)")
	fs.Float64Var(&o.speed, "speed", 60, "compress the trace's arrival times by this factor")
	fs.DurationVar(&o.stepTime, "step-time", time.Millisecond, "fake model latency per step")
	fs.IntVar(&o.drafts, "drafts", 0, "draft tokens a fake drafter proposes per decoding sample and step (speculative decoding; 0: none)")
	fs.Float64Var(&o.watermark, "watermark", 0.01, "share of blocks admission leaves free for running sequences")
	fs.StringVar(&o.httpAddr, "http", "", "serve /metrics, /stats and /requests on this address (\":8080\" means 127.0.0.1:8080) until interrupted")
	fs.Uint64Var(&o.steps, "steps", 0, "stop after this many steps (0: no limit)")
	fs.BoolVar(&o.events, "events", false, "print every KV event")
	fs.BoolVar(&o.reserve, "reserve", true, "make the sequences' records and buffers at start-up (paged.Config.Reserve), for -max-num-seqs + -max-queue sequences of -max-model-len tokens")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	// Validate here so a bad flag is a usage error, not a failure deep in
	// the manager.
	case o.requests < 0 || o.requests > len(traces.AzureConv()):
		return o, fmt.Errorf("-requests %d must be in [0, %d]", o.requests, len(traces.AzureConv()))
	case !(o.nParallel >= 0 && o.nParallel <= 1):
		return o, fmt.Errorf("-n-parallel %v must be in [0, 1]", o.nParallel)
	case !(o.speed > 0):
		return o, fmt.Errorf("-speed %v must be positive", o.speed)
	case o.stepTime < 0:
		return o, fmt.Errorf("-step-time %v is negative", o.stepTime)
	case o.maxModelLen < 2:
		return o, fmt.Errorf("-max-model-len %d must be at least 2", o.maxModelLen)
	case o.drafts < 0:
		return o, fmt.Errorf("-drafts %d is negative", o.drafts)
	case o.maxQueue < 1:
		return o, fmt.Errorf("-max-queue %d must be at least 1", o.maxQueue)
	// Zero would mean the library's defaults (16 tokens, 256 sequences),
	// not what the flag says.
	case o.blockSize < 1:
		return o, fmt.Errorf("-block-size %d must be at least 1", o.blockSize)
	case o.maxNumSeqs < 1:
		return o, fmt.Errorf("-max-num-seqs %d must be at least 1", o.maxNumSeqs)
	}
	var err error
	if o.groups, err = ParseLayout(o.layout, o.blockSize); err != nil {
		return o, err
	}
	return o, nil
}

// serverConfig is the server the flags describe.
func serverConfig(o options) ServerConfig {
	return ServerConfig{
		Scheduler: SchedulerConfig{
			Manager: paged.Config{
				BlockSize:   o.blockSize,
				NumBlocks:   o.blocks,
				Watermark:   o.watermark,
				MaxModelLen: o.maxModelLen,
				// The loop drains events after every step, so the buffer
				// only needs one step's worth; overflow is counted.
				Events:  4096,
				Groups:  o.groups,
				Reserve: reserveFor(o),
			},
			MaxNumSeqs: o.maxNumSeqs,
			MaxQueued:  o.maxQueue,
			Drafts:     o.drafts,
		},
		StepTime: o.stepTime,
		MaxSteps: o.steps,
	}
}

// reserveFor sizes the manager's reserve (paged.Config.Reserve) from the
// flags, as bench.RunW1 does from its requests: records for every
// sequence the server holds at once, running (-max-num-seqs) and queued
// (-max-queue), and token, hash and table buffers for each at
// -max-model-len, its longest hint, within the reserve's bounds. New then
// makes and faults them in, so that the first requests take no page
// faults inside Submit and admission: 640 sequences of 8,192 tokens by
// default, about 33 MB. Without -reserve, none.
func reserveFor(o options) paged.Reserve {
	if !o.reserve {
		return paged.Reserve{}
	}
	seqs := min(o.maxNumSeqs+o.maxQueue, paged.MaxReserveSequences)
	return paged.Reserve{Sequences: seqs, Tokens: int(min(int64(seqs)*int64(o.maxModelLen), paged.MaxReserveTokens))}
}

// run is main without the process: flags, the server, the trace replay,
// the progress display, the optional HTTP endpoint and the summary.
func run(ctx context.Context, args []string, e env) error {
	o, err := parseFlags(args, e.stderr)
	if err != nil {
		return err
	}
	out := &lockedWriter{w: e.stdout}
	cfg := serverConfig(o)
	if o.events {
		cfg.Scheduler.OnEvent = eventPrinter(out)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		if o.layout != "" && errors.Is(err, paged.ErrInvalid) {
			// The manager refused the groups (a state larger than the
			// pool, a window past MaxSeqLen): name the flag, before the
			// manager's own error (not the scheduler's "server: " again).
			if u := errors.Unwrap(err); u != nil {
				err = u
			}
			return fmt.Errorf("-layout %q: %w", o.layout, err)
		}
		return err
	}
	// The loop gets its own context: on an interrupt the HTTP server and
	// the progress display stop first, then the loop, so in-flight calls
	// still get answers.
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	go srv.Run(runCtx)
	start := time.Now()

	var hs *http.Server
	if o.httpAddr != "" {
		ln, err := net.Listen("tcp", listenAddr(o.httpAddr))
		if err != nil {
			return err
		}
		// Listen before serving so a taken port is an error here, not in
		// a goroutine.
		hs = NewHTTPServer(srv.Handler())
		go func() { _ = hs.Serve(ln) }()
		fmt.Fprintf(out, "serving http://%s/metrics, /stats, POST /requests; Ctrl-C to stop\n", ln.Addr())
	}

	progCtx, stopProgress := context.WithCancel(ctx)
	progDone := make(chan struct{})
	var sent atomic.Int64 // replayed requests submitted or refused so far
	go func() {
		defer close(progDone)
		showProgress(progCtx, srv, out, e.tty, func() int { return o.requests - int(sent.Load()) })
	}()

	err = replay(ctx, srv, o, e.sleep, &sent)
	if err == nil {
		if hs != nil {
			// Serve until interrupted (or the step limit is reached).
			select {
			case <-ctx.Done():
			case <-srv.Done():
			}
		} else {
			err = srv.Idle(ctx)
		}
	}
	stopProgress()
	<-progDone
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = hs.Shutdown(sctx)
		cancel()
	}
	stopRun()
	<-srv.Done()
	if e.tty {
		fmt.Fprintln(out) // end the live line
	}
	// Interrupts and the step limit end a run early; that is no failure.
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) {
		err = nil
	}
	// The loop has stopped; Stats returns what it left behind.
	sn, _ := srv.Stats(context.Background())
	writeSummary(out, sn, time.Since(start))
	return err
}

// replay submits the first o.requests requests of the Azure conversation
// trace at their arrival times divided by o.speed, counting them in sent.
// Prompts start with one of eight 256-token system prompts, so prefixes
// repeat as they do in production; every n-parallel-th request asks for
// n=4 samples. When the admission queue is full the replay behaves as a
// polite client: it waits and submits again (each refusal is counted).
func replay(ctx context.Context, srv *Server, o options, sleep func(context.Context, time.Duration) error, sent *atomic.Int64) error {
	trace := traces.AzureConv()[:o.requests]
	prompt := make([]int32, 0, o.maxModelLen)
	var prev time.Duration
	for i, t := range trace {
		// Sleeping the gap between arrivals drifts by the timer's slack;
		// an example can live with that.
		// A tiny -speed can stretch a gap past what a Duration holds:
		// wait as long as one can rather than let the conversion wrap.
		// (float64(MaxInt64) is 2^63, itself one past the range.)
		gap := time.Duration(math.MaxInt64)
		if g := float64(t.Arrival-prev) / o.speed; g < math.MaxInt64 {
			gap = time.Duration(g)
		}
		if err := sleep(ctx, gap); err != nil {
			return err
		}
		prev = t.Arrival
		// Clip to the model length as W1 does; zero lengths become one.
		out := min(max(t.OutputTokens, 1), o.maxModelLen-1)
		in := min(max(t.InputTokens, 1), o.maxModelLen-out)
		prompt = prompt[:0]
		for j := range in {
			if j < 256 {
				prompt = append(prompt, int32((i%8)*1000+j+1))
			} else {
				prompt = append(prompt, int32((i*7919+j*104729)%32000+1))
			}
		}
		n := 1
		// Spread the parallel requests evenly: request i is one when the
		// running share crosses an integer.
		if int(float64(i+1)*o.nParallel) > int(float64(i)*o.nParallel) {
			n = 4
		}
		// Submit copies the prompt (the manager keeps its own tokens), so
		// the buffer is reused.
		_, err := srv.Submit(ctx, Spec{Prompt: prompt, MaxTokens: out, N: n})
		for errors.Is(err, ErrQueueFull) {
			if err = sleep(ctx, queueFullBackoff); err == nil {
				_, err = srv.Submit(ctx, Spec{Prompt: prompt, MaxTokens: out, N: n})
			}
		}
		sent.Add(1)
		switch {
		case errors.Is(err, ErrInvalid), errors.Is(err, ErrTooLong):
			// Counted as rejected; the replay goes on.
		case err != nil:
			return err
		}
	}
	return nil
}

// queueFullBackoff is how long the replay waits before submitting again
// to a full admission queue.
const queueFullBackoff = 10 * time.Millisecond

// showProgress redraws the live line on a terminal ten times a second, or
// prints a plain line every second otherwise, until ctx is done.
func showProgress(ctx context.Context, srv *Server, w io.Writer, tty bool, pending func() int) {
	// A terminal redraws one line cheaply; a log file wants few lines.
	every := time.Second
	if tty {
		every = 100 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last string
	for {
		select {
		case <-ctx.Done():
			return
		case <-srv.Done():
			return
		case <-tick.C:
		}
		sn, err := srv.Stats(ctx)
		if err != nil {
			return
		}
		line := progressLine(sn, pending())
		switch {
		case line == last:
			// An idle server prints nothing new.
		case tty:
			fmt.Fprintf(w, "\r%s\x1b[K", line)
		default:
			fmt.Fprintln(w, line)
		}
		last = line
	}
}
