package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/pagedkv/pagedkv/eviction"
)

// CachePolicies resolves policy names for the study: eviction policy names
// (see eviction.Names), BeladyName for the oracle, or "all" for every
// eviction policy followed by the oracle. Names are case-insensitive;
// duplicates are dropped.
func CachePolicies(names []string) ([]CachePolicy, error) {
	var out []CachePolicy
	add := func(p CachePolicy) {
		if !slices.ContainsFunc(out, func(q CachePolicy) bool { return q.Name == p.Name }) {
			out = append(out, p)
		}
	}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		switch n {
		case "":
			continue
		case "all":
			for _, e := range eviction.Names() {
				f, _ := eviction.ByName(e)
				add(CachePolicy{Name: e, Factory: f})
			}
			add(CachePolicy{Name: BeladyName})
		case BeladyName:
			add(CachePolicy{Name: BeladyName})
		default:
			f, err := eviction.ByName(n)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrCacheStudy, err)
			}
			add(CachePolicy{Name: n, Factory: f})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no policy named", ErrCacheStudy)
	}
	return out, nil
}

// CacheWinner is the best online policy at one capacity (the Belady oracle
// excluded) and its margin over LRU.
type CacheWinner struct {
	// CapacityTokens is the cache capacity in tokens.
	CapacityTokens int64
	// Policy names the winning online policy.
	Policy string
	// HitRate is the winner's hit rate (CacheResult.HitRate).
	HitRate float64
	// Tied counts the other online policies with the same hit rate.
	Tied int
	// LRU is LRU's hit rate at this capacity, NaN if LRU was not replayed.
	LRU float64
}

// CacheWinners returns the winner at each capacity of results, in the
// order capacities first appear. Ties go to the policy listed first.
func CacheWinners(results []CacheResult) []CacheWinner {
	var out []CacheWinner
	at := map[int64]int{}
	for _, r := range results {
		i, ok := at[r.CapacityTokens]
		if !ok {
			i = len(out)
			at[r.CapacityTokens] = i
			out = append(out, CacheWinner{CapacityTokens: r.CapacityTokens, HitRate: -1, LRU: math.NaN()})
		}
		w := &out[i]
		if r.Policy == "lru" {
			w.LRU = r.HitRate
		}
		switch {
		case r.Policy == BeladyName:
		case r.HitRate > w.HitRate:
			w.Policy, w.HitRate, w.Tied = r.Policy, r.HitRate, 0
		case r.HitRate == w.HitRate:
			w.Tied++
		}
	}
	return slices.DeleteFunc(out, func(w CacheWinner) bool { return w.Policy == "" })
}

// WriteCacheTable writes results as a Markdown table: one row per policy,
// one column per capacity, then the infinite-cache maximum, and a line per
// capacity naming the winner and its margin over LRU. With a host tier a
// cell reads "combined (device + host)".
func WriteCacheTable(w io.Writer, results []CacheResult) error {
	var caps []int64
	blocks := map[int64]int{}
	host := map[int64]int64{}
	maxRate := map[int64]float64{}
	var policies []string
	res := map[string]map[int64]CacheResult{}
	tiered := false
	for _, r := range results {
		if !slices.Contains(caps, r.CapacityTokens) {
			caps = append(caps, r.CapacityTokens)
		}
		blocks[r.CapacityTokens] = r.CapacityBlocks
		host[r.CapacityTokens] = r.HostTokens
		maxRate[r.CapacityTokens] = r.MaxHitRate
		if res[r.Policy] == nil {
			policies = append(policies, r.Policy)
			res[r.Policy] = map[int64]CacheResult{}
		}
		res[r.Policy][r.CapacityTokens] = r
		tiered = tiered || r.HostBlocks > 0
	}
	var b strings.Builder
	b.WriteString("| policy |")
	for _, c := range caps {
		fmt.Fprintf(&b, " %s tokens (%s blocks)", Thousands(c), Thousands(int64(blocks[c])))
		if host[c] > 0 {
			fmt.Fprintf(&b, " + host %s", Thousands(host[c]))
		}
		b.WriteString(" |")
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---:|", len(caps)))
	b.WriteString("\n")
	for _, p := range policies {
		name := p
		if p == BeladyName {
			name = "belady (oracle)"
		}
		fmt.Fprintf(&b, "| %s |", name)
		for _, c := range caps {
			r, ok := res[p][c]
			switch {
			case !ok:
				b.WriteString(" |")
			case tiered:
				fmt.Fprintf(&b, " %.3f (%.3f + %.3f) |", r.HitRate, r.DeviceHitRate, r.HostHitRate)
			default:
				fmt.Fprintf(&b, " %.3f |", r.HitRate)
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("| infinite cache |")
	for _, c := range caps {
		fmt.Fprintf(&b, " %.3f |", maxRate[c])
	}
	b.WriteString("\n")
	b.WriteString("\n")
	for _, win := range CacheWinners(results) {
		fmt.Fprintf(&b, "%s tokens: best %s %.3f", Thousands(win.CapacityTokens), win.Policy, win.HitRate)
		if win.Tied > 0 {
			fmt.Fprintf(&b, " (tied with %d more)", win.Tied)
		}
		switch {
		case math.IsNaN(win.LRU):
		case win.LRU > 0:
			fmt.Fprintf(&b, ", %+.3f over lru (%+.1f%%)", win.HitRate-win.LRU, 100*(win.HitRate-win.LRU)/win.LRU)
		default: // no relative gain over a hit rate of 0
			fmt.Fprintf(&b, ", %+.3f over lru", win.HitRate-win.LRU)
		}
		if m := maxRate[win.CapacityTokens]; m > 0 {
			fmt.Fprintf(&b, ", %.0f%% of the maximum", 100*win.HitRate/m)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Thousands formats n with comma thousands separators, as the study tables
// print counts (1,234,567).
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
