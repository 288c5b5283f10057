package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// FuzzSubmitBody posts arbitrary bodies: each is accepted (202) or refused
// with 400 or 413 and a JSON error, never anything else; every refusal is
// counted; and the manager stays consistent while a request submitted
// first keeps running to its end.
func FuzzSubmitBody(f *testing.F) {
	for _, seed := range []string{
		`{"prompt_len": 40, "max_tokens": 20, "n": 4}`,
		`{"prompt": [1, 2, 3], "max_tokens": 2}`,
		`{"prompt": [], "max_tokens": 5}`,
		`{"prompt_len": 9223372036854775807, "max_tokens": 9223372036854775807}`,
		`{"prompt": [-1], "max_tokens": 1}`,
		`{"n": -3}`,
		`[]`,
		`{`,
		`{"Max_Tokens": 3, "prompt_len": 4}`,
		`{"n": 1, "n": 2, "max_tokens": 1, "prompt_len": 1}`,
		`{"prompt_len": 5, "max_tokens": 4} {}`,
	} {
		f.Add(seed)
	}
	srv, err := NewServer(ServerConfig{
		Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 128, MaxModelLen: 1024, Events: 64}, KeepFinished: 8},
		Manual:    true,
		// Small enough that long fuzzed bodies meet the limit.
		HTTP: HTTPConfig{MaxBodyBytes: 512},
	})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	h := srv.Handler()
	keep, err := srv.Submit(ctx, Spec{PromptLen: 30, MaxTokens: 900})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		before, err := srv.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/requests", strings.NewReader(body)))
		after, err := srv.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch rec.Code {
		case http.StatusAccepted:
			if after.Requests.Submitted != before.Requests.Submitted+1 {
				t.Fatalf("202 for %q but %d submitted before, %d after", body, before.Requests.Submitted, after.Requests.Submitted)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
			var e apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" {
				t.Fatalf("status %d for %q without a JSON error: %s", rec.Code, body, rec.Body)
			}
			if after.Requests.Rejected != before.Requests.Rejected+1 || after.Requests.RejectedBy[e.Code] != before.Requests.RejectedBy[e.Code]+1 {
				t.Fatalf("refusal %s of %q not counted: %v, then %v", e.Code, body, before.Requests.RejectedBy, after.Requests.RejectedBy)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if err := srv.Step(ctx, 1); err != nil {
			t.Fatal(err)
		}
		var checkErr error
		if err := srv.do(ctx, func(sc *Scheduler) { checkErr = sc.Manager().Check() }); err != nil {
			t.Fatal(err)
		}
		if checkErr != nil {
			t.Fatal(checkErr)
		}
		st, err := srv.Status(ctx, keep.ID)
		if err != nil {
			// Finished long ago and forgotten: nothing disturbed it.
			return
		}
		// With one KV cache group everything accepted fits: nothing is
		// aborted.
		if st.State == "cancelled" || st.State == "aborted" {
			t.Fatalf("request %s was %s by %q", keep.ID, st.State, body)
		}
		if after.Requests.Aborted != 0 {
			t.Fatalf("%d requests aborted", after.Requests.Aborted)
		}
	})
}

// FuzzParseLayout reads arbitrary -layout texts: each is refused with an
// error naming the flag, or gives groups that LayoutString writes back
// to the same groups and that a manager either takes, running a short
// request to its end with its invariants intact, or refuses with
// paged.ErrInvalid (run's usage error).
func FuzzParseLayout(f *testing.F) {
	for _, seed := range []string{
		"", "full", "full window:128", "b16 full state:3 state:2", "full chunked:40 shared:1 window:1",
		"full state", "window:4 full", "b8 full", "full shared:0 shared:1", "full window:-1", "full state:99999",
		"full window:1073741824", "full\twindow:16\n", "full window:+16", "full window:016",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		groups, err := ParseLayout(text, 16)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "-layout ") {
				t.Fatalf("%q: error %q does not name the flag", text, err)
			}
			return
		}
		if len(groups) == 0 {
			return
		}
		again, err := ParseLayout(LayoutString(16, groups), 16)
		if err != nil || len(again) != len(groups) {
			t.Fatalf("%q: %s reads back as %v, %v", text, LayoutString(16, groups), again, err)
		}
		for i := range groups {
			if again[i] != groups[i] {
				t.Fatalf("%q: group %d reads back as %+v, was %+v", text, i, again[i], groups[i])
			}
		}
		s, err := NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 64, BlockSize: 16, Groups: groups}})
		if err != nil {
			if !errors.Is(err, paged.ErrInvalid) {
				t.Fatalf("%q: manager refused with %v, not ErrInvalid", text, err)
			}
			return
		}
		if _, err := s.Submit(Spec{PromptLen: 40, MaxTokens: 3}); err != nil {
			return // a state too large for one sequence besides its tokens
		}
		for s.Step() {
			if err := s.Manager().Check(); err != nil {
				t.Fatalf("%q: %v", text, err)
			}
		}
	})
}
