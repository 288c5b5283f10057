package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/pagedkv/pagedkv/paged"
)

// ExampleScheduler drives the step loop by hand: two requests share a
// system prompt, one samples four ways.
func ExampleScheduler() {
	s, err := NewScheduler(SchedulerConfig{Manager: paged.Config{NumBlocks: 64, BlockSize: 16}})
	if err != nil {
		panic(err)
	}
	system := make([]int32, 40)
	for i := range system {
		system[i] = int32(100 + i)
	}
	a, _ := s.Submit(Spec{Prompt: system, MaxTokens: 4})
	s.Step() // a's prompt is computed; its blocks enter the prefix cache
	b, _ := s.Submit(Spec{Prompt: append(system, 1, 2, 3), MaxTokens: 4, N: 4})
	for s.Step() {
	}
	for i, t := range []Ticket{a, b} {
		st, _ := s.Status(t.ID)
		fmt.Printf("request %c: %s, %d cached prompt tokens, generated %v\n", 'a'+i, st.State, st.CachedTokens, st.Generated)
	}
	sn := s.Snapshot()
	fmt.Printf("steps %d, tokens %d, forks %d, copies %d, blocks used %d\n",
		sn.Steps, sn.Tokens.Generated, sn.Forks, sn.Copies, sn.Blocks.Used)
	// Output:
	// request a: finished, 0 cached prompt tokens, generated [4]
	// request b: finished, 32 cached prompt tokens, generated [4 4 4 4]
	// steps 5, tokens 20, forks 3, copies 3, blocks used 0
}

// ExampleDecodeSpec shows the submission body's strict reading: names
// match exactly and appear once.
func ExampleDecodeSpec() {
	for _, body := range []string{
		`{"prompt_len": 40, "max_tokens": 8, "n": 2}`,
		`{"prompt_len": 40, "Max_Tokens": 8}`,
		`{"prompt_len": 40, "max_tokens": 8, "max_tokens": 9}`,
	} {
		spec, err := DecodeSpec(strings.NewReader(body))
		fmt.Printf("%+v %v\n", spec, err)
	}
	// Output:
	// {Prompt:[] PromptLen:40 MaxTokens:8 N:2} <nil>
	// {Prompt:[] PromptLen:0 MaxTokens:0 N:0} server: invalid request: body: unknown field "Max_Tokens" (names are case-sensitive)
	// {Prompt:[] PromptLen:0 MaxTokens:0 N:0} server: invalid request: body: field "max_tokens" given twice
}

// ExampleServer_Handler submits a request over HTTP and shows what a
// full admission queue answers.
func ExampleServer_Handler() {
	srv, err := NewServer(ServerConfig{
		Scheduler: SchedulerConfig{Manager: paged.Config{NumBlocks: 64}, MaxQueued: 1},
		Manual:    true, // nothing is admitted: the queue stays full
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for range 2 {
		resp, err := http.Post(hs.URL+"/requests", "application/json", strings.NewReader(`{"prompt_len": 20, "max_tokens": 4}`))
		if err != nil {
			panic(err)
		}
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		fmt.Printf("%d state=%v error=%v retry-after=%q\n", resp.StatusCode, v["state"], v["error"], resp.Header.Get("Retry-After"))
	}
	// Output:
	// 202 state=waiting error=<nil> retry-after=""
	// 429 state=<nil> error=queue_full retry-after="1"
}

// ExampleParseLayout reads -layout texts: fleet's layout text with a
// state group's pages, and what is refused.
func ExampleParseLayout() {
	for _, text := range []string{"full window:128", "b16 full state:34 state:34", "full state", "window:128 full"} {
		groups, err := ParseLayout(text, 16)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(len(groups), "groups:", LayoutString(16, groups))
	}
	// Output:
	// 2 groups: b16 full window:128
	// 3 groups: b16 full state:34 state:34
	// -layout "full state": group 1 "state": a state group is "state:<pages>", its blocks per sequence (at least 1)
	// -layout "window:128 full": group 0 is window, must be full
}
