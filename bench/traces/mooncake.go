package traces

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"
)

// ReadMooncake reads a Mooncake trace: one JSON object a line (blank
// lines skipped, at most 64 MiB a line) with timestamp (ms, at most 2^63
// ns), input_length, output_length and hash_ids. Requests keep the file's
// order and their own timestamps, sorted or not. A trace without a
// request, or a line that does not parse, is an ErrFormat naming the line.
func ReadMooncake(r io.Reader) ([]Request, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var out []Request
	line := 1
	for ; sc.Scan(); line++ {
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
			return nil, fmt.Errorf("%w: mooncake line %d: %w", ErrFormat, line, err)
		}
		if rec.Timestamp == nil || rec.InputLength == nil || rec.OutputLength == nil {
			return nil, fmt.Errorf("%w: mooncake line %d: missing timestamp, input_length or output_length", ErrFormat, line)
		}
		if *rec.InputLength < 0 || *rec.OutputLength < 0 || *rec.Timestamp < 0 {
			return nil, fmt.Errorf("%w: mooncake line %d: negative length or timestamp", ErrFormat, line)
		}
		if *rec.Timestamp > math.MaxInt64/int64(time.Millisecond) {
			return nil, fmt.Errorf("%w: mooncake line %d: timestamp %d ms does not fit a time.Duration", ErrFormat, line, *rec.Timestamp)
		}
		out = append(out, Request{
			Arrival:      time.Duration(*rec.Timestamp) * time.Millisecond,
			InputTokens:  *rec.InputLength,
			OutputTokens: *rec.OutputLength,
			HashIDs:      rec.HashIDs,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: mooncake line %d: %w", ErrFormat, line, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: mooncake: no requests", ErrFormat)
	}
	return out, nil
}
