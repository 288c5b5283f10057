package bench

import (
	"io"

	"github.com/pagedkv/pagedkv/bench/traces"
)

// The trace readers and embedded traces live in the leaf package traces,
// so programs that need only a trace do not link the studies; these names
// keep bench's API as it was.

// Request is one request of a trace (traces.Request).
type Request = traces.Request

// MooncakeBlockSize is the number of tokens one Mooncake hash ID covers.
const MooncakeBlockSize = traces.MooncakeBlockSize

// Attribution lines of the embedded traces.
const (
	AzureAttribution    = traces.AzureAttribution
	MooncakeAttribution = traces.MooncakeAttribution
)

// AzureConv returns the embedded Azure conversation trace (19,366
// requests), shared: do not modify it. See traces.AzureConv.
func AzureConv() []Request { return traces.AzureConv() }

// MooncakeSynthetic returns the embedded Mooncake synthetic trace (3,993
// requests), shared: do not modify it. See traces.MooncakeSynthetic.
func MooncakeSynthetic() []Request { return traces.MooncakeSynthetic() }

// ReadAzure reads an Azure LLM inference trace in CSV form; see
// traces.ReadAzure.
func ReadAzure(r io.Reader) ([]Request, error) { return traces.ReadAzure(r) }

// ReadMooncake reads a Mooncake JSONL trace; see traces.ReadMooncake.
func ReadMooncake(r io.Reader) ([]Request, error) { return traces.ReadMooncake(r) }

// ReadTraceFile reads a trace file; format is "azure", "mooncake" or "" to
// choose by extension. See traces.ReadFile.
func ReadTraceFile(path, format string) ([]Request, error) { return traces.ReadFile(path, format) }
