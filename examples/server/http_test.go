package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
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
	code, text, _ := callHeader(t, method, url, body, "")
	return code, text
}

// callHeader sends one HTTP request, with a cancel token if token is not
// empty, and returns the status code, body and headers.
func callHeader(t *testing.T, method, url, body, token string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v
}

// decodeError checks that body is a JSON error with a code and a message.
func decodeError(t *testing.T, body string) apiError {
	t.Helper()
	e := decode[apiError](t, body)
	require.NotEmpty(t, e.Code, body)
	require.NotEmpty(t, e.Message, body)
	return e
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
	assert.Len(t, keep.ID, 26)
	assert.Len(t, keep.CancelToken, 26)
	assert.Equal(t, Status{ID: keep.ID, CancelToken: keep.CancelToken, State: "waiting", PromptTokens: 40, MaxTokens: 20, N: 1, Generated: []int{0}}, keep)

	code, body = call(t, "POST", hs.URL+"/requests", `{"prompt": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18], "max_tokens": 20, "n": 4}`)
	require.Equal(t, http.StatusAccepted, code, body)
	par := decode[Status](t, body)
	assert.NotEqual(t, keep.ID, par.ID)
	assert.NotEqual(t, keep.CancelToken, par.CancelToken)

	require.NoError(t, srv.Step(ctx, 2))
	code, body = call(t, "GET", hs.URL+"/stats", "")
	require.Equal(t, http.StatusOK, code)
	before := decode[map[string]any](t, body)
	blocks := before["blocks"].(map[string]any)
	// keep: 41 tokens in 3 blocks; par: 2 shared prompt blocks, then
	// three copies of the shared partial block.
	assert.Equal(t, 3.0+2+3, blocks["used"])

	code, body = call(t, "GET", hs.URL+"/requests/"+string(par.ID), "")
	require.Equal(t, http.StatusOK, code)
	st := decode[Status](t, body)
	assert.Equal(t, []int{2, 2, 2, 2}, st.Generated)
	assert.Empty(t, st.CancelToken, "the token is handed out once, to the submitter")

	// Knowing the ID is not enough to cancel: another request's token, or
	// none, is refused and changes nothing.
	code, body, hdr := callHeader(t, "POST", hs.URL+"/requests/"+string(par.ID)+"/cancel", "", "")
	require.Equal(t, http.StatusUnauthorized, code, body)
	assert.Equal(t, "missing_token", decodeError(t, body).Code)
	assert.Contains(t, hdr.Get("WWW-Authenticate"), "Bearer")
	code, body, _ = callHeader(t, "POST", hs.URL+"/requests/"+string(par.ID)+"/cancel", "", keep.CancelToken)
	require.Equal(t, http.StatusForbidden, code, body)
	assert.Equal(t, "wrong_token", decodeError(t, body).Code)
	code, body, _ = callHeader(t, "POST", hs.URL+"/requests/"+string(par.ID)+"/cancel", "", "Basic "+par.CancelToken)
	require.Equal(t, http.StatusForbidden, code, body)
	sn, err := srv.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 8, sn.Blocks.Used, "refused cancels free nothing")

	code, body, _ = callHeader(t, "POST", hs.URL+"/requests/"+string(par.ID)+"/cancel", "", par.CancelToken)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "cancelled", decode[Status](t, body).State)
	sn, err = srv.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, sn.Blocks.Used, "cancelling frees the request's blocks")

	// Errors are clear JSON and leave the other request alone.
	unknown := "AAAAAAAAAAAAAAAAAAAAAAAAAA"
	for _, tc := range []struct {
		method, path, body, token string
		code                      int
		errCode, msg              string
	}{
		{"POST", "/requests/" + string(par.ID) + "/cancel", "", par.CancelToken, http.StatusConflict, "already_finished", "already finished"},
		{"POST", "/requests/" + unknown + "/cancel", "", par.CancelToken, http.StatusNotFound, "unknown_request", "unknown request: request " + unknown},
		{"POST", "/requests/abc/cancel", "", par.CancelToken, http.StatusBadRequest, "invalid_request", `request id "abc"`},
		{"GET", "/requests/1", "", "", http.StatusBadRequest, "invalid_request", "malformed"},
		{"GET", "/requests/" + strings.ToLower(string(keep.ID)), "", "", http.StatusBadRequest, "invalid_request", "malformed"},
		{"GET", "/requests/" + unknown, "", "", http.StatusNotFound, "unknown_request", "unknown request"},
		{"POST", "/requests", `{"max_tokens": 4}`, "", http.StatusBadRequest, "invalid_request", "empty prompt"},
		{"POST", "/requests", `{"prompt": [], "max_tokens": 4}`, "", http.StatusBadRequest, "invalid_request", "empty prompt"},
		{"POST", "/requests", `{"prompt_len": 500, "max_tokens": 13}`, "", http.StatusBadRequest, "too_long", "too long"},
		{"POST", "/requests", `{"prompt_len": 5, "max_tokens": 4, "n": 99}`, "", http.StatusBadRequest, "invalid_request", "n 99"},
		{"POST", "/requests", `{"prompt_len": 5, "max_tokens": 4, "temperature": 1}`, "", http.StatusBadRequest, "invalid_request", `unknown field "temperature"`},
		// Names match exactly: encoding/json alone would take these.
		{"POST", "/requests", `{"prompt_len": 5, "Max_Tokens": 4}`, "", http.StatusBadRequest, "invalid_request", `unknown field "Max_Tokens"`},
		{"POST", "/requests", `{"PROMPT_LEN": 5, "max_tokens": 4}`, "", http.StatusBadRequest, "invalid_request", `unknown field "PROMPT_LEN"`},
		{"POST", "/requests", `{"prompt_len": 5, "max_tokens": 4, "max_tokens": 9}`, "", http.StatusBadRequest, "invalid_request", `"max_tokens" given twice`},
		{"POST", "/requests", `{"prompt_len": "x"}`, "", http.StatusBadRequest, "invalid_request", `field "prompt_len"`},
		{"POST", "/requests", `{"prompt": [1.5], "max_tokens": 1}`, "", http.StatusBadRequest, "invalid_request", `field "prompt"`},
		// Token IDs are the scheduler's to check (through the manager).
		{"POST", "/requests", `{"prompt": [5, -1], "max_tokens": 1}`, "", http.StatusBadRequest, "invalid_request", "token -1 at index 1 is negative"},
		{"POST", "/requests", `{"prompt": [4294967296], "max_tokens": 1}`, "", http.StatusBadRequest, "invalid_request", `field "prompt"`},
		{"POST", "/requests", `{"prompt_len": 5, "max_tokens": 4} {}`, "", http.StatusBadRequest, "invalid_request", "more than one"},
		{"POST", "/requests", `[1]`, "", http.StatusBadRequest, "invalid_request", "want a JSON object"},
		{"POST", "/requests", `{"prompt_len": 5,`, "", http.StatusBadRequest, "invalid_request", "unexpected end"},
		{"POST", "/requests", ``, "", http.StatusBadRequest, "invalid_request", "unexpected end"},
		{"POST", "/requests", `{"prompt_len": 5, "max_tokens": 4, "n": 1, "prompt": [` + strings.Repeat("1,", 7000) + `1]}`, "", http.StatusRequestEntityTooLarge, "body_too_large", "more than"},
		{"DELETE", "/requests/" + string(keep.ID), "", "", http.StatusMethodNotAllowed, "method_not_allowed", "DELETE"},
		{"GET", "/nope", "", "", http.StatusNotFound, "not_found", "/nope"},
		{"GET", "/", "", "", http.StatusNotFound, "not_found", "not found"},
	} {
		code, body, hdr := callHeader(t, tc.method, hs.URL+tc.path, tc.body, tc.token)
		assert.Equal(t, tc.code, code, "%s %s %s: %s", tc.method, tc.path, tc.body, body)
		assert.Equal(t, "application/json", hdr.Get("Content-Type"))
		e := decodeError(t, body)
		assert.Equal(t, tc.errCode, e.Code, body)
		assert.Contains(t, e.Message, tc.msg)
		if code == http.StatusMethodNotAllowed {
			assert.Equal(t, "GET, HEAD", hdr.Get("Allow"))
		}
	}
	st, err = srv.Status(ctx, keep.ID)
	require.NoError(t, err)
	assert.Equal(t, "running", st.State)
	assert.Equal(t, []int{2}, st.Generated)
	sn, err = srv.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, sn.Blocks.Used)
	// Every refused submission is counted, those refused before the
	// scheduler saw them too.
	assert.Equal(t, uint64(17), sn.Requests.Rejected)
	assert.Equal(t, uint64(15), sn.Requests.RejectedBy["invalid_request"])
	assert.Equal(t, uint64(1), sn.Requests.RejectedBy["too_long"])
	assert.Equal(t, uint64(1), sn.Requests.RejectedBy["body_too_large"])

	require.NoError(t, srv.Step(ctx, 100))
	st, err = srv.Status(ctx, keep.ID)
	require.NoError(t, err)
	assert.Equal(t, "finished", st.State)
	assert.Equal(t, []int{20}, st.Generated)
}

// abortingPool is TestHTTPAbortedRequest's pool: 8 usable blocks of 16
// and a window of 16 beside full attention, where a request of an 80-token
// prompt and 17 new tokens is accepted but can never be admitted.
func abortingPool() paged.Config {
	return paged.Config{NumBlocks: 9, MaxModelLen: 512,
		Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 16}}}
}

// A request that fails after it was accepted fails alone: its client
// reads state "aborted" with an error code and message, its blocks are
// freed, and the other request runs to its end. With a sliding-window
// group a sequence admitted after a long cached prefix holds only the
// window's blocks of it, so the scheduler accepts a prompt that fits the
// pool only so; this one's prefix is not cached (a made-up prompt), and
// admitted from scratch it never fits.
func TestHTTPAbortedRequest(t *testing.T) {
	srv := startServer(t, ServerConfig{Scheduler: SchedulerConfig{Manager: abortingPool()}, Manual: true})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	ctx := context.Background()

	// 8 usable blocks of 16. At its longest (96 tokens of KV) the request
	// holds 6 blocks of full attention and, after a hit of its first 80
	// tokens, the window's 2: it fits. Its prompt admitted without a hit
	// takes 5 blocks in each group: 10.
	code, body := call(t, "POST", hs.URL+"/requests", `{"prompt_len": 80, "max_tokens": 17}`)
	require.Equal(t, http.StatusAccepted, code, body)
	bad := decode[Status](t, body)
	// One more token takes a 7th block of full attention: 9, refused.
	code, body = call(t, "POST", hs.URL+"/requests", `{"prompt_len": 80, "max_tokens": 18}`)
	require.Equal(t, http.StatusBadRequest, code, body)
	assert.Equal(t, "too_long", decodeError(t, body).Code)
	code, body = call(t, "POST", hs.URL+"/requests", `{"prompt_len": 5, "max_tokens": 30}`)
	require.Equal(t, http.StatusAccepted, code, body)
	good := decode[Status](t, body)
	require.NoError(t, srv.Step(ctx, 1000))

	code, body = call(t, "GET", hs.URL+"/requests/"+string(bad.ID), "")
	require.Equal(t, http.StatusOK, code, body)
	st := decode[Status](t, body)
	assert.Equal(t, "aborted", st.State)
	assert.Equal(t, "too_long", st.Error)
	assert.Contains(t, st.Message, "server: request too long: sched: request can never run")
	assert.Contains(t, st.Message, "can never be admitted", st.Message)
	assert.Equal(t, []int{0}, st.Generated, "never admitted")
	code, body = call(t, "GET", hs.URL+"/requests/"+string(good.ID), "")
	require.Equal(t, http.StatusOK, code, body)
	st = decode[Status](t, body)
	assert.Equal(t, "finished", st.State)
	assert.Equal(t, []int{30}, st.Generated)
	assert.Empty(t, st.Error)
	assert.NotContains(t, body, "message", "no error fields on a request that did not fail")

	code, body, _ = callHeader(t, "POST", hs.URL+"/requests/"+string(bad.ID)+"/cancel", "", bad.CancelToken)
	assert.Equal(t, http.StatusConflict, code, body)
	assert.Equal(t, "already_finished", decodeError(t, body).Code)

	sn, err := srv.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), sn.Requests.Aborted)
	assert.Equal(t, uint64(1), sn.Requests.Finished)
	assert.Zero(t, sn.Requests.Running+sn.Requests.Waiting)
	assert.Zero(t, sn.Blocks.Used)
	code, body = call(t, "GET", hs.URL+"/metrics", "")
	require.Equal(t, http.StatusOK, code)
	_, samples := parseMetrics(t, body)
	assert.Equal(t, 1.0, samples["pagedkv_requests_aborted_total"])
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
		"pagedkv_kv_cache_usage_ratio":                              float64(sn.Blocks.Used) / 63,
		"pagedkv_prefix_cache_hit_ratio":                            float64(sn.Prefix.HitTokens) / float64(sn.Prefix.QueryTokens),
		`pagedkv_kv_cache_blocks{state="free"}`:                     float64(sn.Blocks.Free),
		`pagedkv_kv_cache_blocks{state="cached"}`:                   float64(sn.Blocks.Cached),
		`pagedkv_kv_cache_blocks{state="used"}`:                     float64(sn.Blocks.Used),
		"pagedkv_kv_cache_usable_blocks":                            63,
		"pagedkv_block_size_tokens":                                 16,
		`pagedkv_requests{state="running"}`:                         2,
		`pagedkv_requests{state="waiting"}`:                         0,
		"pagedkv_admission_queue_requests":                          0,
		"pagedkv_admission_queue_capacity_requests":                 512,
		"pagedkv_requests_submitted_total":                          2,
		`pagedkv_requests_rejected_total{reason="invalid_request"}`: 1,
		`pagedkv_requests_rejected_total{reason="queue_full"}`:      0,
		`pagedkv_requests_rejected_total{reason="body_too_large"}`:  0,
		"pagedkv_prefix_cache_query_tokens_total":                   82,
		"pagedkv_prefix_cache_hit_tokens_total":                     32, // (41-1)/16 = 2 blocks
		"pagedkv_prompt_tokens_total":                               41 + 9,
		"pagedkv_generation_tokens_total":                           3,
		"pagedkv_steps_total":                                       2,
		"pagedkv_prefix_cache_stored_blocks_total":                  float64(sn.Prefix.Stored),
		`pagedkv_kv_events_total{kind="BlockStored"}`:               float64(sn.Events.Stored),
	}
	for key, v := range want {
		if assert.Contains(t, samples, key) {
			assert.InDelta(t, v, samples[key], 1e-12, key)
		}
	}
	assert.Equal(t, 63.0, samples[`pagedkv_kv_cache_blocks{state="free"}`]+samples[`pagedkv_kv_cache_blocks{state="cached"}`]+samples[`pagedkv_kv_cache_blocks{state="used"}`])
	// Names say their unit: counters end in _total, 0-to-1 gauges in
	// _ratio, and every family names what it counts.
	for name := range types {
		assert.Regexp(t, `^pagedkv_[a-z_]+$`, name)
		assert.Regexp(t, `_(total|ratio|blocks|tokens|requests|sequences)$`, name, "%s names no unit", name)
	}
	for key, v := range samples {
		if strings.HasSuffix(key, "_ratio") {
			assert.True(t, v >= 0 && v <= 1, "%s = %v", key, v)
		}
	}

	code, body := call(t, "GET", hs.URL+"/stats", "")
	require.Equal(t, http.StatusOK, code)
	js := decode[map[string]any](t, body)
	assert.InDelta(t, want["pagedkv_kv_cache_usage_ratio"], js["kv_cache_usage"], 1e-12)
	assert.InDelta(t, want["pagedkv_prefix_cache_hit_ratio"], js["prefix_cache_hit_rate"], 1e-12)
	reqs := js["requests"].(map[string]any)
	assert.Equal(t, 1.0, reqs["rejected"])
	assert.Equal(t, 1.0, reqs["rejected_by"].(map[string]any)["invalid_request"])
	assert.Equal(t, 2.0, reqs["submitted"])
	assert.Equal(t, 2.0, reqs["running"])
	assert.Equal(t, 512.0, reqs["max_queued"])
	assert.Equal(t, 82.0, js["prefix_cache"].(map[string]any)["query_tokens"])
}

func TestMetricsEscapeHelpAndLabels(t *testing.T) {
	var buf bytes.Buffer
	p := promWriter{w: bufio.NewWriter(&buf)}
	p.family("x_total", "counter", "back\\slash and\nnewline \"quoted\"")
	p.sample("x_total", "reason", "a\"b\\c\nd", math.Inf(1))
	p.sample("x_total", "reason", "nan", math.NaN())
	require.NoError(t, p.w.Flush())
	assert.Equal(t, "# HELP x_total back\\\\slash and\\nnewline \"quoted\"\n# TYPE x_total counter\n"+
		`x_total{reason="a\"b\\c\nd"} +Inf`+"\n"+`x_total{reason="nan"} NaN`+"\n", buf.String())
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
