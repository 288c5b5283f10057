package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunFleetLayoutBothScorings(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"fleet", "-requests", "300", "-redis", "", "-layout", "full window:128", "-scoring", "both"}
	require.Equal(t, 0, run(args, &out, &errb), errb.String())
	s := out.String()
	assert.Contains(t, s, "KV cache groups of every server: b512 full window:128")
	assert.Contains(t, s, "| router | scoring | over-reports (requests) | over-reported tokens | away (no hit anywhere) | servers per family | hit rate |")
	for _, r := range []string{"prefix-aware", "cost-aware", "cost-aware, pending"} {
		assert.Contains(t, s, "| "+r+" | aware | ", r)
		assert.Contains(t, s, "| "+r+" | blind | ", r)
		assert.NotContains(t, s, "| "+r+" | exact | ", r)
	}
	// The cache-blind routers run once.
	assert.Equal(t, 1, strings.Count(s, "| round-robin | - | - | - | - | - |"), s)
}

// -scoring all adds the routers reading the exact hit alone, which send
// some requests away from the servers holding their family: the study's
// diagnostic of why they hit less.
func TestRunFleetLayoutAllScorings(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"fleet", "-requests", "600", "-redis", "", "-layout", "full state", "-scoring", "all", "-json"}
	require.Equal(t, 0, run(args, &out, &errb), errb.String())
	rows := map[string]fleetRow{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r fleetRow
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		rows[r.Router+"/"+r.Scoring] = r
	}
	for _, r := range []string{"prefix-aware", "cost-aware"} {
		for _, scoring := range []string{"aware", "exact", "blind"} {
			require.Contains(t, rows, r+"/"+scoring)
		}
		exact, aware := rows[r+"/exact"], rows[r+"/aware"]
		assert.Positive(t, exact.AwayNoHit, r)
		assert.LessOrEqual(t, exact.AwayNoHit, exact.AwayRoutes, r)
		assert.Less(t, aware.AwayRoutes, exact.AwayRoutes, r)
		assert.Greater(t, exact.FamilyServers, aware.FamilyServers, r)
		assert.Zero(t, rows[r+"/blind"].AwayNoHit, "%s: blind scores are the affinity", r)
	}
}

func TestRunFleetLayoutAsJSON(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"fleet", "-requests", "200", "-redis", "", "-layout", "b512 full state", "-state-pages", "2", "-scoring", "blind", "-json"}
	require.Equal(t, 0, run(args, &out, &errb), errb.String())
	sc := bufio.NewScanner(&out)
	n := 0
	for sc.Scan() {
		var r fleetRow
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		n++
		assert.Equal(t, "b512 full state", r.Layout)
		if r.Router == "prefix-aware" || strings.HasPrefix(r.Router, "cost-aware") {
			assert.Equal(t, "blind", r.Scoring, r.Router)
		} else if r.Router == "random" || r.Router == "round-robin" || r.Router == "least-loaded" {
			assert.Empty(t, r.Scoring, r.Router)
			assert.Zero(t, r.OverReports, r.Router)
		}
	}
	assert.Len(t, fleetRouterRows, n)
}

func TestRunFleetRefusesBadLayoutFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-layout", "full banana"}, `-layout "full banana"`},
		{[]string{"-layout", "full window:0"}, "window 0"},
		{[]string{"-layout", "b16 full window:128"}, "blocks of 16 tokens; the fleet's are 512"},
		{[]string{"-layout", "window:128 full"}, "group 0 is window"},
		{[]string{"-scoring", "blind"}, "needs -layout"},
		{[]string{"-layout", "full state", "-scoring", "maybe"}, `-scoring "maybe"`},
		{[]string{"-layout", "full state", "-state-pages", "0"}, "-state-pages 0"},
		{[]string{"-layout", "full state", "-blocks", "64", "-state-pages", "64"}, "-state-pages 64"},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"fleet", "-requests", "10", "-redis", ""}, c.args...)
		assert.Equal(t, 2, run(args, &out, &errb), "%v", c.args)
		assert.Contains(t, errb.String(), c.msg, "%v", c.args)
		assert.Empty(t, out.String(), "%v", c.args)
	}
}
