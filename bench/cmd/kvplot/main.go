// Command kvplot draws the figures of kvbench's studies from their -json
// output, so that kvbench itself links no plotting code:
//
//	go run ./bench/cmd/kvbench frag -json | go run ./bench/cmd/kvplot frag -o frag.png
//	go run ./bench/cmd/kvbench cache -json | go run ./bench/cmd/kvplot cache -o cache.png
//	go run ./bench/cmd/kvbench quant -json | go run ./bench/cmd/kvplot quant -o quant.png
//	go run ./bench/cmd/kvbench hybrid -json | go run ./bench/cmd/kvplot hybrid -o hybrid.png
//
// frag draws stacked bars of the KV budget by use (PNG); cache the hit rate
// against capacity per policy, quant memory against attention error and
// hybrid the prefix hits of hybrid models against the window (.png, .svg
// or .pdf by the extension). The exit code is 0 on success and
// for -h, 1 when drawing fails, 2 for bad flags or input.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pagedkv/pagedkv/bench"
	"github.com/pagedkv/pagedkv/bench/figure"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stderr))
}

// errInput marks input or flags that do not fit: exit code 2.
var errInput = errors.New("kvplot: bad input")

// plotFormats are the extensions gonum/plot's Save writes.
var plotFormats = map[string]bool{".png": true, ".svg": true, ".pdf": true, ".eps": true,
	".jpg": true, ".jpeg": true, ".tif": true, ".tiff": true, ".tex": true}

func run(args []string, stdin io.Reader, stderr io.Writer) int {
	err := plot(args, stdin, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errInput):
		fmt.Fprintln(stderr, err)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "kvplot:", err)
		return 1
	}
	return 0
}

func plot(args []string, stdin io.Reader, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "usage: kvplot frag|cache|quant|hybrid -o FILE < kvbench-json\n\ndraws a kvbench study's figure from its -json output\n\nexample:\n  kvbench frag -json | kvplot frag -o frag.png\n\nflags:")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		usage()
		if len(args) == 0 {
			return fmt.Errorf("%w: no kind given", errInput)
		}
		return flag.ErrHelp
	}
	kind := args[0]
	fs := flag.NewFlagSet("kvplot "+kind, flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "output `file` (required)")
	title := fs.String("title", "Prefix-cache hit rate against capacity", "cache: the figure's title")
	context := fs.Int("context", 0, "quant: the context length to draw (default the longest)")
	fs.Usage = func() { usage(); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errInput, err)
	}
	if *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("%w: want kvplot %s -o FILE, and no other argument", errInput, kind)
	}
	// frag draws on a PNG canvas whatever the name; the others in the
	// format the name's extension says. Refuse a name that promises
	// another format before reading anything or creating the file.
	switch ext := strings.ToLower(filepath.Ext(*out)); {
	case kind == "frag" && ext != ".png":
		return fmt.Errorf("%w: kvplot frag draws a PNG: -o %q wants a .png name", errInput, *out)
	case kind != "frag" && !plotFormats[ext]:
		return fmt.Errorf("%w: -o %q: want a .png, .svg or .pdf name (or .eps, .jpg, .jpeg, .tif, .tiff, .tex)", errInput, *out)
	}
	in, err := io.ReadAll(stdin)
	if err != nil {
		return err
	}
	switch kind {
	case "frag":
		rs, err := readFrag(in)
		if err != nil {
			return err
		}
		return figure.Frag(*out, rs)
	case "cache":
		var rs []bench.CacheResult
		if err := jsonLines(in, func(b []byte) error {
			var r bench.CacheResult
			err := json.Unmarshal(b, &r)
			rs = append(rs, r)
			return err
		}); err != nil {
			return err
		}
		return figure.Cache(*out, *title, rs)
	case "quant":
		pts, err := readQuant(in, *context)
		if err != nil {
			return err
		}
		return figure.Quant(*out, pts)
	case "hybrid":
		r, err := readHybrid(in)
		if err != nil {
			return err
		}
		return figure.Hybrid(*out, r)
	}
	return fmt.Errorf("%w: unknown kind %q (want frag, cache, quant or hybrid)", errInput, kind)
}

// jsonLines calls f for each non-empty line of b.
func jsonLines(b []byte, f func([]byte) error) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<24)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if err := f(sc.Bytes()); err != nil {
			return fmt.Errorf("%w: line %d: %w", errInput, line, err)
		}
	}
	return sc.Err()
}

// readFrag reads kvbench frag -json lines; sharing lines are skipped.
func readFrag(in []byte) ([]bench.FragResult, error) {
	var rs []bench.FragResult
	err := jsonLines(in, func(b []byte) error {
		var r struct {
			Study, Model, Allocator            string
			BlockSize                          int     `json:"block_size"`
			TokenStates                        float64 `json:"token_states"`
			Reserved, Internal, External, Free float64
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		if r.Study != "frag" {
			return nil
		}
		m, err := bench.ParseMemoryModel(r.Model)
		if err != nil {
			return err
		}
		var a bench.Allocator
		if r.Allocator != "" {
			if a, err = bench.ParseAllocator(r.Allocator); err != nil {
				return err
			}
		}
		rs = append(rs, bench.FragResult{Model: m, BlockSize: r.BlockSize, Allocator: a,
			TokenStates: r.TokenStates, Reserved: r.Reserved, Internal: r.Internal, External: r.External, Free: r.Free})
		return nil
	})
	if err == nil && len(rs) == 0 {
		err = fmt.Errorf("%w: no frag rows (want the output of kvbench frag -json)", errInput)
	}
	return rs, err
}

// readQuant reads kvbench quant -json (one array) and keeps the errors at
// the context length asked for, or the longest.
func readQuant(in []byte, context int) ([]figure.QuantPoint, error) {
	var rows []struct {
		Type          string `json:"type"`
		BytesPerToken int64  `json:"bytes_per_token"`
		Errors        []struct {
			Context int     `json:"context"`
			Mean    float64 `json:"mean_rel_err"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(in, &rows); err != nil {
		return nil, fmt.Errorf("%w: want the output of kvbench quant -json: %w", errInput, err)
	}
	var pts []figure.QuantPoint
	for _, r := range rows {
		if len(r.Errors) == 0 {
			continue
		}
		e := r.Errors[len(r.Errors)-1]
		if context > 0 {
			e.Context = 0
			for _, x := range r.Errors {
				if x.Context == context {
					e = x
				}
			}
			if e.Context == 0 {
				return nil, fmt.Errorf("%w: type %s has no error at context %d", errInput, r.Type, context)
			}
		}
		pts = append(pts, figure.QuantPoint{Type: r.Type, BytesPerToken: r.BytesPerToken, Context: e.Context, MeanError: e.Mean})
	}
	return pts, nil
}
