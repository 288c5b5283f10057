package fleettest_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/fleet/fleettest"
	"github.com/pagedkv/pagedkv/paged"
)

// Audit 154 checks more of the checker (the hundred-and-sixth round of
// mutation testing): CheckLayouts fails on backends that record another
// layout's text, take a stale SetLayout without a word or answer LookupAll
// without states (in child processes, through audit 90's
// TestAudit90Child), CheckHybridScores counts as hits only the
// admissions that hit, and HybridPrompt draws tails of its own.

// faulty154 is a fleet.Memory broken one way (fault154) in its layout
// records.
type faulty154 struct {
	*fleet.Memory
	fault fault154
}

// fault154 names one way a faulty154 backend misbehaves.
type fault154 int

const (
	recordsFirstWords fault154 = iota // SetLayout records only the layout's first two words
	staleIgnored                      // a SetLayout from a stale state succeeds, setting nothing
	noStates                          // LookupAll answers no states
)

func (b *faulty154) SetLayout(server fleet.ServerID, old fleet.StreamState, layout string, next fleet.StreamState) (fleet.StreamState, error) {
	switch b.fault {
	case recordsFirstWords:
		if w := strings.Fields(layout); len(w) > 2 {
			layout = strings.Join(w[:2], " ")
		}
	case staleIgnored:
		if recs, err := b.Memory.Servers(nil); err == nil && int(server) < len(recs) && recs[server].State != old {
			return recs[server].State, nil
		}
	}
	return b.Memory.SetLayout(server, old, layout, next)
}

func (b *faulty154) LookupAll(hashes []paged.Hash, words int, dst []uint64, states []fleet.StreamState) ([]uint64, []fleet.StreamState, error) {
	start := len(states)
	dst, states, err := b.Memory.LookupAll(hashes, words, dst, states)
	if b.fault == noStates {
		states = states[:start]
	}
	return dst, states, err
}

// children154 are the checks of audit 154 that TestAudit90Child runs in a
// child process, each on a faulty154 backend, with the message the
// failure must carry.
var children154 = map[string]childCase{
	"layouts-records-first-words": {func(t *testing.T) {
		fleettest.CheckLayouts(t, &faulty154{Memory: memory(t, 8), fault: recordsFirstWords}, "layouts")
	}, `"b2 full window:3"`},
	"layouts-stale-ignored": {func(t *testing.T) {
		fleettest.CheckLayouts(t, &faulty154{Memory: memory(t, 8), fault: staleIgnored}, "layouts")
	}, "the state changed: nothing set"},
	"layouts-no-states": {func(t *testing.T) {
		fleettest.CheckLayouts(t, &faulty154{Memory: memory(t, 8), fault: noStates}, "layouts")
	}, "should have 1 item(s), but has 0"},
}

// TestAudit154SuiteFailsOnFaultyBackends: CheckLayouts fails on a backend
// that records a layout other than the one set, on one that answers a
// SetLayout from a stale state with success, setting nothing (so the
// records alone cannot tell), and on one whose LookupAll answers no
// states, each with the message of the check there to catch it.
func TestAudit154SuiteFailsOnFaultyBackends(t *testing.T) {
	eachFailsInChild(t, children154)
}

// TestAudit154HybridHitsAreAdmissionsThatHit: CheckHybridScores counts
// as hits only the compared admissions that hit some tokens: a server's
// first admission, on an empty cache, hits nothing, so some compared
// admissions are not hits.
func TestAudit154HybridHitsAreAdmissionsThatHit(t *testing.T) {
	setFlag(t, "rapid.seed", "1")
	setFlag(t, "rapid.checks", "20")
	compared, hits, corrected, _ := fleettest.CheckHybridScores(t, "hybrid", func(rt *rapid.T) fleet.Backend { return memory(rt, 1<<12) })
	require.Positive(t, hits)
	require.Less(t, hits, compared, "every compared admission counted a hit")
	require.LessOrEqual(t, corrected, compared)
}

// TestAudit154HybridPromptsEndInTokensOfTheirOwn: HybridPrompt
// sometimes ends in tokens of its own after its family's prefix (the
// prompts that leave their family, so that a hit stops inside a prompt).
func TestAudit154HybridPromptsEndInTokensOfTheirOwn(t *testing.T) {
	setFlag(t, "rapid.seed", "1")
	setFlag(t, "rapid.checks", "100")
	own := 0
	rapid.Check(t, func(rt *rapid.T) {
		for _, tok := range fleettest.HybridPrompt(rt, rapid.IntRange(1, 4).Draw(rt, "bs")) {
			if tok < 1000 {
				own++
				break
			}
		}
	})
	require.Positive(t, own, "no prompt with tokens of its own")
}
