package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// call sends one HTTP request and returns the status code and body.
func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v
}

func newHTTPTest(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	srv := startServer(t, ServerConfig{
		Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64, MaxModelLen: 512, Events: 64}},
		Manual:    true,
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return srv, hs
}

func TestHTTPSubmitStatusCancel(t *testing.T) {
	srv, hs := newHTTPTest(t)
	ctx := context.Background()

	code, body := call(t, "POST", hs.URL+"/requests", `{"prompt_len": 40, "max_tokens": 20}`)
	require.Equal(t, http.StatusAccepted, code, body)
	keep := decode[Status](t, body)
	assert.Equal(t, Status{ID: 1, State: "waiting", PromptTokens: 40, MaxTokens: 20, N: 1, Generated: []int{0}}, keep)

	code, body = call(t, "POST", hs.URL+"/requests", `{"prompt": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18], "max_tokens": 20, "n": 4}`)
	require.Equal(t, http.StatusAccepted, code, body)
	par := decode[Status](t, body)
	assert.Equal(t, ReqID(2), par.ID)

	require.NoError(t, srv.Step(ctx, 2))
	code, body = call(t, "GET", hs.URL+"/stats", "")
	require.Equal(t, http.StatusOK, code)
	before := decode[map[string]any](t, body)
	blocks := before["blocks"].(map[string]any)
	// keep: 41 tokens in 3 blocks; par: 2 shared prompt blocks, then
	// three copies of the shared partial block.
	assert.Equal(t, 3.0+2+3, blocks["used"])

	code, body = call(t, "GET", hs.URL+"/requests/2", "")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, []int{2, 2, 2, 2}, decode[Status](t, body).Generated)

	code, body = call(t, "POST", hs.URL+"/requests/2/cancel", "")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "cancelled", decode[Status](t, body).State)
	sn, err := srv.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, sn.Blocks.Used, "cancelling frees the request's blocks")

	// Errors are clear and leave the other request alone.
	for _, tc := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"POST", "/requests/2/cancel", "", http.StatusConflict, "already finished"},
		{"POST", "/requests/99/cancel", "", http.StatusNotFound, "unknown request: request 99"},
		{"POST", "/requests/abc/cancel", "", http.StatusBadRequest, `request id "abc"`},
		{"GET", "/requests/0", "", http.StatusBadRequest, "not a positive integer"},
		{"GET", "/requests/99", "", http.StatusNotFound, "unknown request"},
		{"POST", "/requests", `{"max_tokens": 4}`, http.StatusBadRequest, "empty prompt"},
		{"POST", "/requests", `{"prompt": [], "max_tokens": 4}`, http.StatusBadRequest, "empty prompt"},
		{"POST", "/requests", `{"prompt_len": 500, "max_tokens": 13}`, http.StatusBadRequest, "too long"},
		{"POST", "/requests", `{"prompt_len": 5, "max_tokens": 4, "n": 99}`, http.StatusBadRequest, "n 99"},
		{"POST", "/requests", `{"prompt_len": 5, "max_tokens": 4, "temperature": 1}`, http.StatusBadRequest, "unknown field"},
		{"POST", "/requests", `{"prompt_len": "x"}`, http.StatusBadRequest, "invalid request: body"},
		{"POST", "/requests", `{"prompt_len": 5, "max_tokens": 4} {}`, http.StatusBadRequest, "more than one"},
		{"DELETE", "/requests/1", "", http.StatusMethodNotAllowed, ""},
	} {
		code, body := call(t, tc.method, hs.URL+tc.path, tc.body)
		assert.Equal(t, tc.code, code, "%s %s %s: %s", tc.method, tc.path, tc.body, body)
		if tc.msg != "" {
			assert.Contains(t, decode[map[string]string](t, body)["error"], tc.msg)
		}
	}
	st, err := srv.Status(ctx, keep.ID)
	require.NoError(t, err)
	assert.Equal(t, "running", st.State)
	assert.Equal(t, []int{2}, st.Generated)
	sn, err = srv.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, sn.Blocks.Used)
	assert.Equal(t, uint64(4), sn.Requests.Rejected, "body errors never reach the scheduler")

	require.NoError(t, srv.Step(ctx, 100))
	st, err = srv.Status(ctx, keep.ID)
	require.NoError(t, err)
	assert.Equal(t, "finished", st.State)
	assert.Equal(t, []int{20}, st.Generated)
}

// parseMetrics reads the Prometheus text format strictly enough to catch
// malformed output: every sample belongs to a family declared by HELP and
// TYPE lines, and values parse as floats.
func parseMetrics(t *testing.T, text string) (types map[string]string, samples map[string]float64) {
	t.Helper()
	types, samples = map[string]string{}, map[string]float64{}
	helps := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# HELP "):
			name, help, ok := strings.Cut(strings.TrimPrefix(line, "# HELP "), " ")
			require.True(t, ok && help != "", line)
			helps[name] = true
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, ok := strings.Cut(strings.TrimPrefix(line, "# TYPE "), " ")
			require.True(t, ok, line)
			require.Contains(t, []string{"gauge", "counter"}, typ, line)
			require.True(t, helps[name], "TYPE before HELP: %s", line)
			types[name] = typ
		default:
			key, val, ok := strings.Cut(line, " ")
			require.True(t, ok, line)
			name, _, _ := strings.Cut(key, "{")
			require.Contains(t, types, name, "sample of an undeclared family: %s", line)
			v, err := strconv.ParseFloat(val, 64)
			require.NoError(t, err, line)
			samples[key] = v
		}
	}
	require.NoError(t, sc.Err())
	return types, samples
}

func TestHTTPMetrics(t *testing.T) {
	srv, hs := newHTTPTest(t)
	ctx := context.Background()
	prompt := `{"prompt": [` + strings.Repeat("7,", 40) + `7], "max_tokens": 3}`
	for range 2 {
		code, body := call(t, "POST", hs.URL+"/requests", prompt)
		require.Equal(t, http.StatusAccepted, code, body)
		require.NoError(t, srv.Step(ctx, 1)) // the second request hits the first's blocks
	}
	code, _ := call(t, "POST", hs.URL+"/requests", `{"prompt_len": 10, "max_tokens": 0}`)
	require.Equal(t, http.StatusBadRequest, code)

	resp, err := http.Get(hs.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, MetricsContentType, resp.Header.Get("Content-Type"))
	text, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	types, samples := parseMetrics(t, string(text))

	sn, err := srv.Stats(ctx)
	require.NoError(t, err)
	require.Positive(t, sn.Blocks.Used)
	require.Positive(t, sn.Prefix.HitTokens)
	for name, typ := range types {
		assert.Equal(t, typ == "counter", strings.HasSuffix(name, "_total"), "%s is a %s", name, typ)
	}
	want := map[string]float64{
		"pagedkv_kv_cache_usage":                      float64(sn.Blocks.Used) / 63,
		"pagedkv_prefix_cache_hit_rate":               float64(sn.Prefix.HitTokens) / float64(sn.Prefix.QueryTokens),
		`pagedkv_blocks{state="free"}`:                float64(sn.Blocks.Free),
		`pagedkv_blocks{state="cached"}`:              float64(sn.Blocks.Cached),
		`pagedkv_blocks{state="used"}`:                float64(sn.Blocks.Used),
		"pagedkv_blocks_usable":                       63,
		"pagedkv_block_size_tokens":                   16,
		`pagedkv_requests{state="running"}`:           2,
		`pagedkv_requests{state="waiting"}`:           0,
		"pagedkv_requests_submitted_total":            2,
		"pagedkv_requests_rejected_total":             1,
		"pagedkv_prefix_cache_queries_total":          82,
		"pagedkv_prefix_cache_hits_total":             32, // (41-1)/16 = 2 blocks
		"pagedkv_prompt_tokens_total":                 41 + 9,
		"pagedkv_generation_tokens_total":             3,
		"pagedkv_steps_total":                         2,
		"pagedkv_blocks_stored_total":                 float64(sn.Prefix.Stored),
		`pagedkv_kv_events_total{kind="BlockStored"}`: float64(sn.Events.Stored),
	}
	for key, v := range want {
		if assert.Contains(t, samples, key) {
			assert.InDelta(t, v, samples[key], 1e-12, key)
		}
	}
	assert.Equal(t, 63.0, samples[`pagedkv_blocks{state="free"}`]+samples[`pagedkv_blocks{state="cached"}`]+samples[`pagedkv_blocks{state="used"}`])

	code, body := call(t, "GET", hs.URL+"/stats", "")
	require.Equal(t, http.StatusOK, code)
	js := decode[map[string]any](t, body)
	assert.InDelta(t, want["pagedkv_kv_cache_usage"], js["kv_cache_usage"], 1e-12)
	assert.InDelta(t, want["pagedkv_prefix_cache_hit_rate"], js["prefix_cache_hit_rate"], 1e-12)
	assert.Equal(t, map[string]any{"submitted": 2.0, "rejected": 1.0, "finished": 0.0, "cancelled": 0.0,
		"parallel": 0.0, "waiting": 0.0, "running": 2.0}, js["requests"])
	assert.Equal(t, 82.0, js["prefix_cache"].(map[string]any)["query_tokens"])
}

func TestListenAddrDefaultsToLoopback(t *testing.T) {
	for in, want := range map[string]string{
		":8080":          "127.0.0.1:8080",
		"0.0.0.0:8080":   "0.0.0.0:8080",
		"localhost:9000": "localhost:9000",
		"[::1]:8080":     "[::1]:8080",
	} {
		assert.Equal(t, want, listenAddr(in), in)
	}
}

func TestWriteMetricsReportsWriteErrors(t *testing.T) {
	err := WriteMetrics(failingWriter{}, Snapshot{})
	require.ErrorIs(t, err, io.ErrClosedPipe)
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
