package bench

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Request is one request of a trace.
type Request struct {
	// Arrival is the time since the trace's first request.
	Arrival time.Duration
	// InputTokens and OutputTokens are the prompt and generated lengths.
	InputTokens, OutputTokens int
	// HashIDs name the request's prefix blocks (Mooncake traces only): two
	// requests whose lists start with the same IDs share that prefix. The
	// last ID may cover a partial block.
	HashIDs []int64
}

// MooncakeBlockSize is the number of tokens one Mooncake hash ID covers.
const MooncakeBlockSize = 512

//go:embed traces/azure_conv_2023.csv
var azureConv []byte

//go:embed traces/mooncake_synthetic.jsonl
var mooncakeSynthetic []byte

// Attribution lines of the embedded traces.
const (
	AzureAttribution    = "Azure LLM inference trace 2023, Microsoft Azure Public Dataset, CC-BY-4.0"
	MooncakeAttribution = "Mooncake FAST'25 synthetic trace, kvcache-ai/Mooncake, Apache-2.0"
)

var (
	azureOnce, mooncakeOnce sync.Once
	azureReqs, mooncakeReqs []Request
)

// AzureConv returns the embedded Azure conversation trace (19,366 requests).
// The slice is shared: do not modify it.
func AzureConv() []Request {
	azureOnce.Do(func() {
		var err error
		azureReqs, err = ReadAzure(bytes.NewReader(azureConv))
		if err != nil {
			panic("bench: embedded Azure trace: " + err.Error())
		}
	})
	return azureReqs
}

// MooncakeSynthetic returns the embedded Mooncake synthetic trace (3,993
// requests). The slice is shared: do not modify it.
func MooncakeSynthetic() []Request {
	mooncakeOnce.Do(func() {
		var err error
		mooncakeReqs, err = ReadMooncake(bytes.NewReader(mooncakeSynthetic))
		if err != nil {
			panic("bench: embedded Mooncake trace: " + err.Error())
		}
	})
	return mooncakeReqs
}

// ReadAzure reads an Azure LLM inference trace in CSV form with the header
// TIMESTAMP,ContextTokens,GeneratedTokens.
func ReadAzure(r io.Reader) ([]Request, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 3
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("bench: azure trace header: %w", err)
	}
	if strings.TrimPrefix(head[0], "\ufeff") != "TIMESTAMP" || head[1] != "ContextTokens" || head[2] != "GeneratedTokens" {
		return nil, fmt.Errorf("bench: azure trace header %q, want TIMESTAMP,ContextTokens,GeneratedTokens", head)
	}
	var out []Request
	var t0 time.Time
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("bench: azure trace: %w", err)
		}
		ts, err := time.Parse("2006-01-02 15:04:05.9999999", rec[0])
		if err != nil {
			return nil, fmt.Errorf("bench: azure trace line %d: timestamp: %w", line, err)
		}
		in, err1 := strconv.Atoi(rec[1])
		outTok, err2 := strconv.Atoi(rec[2])
		if err1 != nil || err2 != nil || in < 0 || outTok < 0 {
			return nil, fmt.Errorf("bench: azure trace line %d: bad token counts %q, %q", line, rec[1], rec[2])
		}
		if len(out) == 0 {
			t0 = ts
		}
		out = append(out, Request{Arrival: ts.Sub(t0), InputTokens: in, OutputTokens: outTok})
	}
}

// ReadMooncake reads a Mooncake trace: one JSON object a line with
// timestamp (ms), input_length, output_length and hash_ids.
func ReadMooncake(r io.Reader) ([]Request, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var out []Request
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var rec struct {
			Timestamp    *int64  `json:"timestamp"`
			InputLength  *int    `json:"input_length"`
			OutputLength *int    `json:"output_length"`
			HashIDs      []int64 `json:"hash_ids"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("bench: mooncake trace line %d: %w", line, err)
		}
		if rec.Timestamp == nil || rec.InputLength == nil || rec.OutputLength == nil {
			return nil, fmt.Errorf("bench: mooncake trace line %d: missing timestamp, input_length or output_length", line)
		}
		if *rec.InputLength < 0 || *rec.OutputLength < 0 {
			return nil, fmt.Errorf("bench: mooncake trace line %d: negative length", line)
		}
		out = append(out, Request{
			Arrival:      time.Duration(*rec.Timestamp) * time.Millisecond,
			InputTokens:  *rec.InputLength,
			OutputTokens: *rec.OutputLength,
			HashIDs:      rec.HashIDs,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: mooncake trace: %w", err)
	}
	return out, nil
}

// ReadTraceFile reads a trace file. format is "azure", "mooncake" or "" to
// choose by extension (.csv is Azure, .jsonl and .json are Mooncake).
func ReadTraceFile(path, format string) ([]Request, error) {
	if format == "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".csv":
			format = "azure"
		case ".jsonl", ".json":
			format = "mooncake"
		default:
			return nil, fmt.Errorf("bench: cannot tell the format of %s by its extension; give -format azure or mooncake", path)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	switch format {
	case "azure":
		return ReadAzure(f)
	case "mooncake":
		return ReadMooncake(f)
	}
	return nil, fmt.Errorf("bench: unknown trace format %q (want azure or mooncake)", format)
}
