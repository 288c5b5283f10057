package traces

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// timeLayouts are the TIMESTAMP forms of the Azure releases: 2023 has
// "2023-11-16 18:15:46.6805900", 2024 adds a zone offset.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999 Z07:00",
	time.RFC3339Nano,
}

// ReadAzure reads an Azure LLM inference trace in CSV form: a header that
// names TIMESTAMP, ContextTokens and GeneratedTokens (in any order and
// case, other columns ignored, a name given twice read from its first
// column), then one request a row; blank lines are skipped. TIMESTAMP is
// a date and time from 1970 to 2261, with or without a zone, or a number
// of seconds from 0 to 10^9, one form for the whole file. Arrivals
// are measured from the earliest timestamp, so rows need not be sorted. A
// trace without a request, or a row that does not parse, is an ErrFormat
// naming the file's line.
func ReadAzure(r io.Reader) ([]Request, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: azure header: %w", ErrFormat, err)
	}
	col := map[string]int{"timestamp": -1, "contexttokens": -1, "generatedtokens": -1}
	for i, h := range head {
		name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if j, ok := col[name]; ok && j < 0 {
			col[name] = i
		}
	}
	for name, i := range col {
		if i < 0 {
			return nil, fmt.Errorf("%w: azure header %q has no %s column (want TIMESTAMP,ContextTokens,GeneratedTokens)", ErrFormat, head, name)
		}
	}
	ti, ci, gi := col["timestamp"], col["contexttokens"], col["generatedtokens"]
	need := max(ti, ci, gi) + 1
	var out []Request
	var stamps []time.Duration // since an arbitrary origin
	firstDate := false         // the form of the first row's TIMESTAMP
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: azure: %w", ErrFormat, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		// The record's line in the file: encoding/csv skips empty lines
		// and a quoted field may span lines, so records are not lines.
		line, _ := cr.FieldPos(0)
		if len(rec) < need {
			return nil, fmt.Errorf("%w: azure line %d: %d fields, want at least %d", ErrFormat, line, len(rec), need)
		}
		ts, date, err := parseStamp(strings.TrimSpace(rec[ti]))
		if err != nil {
			return nil, fmt.Errorf("%w: azure line %d: timestamp %q", ErrFormat, line, rec[ti])
		}
		if len(stamps) == 0 {
			firstDate = date
		} else if date != firstDate {
			// A date counts from the epoch, a number from the trace's
			// own origin: their difference means nothing.
			return nil, fmt.Errorf("%w: azure line %d: timestamp %q mixes dates and numbers of seconds", ErrFormat, line, rec[ti])
		}
		in, err1 := strconv.Atoi(strings.TrimSpace(rec[ci]))
		outTok, err2 := strconv.Atoi(strings.TrimSpace(rec[gi]))
		if err1 != nil || err2 != nil || in < 0 || outTok < 0 {
			return nil, fmt.Errorf("%w: azure line %d: bad token counts %q, %q", ErrFormat, line, rec[ci], rec[gi])
		}
		stamps = append(stamps, ts)
		out = append(out, Request{InputTokens: in, OutputTokens: outTok})
	}
	if len(stamps) == 0 {
		return nil, fmt.Errorf("%w: azure: no requests after the header", ErrFormat)
	}
	t0 := stamps[0]
	for _, s := range stamps {
		t0 = min(t0, s)
	}
	for i, s := range stamps {
		out[i].Arrival = s - t0
	}
	return out, nil
}

// parseStamp returns a timestamp as a duration since a fixed origin (the
// Unix epoch for dates), which is all arrivals need, and whether it was a
// date. Dates must fall in 1970 to 2261: their nanoseconds since the epoch
// then fit an int64, and so does the difference of any two timestamps.
func parseStamp(s string) (time.Duration, bool, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			if y := t.UTC().Year(); y < 1970 || y > 2261 {
				return 0, true, fmt.Errorf("date outside 1970-2261")
			}
			return time.Duration(t.UnixNano()), true, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsNaN(f) || f > 1e9 {
		return 0, false, fmt.Errorf("not a timestamp")
	}
	return time.Duration(f * float64(time.Second)), false, nil
}
