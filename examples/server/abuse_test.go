package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests here treat the server as an attacker and a crowd would:
// slow bodies, floods, many clients at once. They talk to it over
// loopback only.

// slowPost opens a connection to addr and sends the headers of a
// submission whose body never finishes: one byte now, then one every
// `every` until the connection breaks or stop is closed.
func slowPost(t *testing.T, addr string, every time.Duration, stop <-chan struct{}) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "POST /requests HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	require.NoError(t, err)
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	return conn
}

func TestHTTPSlowBodyIsCutOff(t *testing.T) {
	const bodyTimeout = 300 * time.Millisecond
	srv := startServer(t, ServerConfig{
		Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}},
		Manual:    true,
		HTTP:      HTTPConfig{BodyTimeout: bodyTimeout},
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	stop := make(chan struct{})
	defer close(stop)

	start := time.Now()
	// A byte every 100 ms: never idle long enough for an idle timeout,
	// yet the body would take 100 s.
	conn := slowPost(t, hs.Listener.Addr().String(), 100*time.Millisecond, stop)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	elapsed := time.Since(start)
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, string(body))
	assert.Equal(t, "body_timeout", decodeError(t, string(body)).Code)
	assert.GreaterOrEqual(t, elapsed, bodyTimeout)
	assert.Less(t, elapsed, 5*time.Second, "the slow body held the connection")
	// The server closes the connection rather than wait for the rest.
	_, err = conn.Read(make([]byte, 1))
	assert.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)

	sn, err := srv.Stats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, uint64(1), sn.Requests.RejectedBy["body_timeout"])
	assert.Equal(t, uint64(1), sn.Requests.Rejected)
}

func TestHTTPTooManyBodiesInFlightGet429(t *testing.T) {
	srv := startServer(t, ServerConfig{
		Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}},
		Manual:    true,
		HTTP:      HTTPConfig{MaxConcurrentBodies: 2, BodyTimeout: 20 * time.Second, RetryAfter: 1500 * time.Millisecond},
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	stop := make(chan struct{})
	var slow []net.Conn
	for range 2 {
		slow = append(slow, slowPost(t, hs.Listener.Addr().String(), 50*time.Millisecond, stop))
	}
	waitFor(t, func() bool { return len(srv.bodies) == 2 }, "both slow bodies are being read")

	code, body, hdr := callHeader(t, "POST", hs.URL+"/requests", `{"prompt_len": 5, "max_tokens": 1}`, "")
	assert.Equal(t, http.StatusTooManyRequests, code, body)
	assert.Equal(t, "overloaded", decodeError(t, body).Code)
	assert.Equal(t, "2", hdr.Get("Retry-After"), "1.5 s rounds up")

	close(stop)
	for _, c := range slow {
		c.Close()
	}
	waitFor(t, func() bool { return len(srv.bodies) == 0 }, "the slow bodies' slots are released")
	code, body = call(t, "POST", hs.URL+"/requests", `{"prompt_len": 5, "max_tokens": 1}`)
	assert.Equal(t, http.StatusAccepted, code, body)
	sn, err := srv.Stats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, uint64(1), sn.Requests.RejectedBy["overloaded"])
	assert.Equal(t, uint64(1), sn.Requests.Submitted)
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "timed out waiting: %s", what)
	}
}

func TestNewHTTPServerHasTimeouts(t *testing.T) {
	hs := NewHTTPServer(http.NotFoundHandler())
	assert.Positive(t, hs.ReadHeaderTimeout)
	assert.Positive(t, hs.ReadTimeout)
	assert.Positive(t, hs.WriteTimeout)
	assert.Positive(t, hs.IdleTimeout)
	assert.Positive(t, hs.MaxHeaderBytes)
	assert.LessOrEqual(t, hs.ReadHeaderTimeout, hs.ReadTimeout)
}

func TestHTTPQueueFullGets429(t *testing.T) {
	srv := startServer(t, ServerConfig{
		Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}, MaxQueued: 2},
		Manual:    true,
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	for range 2 {
		code, body := call(t, "POST", hs.URL+"/requests", `{"prompt_len": 5, "max_tokens": 3}`)
		require.Equal(t, http.StatusAccepted, code, body)
	}
	code, body, hdr := callHeader(t, "POST", hs.URL+"/requests", `{"prompt_len": 5, "max_tokens": 3}`, "")
	require.Equal(t, http.StatusTooManyRequests, code, body)
	assert.Equal(t, "queue_full", decodeError(t, body).Code)
	assert.Equal(t, "1", hdr.Get("Retry-After"))
	// A malformed request is told what is wrong, not to come back.
	code, body = call(t, "POST", hs.URL+"/requests", `{"prompt_len": 5}`)
	require.Equal(t, http.StatusBadRequest, code, body)
	// Admission makes room: the queue bounds waiting requests, not
	// running ones.
	require.NoError(t, srv.Step(context.Background(), 1))
	code, body = call(t, "POST", hs.URL+"/requests", `{"prompt_len": 5, "max_tokens": 3}`)
	require.Equal(t, http.StatusAccepted, code, body)
	sn, err := srv.Stats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, uint64(1), sn.Requests.RejectedBy["queue_full"])
	assert.Equal(t, uint64(1), sn.Requests.RejectedBy["invalid_request"])
	assert.Equal(t, 1, sn.Requests.Queued)
}

// scrapeBlocks reads the block gauges from /metrics without failing the
// test from a goroutine.
func scrapeBlocks(client *http.Client, url string) (free, cached, used, usable, queued, capacity float64, err error) {
	resp, err := client.Get(url + "/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
		return
	}
	dst := map[string]*float64{
		`pagedkv_kv_cache_blocks{state="free"}`:     &free,
		`pagedkv_kv_cache_blocks{state="cached"}`:   &cached,
		`pagedkv_kv_cache_blocks{state="used"}`:     &used,
		"pagedkv_kv_cache_usable_blocks":            &usable,
		"pagedkv_admission_queue_requests":          &queued,
		"pagedkv_admission_queue_capacity_requests": &capacity,
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), " ")
		if p := dst[key]; ok && p != nil {
			if *p, err = strconv.ParseFloat(val, 64); err != nil {
				return
			}
			found++
		}
	}
	if err = sc.Err(); err == nil && found != len(dst) {
		err = fmt.Errorf("%d of %d gauges found", found, len(dst))
	}
	return
}

// TestHTTPConcurrentClients has 64 clients submit, poll and cancel (and
// try to cancel each other's requests) against the free-running loop for
// a bounded time while a scraper checks the block accounting at every
// scrape; at the end every block is back.
func TestHTTPConcurrentClients(t *testing.T) {
	const (
		clients  = 64
		numBlock = 256
		duration = 1500 * time.Millisecond
	)
	kv := newShadowKV(numBlock, 16)
	srv := startServer(t, ServerConfig{
		Scheduler: SchedulerConfig{
			Manager:    paged.Config{NumBlocks: numBlock, MaxModelLen: 1024, Events: 256},
			MaxNumSeqs: 64, MaxQueued: 48, OnBatch: kv.onBatch,
		},
		StepTime: 200 * time.Microsecond,
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients + 2}, Timeout: 30 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	do := func(method, path, body, token string) (int, http.Header, []byte, error) {
		req, err := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		if err != nil {
			return 0, nil, nil, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b, err
	}

	var accepted, refused, cancelled, polls atomic.Uint64
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for time.Now().Before(deadline) {
				n := 1
				if rng.IntN(4) == 0 {
					n = 4
				}
				spec := fmt.Sprintf(`{"prompt_len": %d, "max_tokens": %d, "n": %d}`, 16+rng.IntN(400), 1+rng.IntN(64), n)
				code, hdr, body, err := do("POST", "/requests", spec, "")
				if !assert.NoError(t, err) {
					return
				}
				if code == http.StatusTooManyRequests {
					var e apiError
					assert.NoError(t, json.Unmarshal(body, &e))
					assert.Contains(t, []string{"queue_full", "overloaded"}, e.Code)
					assert.NotEmpty(t, hdr.Get("Retry-After"))
					refused.Add(1)
					time.Sleep(time.Duration(1+rng.IntN(3)) * time.Millisecond)
					continue
				}
				if !assert.Equal(t, http.StatusAccepted, code, string(body)) {
					return
				}
				accepted.Add(1)
				var st Status
				assert.NoError(t, json.Unmarshal(body, &st))
				for range 1 + rng.IntN(3) {
					code, _, body, err := do("GET", "/requests/"+string(st.ID), "", "")
					assert.NoError(t, err)
					assert.Equal(t, http.StatusOK, code, string(body))
					polls.Add(1)
				}
				if rng.IntN(3) == 0 {
					// Someone else's token never cancels; the own one does,
					// unless the request finished meanwhile.
					code, _, body, err := do("POST", "/requests/"+string(st.ID)+"/cancel", "", strings.Repeat("A", 26))
					assert.NoError(t, err)
					assert.Equal(t, http.StatusForbidden, code, string(body))
					code, _, body, err = do("POST", "/requests/"+string(st.ID)+"/cancel", "", st.CancelToken)
					assert.NoError(t, err)
					switch code {
					case http.StatusOK:
						cancelled.Add(1)
					case http.StatusConflict:
					default:
						t.Errorf("cancel: %d %s", code, body)
					}
				}
			}
		})
	}
	var scrapes int
	scraperDone := make(chan struct{})
	go func() {
		defer close(scraperDone)
		scraper := &http.Client{Timeout: 30 * time.Second}
		for time.Now().Before(deadline) {
			free, cached, used, usable, queued, capacity, err := scrapeBlocks(scraper, hs.URL)
			if !assert.NoError(t, err) {
				return
			}
			assert.Equal(t, float64(numBlock-1), usable)
			assert.Equal(t, usable, free+cached+used, "free %v + cached %v + used %v", free, cached, used)
			assert.LessOrEqual(t, queued, capacity)
			scrapes++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	wg.Wait()
	<-scraperDone

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, srv.Idle(ctx), "the server drains")
	free, cached, used, usable, queued, _, err := scrapeBlocks(client, hs.URL)
	require.NoError(t, err)
	assert.Zero(t, used, "every block is back")
	assert.Zero(t, queued)
	assert.Equal(t, usable, free+cached)
	sn, err := srv.Stats(ctx)
	require.NoError(t, err)
	assert.Zero(t, sn.Blocks.Used)
	assert.Equal(t, accepted.Load(), sn.Requests.Submitted)
	assert.Equal(t, refused.Load(), sn.Requests.Rejected, "every 429 is counted, and nothing else was refused")
	assert.Equal(t, cancelled.Load(), sn.Requests.Cancelled)
	assert.Equal(t, sn.Requests.Submitted, sn.Requests.Finished+sn.Requests.Cancelled)
	require.NoError(t, srv.do(ctx, func(sc *Scheduler) { assert.NoError(t, sc.Manager().Check()) }))
	assert.NoError(t, kv.err)
	assert.Positive(t, scrapes)
	t.Logf("%d accepted, %d refused with 429, %d cancelled, %d polls, %d scrapes, %d steps",
		accepted.Load(), refused.Load(), cancelled.Load(), polls.Load(), scrapes, sn.Steps)
}

// TestHTTPFloodGets429AndMemoryStaysFlat floods a server whose loop does
// not step (so nothing ever leaves the queue) with 2,000 submissions of
// 8,000-token prompts. Past the queue's bound every one is refused with
// 429, and the heap after the flood is what it was before: an unbounded
// queue would hold all 2,000 (about 130 MB, 65 KB a queued request; the
// test logs the figures).
func TestHTTPFloodGets429AndMemoryStaysFlat(t *testing.T) {
	const (
		bound     = 32
		senders   = 16
		perSender = 125
		// Far below the ~65 KB a queued 8,000-token request holds times
		// 2,000, far above what the runtime and the test wobble by
		// (0.15 MB measured).
		maxGrowth = 4 << 20
	)
	srv := startServer(t, ServerConfig{
		Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 1024, MaxModelLen: 8192}, MaxQueued: bound},
		Manual:    true,
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	const spec = `{"prompt_len": 8000, "max_tokens": 16}`

	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	empty := heap()
	for range bound {
		code, body := call(t, "POST", hs.URL+"/requests", spec)
		require.Equal(t, http.StatusAccepted, code, body)
	}
	full := heap()

	var accepted, refused atomic.Uint64
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for range perSender {
				req, err := http.NewRequest("POST", hs.URL+"/requests", strings.NewReader(spec))
				if !assert.NoError(t, err) {
					return
				}
				resp, err := http.DefaultClient.Do(req)
				if !assert.NoError(t, err) {
					return
				}
				var e apiError
				assert.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusTooManyRequests:
					refused.Add(1)
					assert.Equal(t, "queue_full", e.Code)
					assert.Equal(t, "1", resp.Header.Get("Retry-After"))
				case http.StatusAccepted:
					accepted.Add(1)
				default:
					t.Errorf("status %d: %+v", resp.StatusCode, e)
				}
			}
		})
	}
	wg.Wait()
	after := heap()

	assert.Zero(t, accepted.Load(), "the queue was full throughout")
	assert.Equal(t, uint64(senders*perSender), refused.Load())
	sn, err := srv.Stats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, bound, sn.Requests.Queued, "the queue stays at its bound")
	assert.Equal(t, uint64(bound), sn.Requests.Submitted)
	assert.Equal(t, uint64(senders*perSender), sn.Requests.RejectedBy["queue_full"])
	growth := int64(after) - int64(full)
	perRequest := (int64(full) - int64(empty)) / bound
	t.Logf("heap: %d B empty, %d B with %d queued (%d B each), %d B after %d refused (growth %d B; an unbounded queue would add about %d B)",
		empty, full, bound, perRequest, after, refused.Load(), growth, perRequest*senders*perSender)
	assert.Less(t, growth, int64(maxGrowth), "memory grew under a flood of refused requests")
}
