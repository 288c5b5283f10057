package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAudit101CommandLine: -help and --help are help as -h is (status 0,
// the usage on stderr); a stray argument after the flags is refused
// before anything is drawn; -title names the cache figure; every format
// the refusal lists is drawn.
func TestAudit101CommandLine(t *testing.T) {
	dir := t.TempDir()
	for _, h := range []string{"-h", "-help", "--help"} {
		var errb bytes.Buffer
		if code := run([]string{h}, strings.NewReader(""), &errb); code != 0 || !strings.HasPrefix(errb.String(), "usage: kvplot ") {
			t.Errorf("%s: exit %d, %q", h, code, errb.String())
		}
	}

	out := filepath.Join(dir, "stray.png")
	if code := run([]string{"frag", "-o", out, "extra"}, strings.NewReader(fragJSON), &bytes.Buffer{}); code != 2 {
		t.Errorf("a stray argument: exit %d, want 2", code)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a stray argument: drawn anyway (%v)", err)
	}

	out = filepath.Join(dir, "titled.svg")
	var errb bytes.Buffer
	if code := run([]string{"cache", "-o", out, "-title", "Audit 101 hit rates"}, strings.NewReader(cacheJSON), &errb); code != 0 {
		t.Fatalf("cache -title: exit %d: %s", code, errb.String())
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.Contains(b, []byte(">Audit 101 hit rates</text>")) {
		t.Errorf("cache -title: the title is not in the SVG (%v)", err)
	}

	// The formats the refusal of another name lists.
	for _, ext := range []string{".png", ".svg", ".pdf", ".eps", ".jpg", ".jpeg", ".tif", ".tiff", ".tex"} {
		out := filepath.Join(dir, "quant"+ext)
		errb.Reset()
		if code := run([]string{"quant", "-o", out}, strings.NewReader(quantJSON), &errb); code != 0 {
			t.Errorf("%s: exit %d: %s", ext, code, errb.String())
		} else if st, err := os.Stat(out); err != nil || st.Size() == 0 {
			t.Errorf("%s: nothing written (%v)", ext, err)
		}
	}
}

// TestAudit101JSONLines: lines of blanks are skipped, a long line is read
// whole (kvbench's lines are short, but nothing bounds a line below
// 16 MiB), and an error names its line counted from 1, blank lines
// included.
func TestAudit101JSONLines(t *testing.T) {
	dir := t.TempDir()
	lines := strings.Split(strings.TrimSpace(cacheJSON), "\n")
	padded := strings.Replace(lines[0], `"policy"`, strings.Repeat(" ", 100<<10)+`"policy"`, 1)
	in := lines[0] + "\n  \t \n" + padded + "\n\n" + strings.Join(lines[1:], "\n") + "\n"
	var errb bytes.Buffer
	if code := run([]string{"cache", "-o", filepath.Join(dir, "cache.png")}, strings.NewReader(in), &errb); code != 0 {
		t.Errorf("blank and long lines: exit %d: %.200s", code, errb.String())
	}

	var n int
	if err := jsonLines([]byte(in), func(b []byte) error { n++; return nil }); err != nil || n != len(lines)+1 {
		t.Errorf("jsonLines: %d lines, %v; want %d", n, err, len(lines)+1)
	}

	bad := lines[0] + "\n \n{\n"
	errb.Reset()
	if code := run([]string{"cache", "-o", filepath.Join(dir, "bad.png")}, strings.NewReader(bad), &errb); code != 2 || !strings.Contains(errb.String(), ": line 3: ") {
		t.Errorf("a bad third line: exit %d, %q", code, errb.String())
	}
}

// TestAudit101ReadBack: the readers keep each figure in its field: frag's
// internal and external waste, quant's longest context by default and
// exactly the one -context asks for (a type measured at no context is
// left out), hybrid's replay size, W1 bases and each mode's preemptions.
func TestAudit101ReadBack(t *testing.T) {
	rs, err := readFrag([]byte(`{"study":"frag","model":"paged","block_size":16,"token_states":0.6,"reserved":0.05,"internal":0.1,"external":0.2,"free":0.05}`))
	if err != nil || len(rs) != 1 || rs[0].Internal != 0.1 || rs[0].External != 0.2 || rs[0].BlockSize != 16 {
		t.Errorf("frag read back %+v, %v", rs, err)
	}

	in := strings.TrimSuffix(quantJSON, "]") + `,
{"type":"none","bytes_per_token":1,"errors":[]}]`
	for _, tt := range []struct {
		context, wantContext int
		fp16, q4             float64
	}{
		{0, 4096, 0.002, 0.42},
		{1024, 1024, 0.001, 0.4},
		{4096, 4096, 0.002, 0.42},
	} {
		pts, err := readQuant([]byte(in), tt.context)
		if err != nil || len(pts) != 2 {
			t.Errorf("quant -context %d: %+v, %v", tt.context, pts, err)
			continue
		}
		if pts[0].Context != tt.wantContext || pts[1].Context != tt.wantContext || pts[0].MeanError != tt.fp16 || pts[1].MeanError != tt.q4 || pts[1].BytesPerToken != 36864 {
			t.Errorf("quant -context %d: %+v", tt.context, pts)
		}
	}
	if code := run([]string{"quant", "-o", filepath.Join(t.TempDir(), "q.png")}, strings.NewReader(in), &bytes.Buffer{}); code != 0 {
		t.Errorf("quant with a type of no errors: exit %d", code)
	}

	preempt := `{"blocks":8192,"requests":2000,"window":256,"w1_vllm_admitted_hit_tokens":756976,"w1_default_admitted_hit_tokens":761904,"vllm_preemptions":3,"default_preemptions":5}` + "\n"
	r, err := readHybrid([]byte(hybridJSON + preempt))
	if err != nil || r.Requests != 2000 || r.Blocks != 8192 || r.SingleVLLM.AdmittedHitTokens != 756976 || r.SingleDefault.AdmittedHitTokens != 761904 {
		t.Fatalf("hybrid read back %+v, %v", r, err)
	}
	if last := r.Rows[len(r.Rows)-1]; last.Window != 256 || last.VLLM.Preemptions != 3 || last.Default.Preemptions != 5 {
		t.Errorf("hybrid preemptions read back %+v", last)
	}
	// A line with the W1 figures but no window, state model or layout is
	// no hybrid line.
	if _, err := readHybrid([]byte(hybridJSON + `{"blocks":8192,"requests":2000,"w1_vllm_admitted_hit_tokens":1}` + "\n")); err == nil {
		t.Error("a line of no kind taken")
	}
}
