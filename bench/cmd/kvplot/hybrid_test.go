package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const hybridJSON = `{"blocks":8192,"requests":2000,"window":128,"w1_vllm_admitted_hit_tokens":756976,"w1_default_admitted_hit_tokens":761904,"vllm_admitted_hit_tokens":147744,"default_admitted_hit_tokens":599200,"default_first_hit_tokens":465024,"default_resume_hit_tokens":134176}
{"blocks":8192,"requests":2000,"window":1024,"w1_vllm_admitted_hit_tokens":756976,"w1_default_admitted_hit_tokens":761904,"vllm_admitted_hit_tokens":501440,"default_admitted_hit_tokens":730656}
{"blocks":8192,"requests":2000,"state_model":"Qwen3-Next-80B-A3B","full_groups":1,"state_groups":3,"state_pages":34,"w1_vllm_admitted_hit_tokens":756976,"w1_default_admitted_hit_tokens":761904,"vllm_admitted_hit_tokens":0,"default_admitted_hit_tokens":475248}
{"blocks":8192,"requests":2000,"layout":"full + window 128 + state 34","vllm_refused":"n/a: one kind besides full attention","w1_vllm_admitted_hit_tokens":756976,"w1_default_admitted_hit_tokens":761904,"default_admitted_hit_tokens":460608}
`

func TestHybridKind(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hybrid.png")
	var errb bytes.Buffer
	if code := run([]string{"hybrid", "-o", out}, strings.NewReader(hybridJSON), &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("not a PNG: %v", err)
	}
	r, err := readHybrid([]byte(hybridJSON))
	if err != nil || len(r.Rows) != 2 || len(r.States) != 1 || r.States[0].Pages != 34 || r.Rows[0].Default.FirstHitTokens != 465024 {
		t.Fatalf("read back %+v, %v", r, err)
	}
	if len(r.Layouts) != 1 || r.Layouts[0].Name != "full + window 128 + state 34" || r.Layouts[0].VLLMRefused == "" || r.Layouts[0].Default.AdmittedHitTokens != 460608 {
		t.Fatalf("layouts read back %+v", r.Layouts)
	}
	twoKinds := `{"window":128,"layout":"x","w1_vllm_admitted_hit_tokens":1}`
	for _, in := range []string{cacheJSON, `{"window":128}`, twoKinds, hybridJSON[strings.LastIndex(strings.TrimSpace(hybridJSON), "\n")+1:]} {
		errb.Reset()
		if code := run([]string{"hybrid", "-o", out}, strings.NewReader(in), &errb); code != 2 {
			t.Errorf("input %.40q: exit %d (%s), want 2", in, code, errb.String())
		}
	}
}
