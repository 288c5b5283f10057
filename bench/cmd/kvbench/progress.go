package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// progress keeps one line of stderr up to date during a long run: what the
// command is doing, how far it is, the time spent and an estimate of the
// time left. A nil *progress ignores every call, so commands call it
// unconditionally; startProgress returns nil when there is no terminal to
// draw on or the output is JSON.
type progress struct {
	w           io.Writer
	what, unit  string
	phase       string // what part of the run, if it has parts
	total       int64
	done        atomic.Int64
	start       time.Time
	mu          sync.Mutex // guards phase and writes to w
	quit, ended chan struct{}
	stop        sync.Once
}

// progressInterval is how often the line is redrawn.
const progressInterval = 200 * time.Millisecond

// terminal reports whether progress may be drawn on w; tests replace it.
var terminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	// term.IsTerminal asks the terminal driver, so /dev/null, pipes and
	// files are not terminals (a character-device test would take
	// /dev/null for one).
	return ok && term.IsTerminal(int(f.Fd()))
}

// startProgress starts the progress line of a run of total units (named by
// unit, plural), or returns nil if asJSON or stderr is not a terminal.
func startProgress(stderr io.Writer, asJSON bool, what, unit string, total int64) *progress {
	if asJSON || total <= 0 || !terminal(stderr) {
		return nil
	}
	p := &progress{w: stderr, what: what, unit: unit, total: total, start: time.Now(),
		quit: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(p.ended)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

// Add counts n more units done; safe for concurrent use.
func (p *progress) Add(n int64) {
	if p != nil {
		p.done.Add(n)
	}
}

// SetPhase names the part of the run under way.
func (p *progress) SetPhase(phase string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.phase = phase
	p.mu.Unlock()
}

// Stop ends the line and leaves the total time in its place; later calls
// do nothing, so a command may both defer it and call it before printing
// its results.
func (p *progress) Stop() {
	if p == nil {
		return
	}
	p.stop.Do(func() {
		close(p.quit)
		<-p.ended
		p.mu.Lock()
		defer p.mu.Unlock()
		fmt.Fprintf(p.w, "\r\x1b[K%s: done in %s\n", p.what, time.Since(p.start).Round(100*time.Millisecond))
	})
}

func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\x1b[K"+p.line(p.done.Load(), time.Since(p.start)))
}

// line formats the progress after elapsed with done units: the estimate
// assumes the rest goes at the average rate so far.
func (p *progress) line(done int64, elapsed time.Duration) string {
	done = min(done, p.total)
	f := float64(done) / float64(p.total)
	eta := "ETA -"
	if done > 0 {
		left := time.Duration(float64(elapsed) * (1 - f) / f)
		eta = "ETA " + left.Round(time.Second).String()
	}
	what := p.what
	if p.phase != "" {
		what += " (" + p.phase + ")"
	}
	return fmt.Sprintf("%s: %d/%d %s (%.0f%%), %s elapsed, %s", what, done, p.total, p.unit, 100*f, elapsed.Round(time.Second), eta)
}
