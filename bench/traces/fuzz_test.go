package traces_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pagedkv/pagedkv/bench/traces"
)

// checkRead is what every successful read must give: lengths and arrivals
// that are not negative. A failed read must wrap ErrFormat and return no
// requests.
func checkRead(t *testing.T, reqs []traces.Request, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, traces.ErrFormat) {
			t.Fatalf("error %v does not wrap ErrFormat", err)
		}
		if reqs != nil {
			t.Fatalf("error %v with %d requests", err, len(reqs))
		}
		return
	}
	for i, q := range reqs {
		if q.InputTokens < 0 || q.OutputTokens < 0 || q.Arrival < 0 {
			t.Fatalf("request %d: %+v", i, q)
		}
	}
}

// FuzzReadAzure: malformed CSV is an ErrFormat, never a panic; arrivals
// are measured from the earliest timestamp, so one of them is 0.
func FuzzReadAzure(f *testing.F) {
	for _, s := range []string{
		"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,10,2\n2023-11-16 18:15:45,20,3\n",
		"\ufeffGeneratedTokens,TIMESTAMP,ContextTokens,Extra\r\n2,2024-05-10 00:00:00.1+00:00,10,x\r\n",
		"timestamp,contexttokens,generatedtokens\n5.5,10,2\n\n1e9,20,3\n",
		"TIMESTAMP,ContextTokens,GeneratedTokens\n1970-01-01 00:00:00.0,1,1\n2261-12-31 23:59:59.0,1,1\n",
		"TIMESTAMP,ContextTokens,GeneratedTokens\n\"0\",\"1\n\",2\n",
		"TIMESTAMP,ContextTokens,GeneratedTokens\n0,-1,1\n",
		"TIMESTAMP,ContextTokens,GeneratedTokens\n1,1,-1\n",
		"TIMESTAMP,ContextTokens,GeneratedTokens\n-1,1,1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		reqs, err := traces.ReadAzure(bytes.NewReader(in))
		checkRead(t, reqs, err)
		if err == nil && len(reqs) > 0 {
			earliest := reqs[0].Arrival
			for _, q := range reqs {
				earliest = min(earliest, q.Arrival)
			}
			if earliest != 0 {
				t.Fatalf("earliest arrival %v, want 0", earliest)
			}
		}
	})
}

// FuzzReadMooncake: malformed JSONL is an ErrFormat, never a panic.
func FuzzReadMooncake(f *testing.F) {
	for _, s := range []string{
		`{"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0, 1, 2]}` + "\n" + `{"timestamp": 27, "input_length": 1, "output_length": 0}`,
		`{"timestamp": 9223372036854, "input_length": 2, "output_length": 1}`,
		`{"timestamp": 1, "input_length": 2, "output_length": 1, "hash_ids": null}` + "\n\n  \n",
		`{"timestamp": -1, "input_length": 2, "output_length": 1}`,
		`{"timestamp": 1, "input_length": -2, "output_length": 1}`,
		`{"timestamp": 1, "input_length": 2, "output_length": -1}`,
		`[1, 2]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		reqs, err := traces.ReadMooncake(bytes.NewReader(in))
		checkRead(t, reqs, err)
	})
}
