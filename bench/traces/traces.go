package traces

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Request is one request of a trace.
type Request struct {
	// Arrival is when the request arrives: for Azure traces, the time
	// since the trace's earliest request; for Mooncake traces, the
	// record's own timestamp, which the published traces count from 0.
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

// Attribution lines of the embedded traces.
const (
	AzureAttribution    = "Azure LLM inference trace 2023, Microsoft Azure Public Dataset, CC-BY-4.0"
	MooncakeAttribution = "Mooncake FAST'25 synthetic trace, kvcache-ai/Mooncake, Apache-2.0"
)

// ErrFormat is returned (wrapped, with the line) for a trace that does not
// parse.
var ErrFormat = errors.New("traces: bad trace")

//go:embed azure_conv_2023.csv
var azureConv []byte

//go:embed mooncake_synthetic.jsonl
var mooncakeSynthetic []byte

var (
	azureOnce, mooncakeOnce sync.Once
	azureReqs, mooncakeReqs []Request
)

// AzureConv returns the embedded Azure conversation trace (19,366
// requests). The slice is shared: do not modify it.
func AzureConv() []Request {
	azureOnce.Do(func() {
		var err error
		azureReqs, err = ReadAzure(bytes.NewReader(azureConv))
		if err != nil {
			panic("traces: embedded Azure trace: " + err.Error())
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
			panic("traces: embedded Mooncake trace: " + err.Error())
		}
	})
	return mooncakeReqs
}

// Format returns the format a path's extension names: "azure" for .csv,
// "mooncake" for .jsonl and .json, "" otherwise.
func Format(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return "azure"
	case ".jsonl", ".json":
		return "mooncake"
	}
	return ""
}

// ReadFile reads a trace file. format is "azure", "mooncake" or "" to
// choose by extension (see Format).
func ReadFile(path, format string) ([]Request, error) {
	if format == "" {
		if format = Format(path); format == "" {
			return nil, fmt.Errorf("%w: cannot tell the format of %s by its extension; give the format (azure or mooncake)", ErrFormat, path)
		}
	}
	if format != "azure" && format != "mooncake" {
		return nil, fmt.Errorf("%w: unknown trace format %q (want azure or mooncake)", ErrFormat, format)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("traces: %w", err)
	}
	defer f.Close()
	if format == "azure" {
		return ReadAzure(f)
	}
	return ReadMooncake(f)
}
