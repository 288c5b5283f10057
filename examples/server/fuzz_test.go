package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// FuzzSubmitBody posts arbitrary bodies: each is accepted (202) or refused
// with 400, never anything else, and the manager stays consistent while a
// request submitted first keeps running to its end.
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
	} {
		f.Add(seed)
	}
	srv, err := NewServer(ServerConfig{
		Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 128, MaxModelLen: 1024, Events: 64}, KeepFinished: 8},
		Manual:    true,
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
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/requests", strings.NewReader(body)))
		if rec.Code != http.StatusAccepted && rec.Code != http.StatusBadRequest {
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
		if st.State == "cancelled" {
			t.Fatalf("request %d was cancelled by %q", keep.ID, body)
		}
	})
}
