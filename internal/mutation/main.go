// Command mutation runs the mutation testing of the library's packages
// (paged's core, sched, eviction, allocator, fleet and its subpackages,
// kvmem, bench/traces, examples/server): for each mutation listed in a
// file (internal/mutation/mutations.txt), it rewrites one line of a source
// file, runs a test set and restores the file, and
// reports whether the tests caught the change (the tests that failed) or
// whether it survived. It never leaves a mutation behind: the original
// bytes are written back after each run, and on an interrupt.
//
// Run it from the repository root:
//
//	go run ./internal/mutation                      # every mutation
//	go run ./internal/mutation -only M07,M12        # some of them
//	go run ./internal/mutation -full=false          # skip the full-suite stage
//	go run ./internal/mutation -only M03 -kill Audit13  # does a test kill it?
//
// Each mutation goes through up to three stages, stopping at the first
// that fails: the property tests CI runs (-rapid.checks per target, see
// -checks), the W1 digest tests of bench against vLLM's counters, and,
// for a mutation both survive, the whole test package of the file
// mutated. A mutation of package paged runs paged's property tests, one
// of package sched (a file under sched/) sched's; -kill runs the given
// tests of the mutated file's package.
//
// rapid replays the failing runs saved under a package's testdata/rapid
// before it draws new ones: a run saved by one mutant would be tried on
// every later one, which the suite CI runs never does. The runner moves
// the saved runs of the packages it tests aside while it runs (and puts
// them back at its end, or on an interrupt), tells rapid to save none
// (-rapid.nofailfile), and removes any a run leaves all the same.
//
// A mutation of a file of any other package (eviction, allocator, fleet)
// goes through two stages: that package's property tests, then the whole
// package. Its property tests are found in its test files: the top-level
// tests that call rapid.Check or rapid.MakeCheck or name rapid.T,
// themselves or through the test files' functions (a package with none
// goes straight to the whole package). The W1 stage is paged's and
// sched's alone: bench drives them, and a mutation of a package below
// them is meant to be caught by that package's own tests. The rapid flags
// go only to a test binary that links rapid (go list -test -deps): one
// without it would fail on the unknown flag, before any test ran.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// mutation is one line's change: the occurrence'th (from 1) line of file
// holding old has old replaced by new.
type mutation struct {
	id, file, desc string
	occurrence     int
	explicit       bool // the occurrence was named
	old, new       string
}

// stage is one test command.
type stage struct {
	name string
	args []string
}

func main() {
	list := flag.String("list", "internal/mutation/mutations.txt", "the mutations")
	only := flag.String("only", "", "comma-separated mutation IDs to run (default all)")
	checks := flag.Int("checks", 100, "rapid checks per property test")
	full := flag.Bool("full", true, "run the whole test package of the file mutated on a mutation the property and W1 tests miss")
	kill := flag.String("kill", "", "run only the tests of the mutated file's package matching this pattern (to show that a new test kills a mutation)")
	dry := flag.Bool("dry", false, "only check that every mutation applies, and print where")
	timeout := flag.Duration("timeout", 5*time.Minute, "time limit of one stage")
	flag.Parse()

	muts, err := parse(*list)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutation:", err)
		os.Exit(2)
	}
	want := map[string]bool{}
	for _, id := range strings.Split(*only, ",") {
		if id != "" {
			want[id] = true
		}
	}
	// The stages of a mutation of each package's files.
	rc := fmt.Sprintf("-rapid.checks=%d", *checks)
	stagesOf := func(pkg string) []stage {
		dir := "./" + pkg
		// rapid's flags only for a test binary that has them: one
		// without rapid fails on an unknown flag, which is no kill.
		var flags []string
		if rapidIn[pkg] {
			flags = []string{rc, noFail}
		}
		if *kill != "" {
			return []stage{{"kill", append([]string{"test", dir, "-count=1", "-run", *kill}, flags...)}}
		}
		var st []stage
		if properties[pkg] != "" {
			st = append(st, stage{"property", append([]string{"test", dir, "-count=1", "-run", properties[pkg]}, flags...)})
		}
		if _, ok := fixed[pkg]; ok {
			st = append(st, stage{"W1", []string{"test", "./bench", "-count=1", "-run", "W1"}})
		}
		if *full {
			st = append(st, stage{"full", append([]string{"test", dir, "-count=1"}, flags...)})
		}
		return st
	}

	// Move rapid's saved failing runs aside for the whole run (see the
	// package comment); they go back at the end, on an error and on an
	// interrupt.
	var aside string
	var saved []string
	putBack := func() {
		if aside != "" {
			putBackRuns(aside, saved)
		}
	}
	die := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "mutation: "+format+"\n", a...)
		putBack()
		os.Exit(2)
	}
	// The packages of the mutations to run: their property tests, and
	// their saved rapid runs to move aside.
	for _, mu := range muts {
		if len(want) > 0 && !want[mu.id] {
			continue
		}
		pkg := filepath.Dir(mu.file)
		if _, ok := properties[pkg]; ok {
			continue
		}
		if properties[pkg], err = findProperties(pkg); err != nil {
			fmt.Fprintln(os.Stderr, "mutation:", err)
			os.Exit(2)
		}
		if rapidIn[pkg], err = testsLinkRapid(pkg); err != nil {
			fmt.Fprintln(os.Stderr, "mutation:", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "mutation: property tests of %s: %q (links rapid: %v)\n", pkg, properties[pkg], rapidIn[pkg])
	}
	if !*dry {
		if aside, err = os.MkdirTemp("", "mutation-rapid-"); err != nil {
			die("%v", err)
		}
		if saved, err = setAside(aside); err != nil {
			die("%v", err)
		}
	}

	// Restore the file being mutated, and the saved runs, on an interrupt.
	var restore func()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	go func() {
		<-sig
		if restore != nil {
			restore()
		}
		putBack()
		os.Exit(130)
	}()

	fmt.Println("| ID | mutation | where | result |")
	fmt.Println("|---|---|---|---|")
	caught, survived := 0, 0
	for _, mu := range muts {
		if len(want) > 0 && !want[mu.id] {
			continue
		}
		pkg := filepath.Dir(mu.file)
		orig, err := os.ReadFile(mu.file)
		if err != nil {
			die("%v", err)
		}
		mutated, line, err := apply(orig, mu)
		if err != nil {
			die("%s: %v", mu.id, err)
		}
		where := fmt.Sprintf("%s:%d", strings.TrimPrefix(mu.file, "paged/"), line)
		if *dry {
			fmt.Printf("| %s | %s | %s | not run |\n", mu.id, mu.desc, where)
			continue
		}
		restore = func() { os.WriteFile(mu.file, orig, 0o644) }
		if err := os.WriteFile(mu.file, mutated, 0o644); err != nil {
			restore()
			die("%v", err)
		}
		result := "survived"
		if out, err := run(*timeout, "build", "./"+pkg); err != nil {
			result = "does not build: " + firstLine(out)
		} else {
			for _, st := range stagesOf(pkg) {
				out, err := run(*timeout, st.args...)
				if err != nil {
					result = fmt.Sprintf("caught (%s): %s", st.name, failures(out))
					break
				}
			}
		}
		restore()
		restore = nil
		// -rapid.nofailfile saves none; a file left all the same goes.
		for _, f := range rapidRuns() {
			os.Remove(f)
		}
		if strings.HasPrefix(result, "caught") {
			caught++
		} else if result == "survived" {
			survived++
		}
		fmt.Printf("| %s | %s | %s | %s |\n", mu.id, mu.desc, where, result)
	}
	putBack()
	fmt.Printf("\n%d caught, %d survived\n", caught, survived)
}

// fixed is, for paged and sched, the -run pattern of their property tests,
// the ones CI runs with many rapid checks (.ci/run). Their mutations also
// run bench's W1 stage.
var fixed = map[string]string{
	"paged": "StateMachine|Refused|FastPath|Check|Hybrid|HashMemoRapid|StepMatchesLoop|ContentModel|RetentionOrder",
	"sched": "TestStateMachine|TestAudit15QueueModel|TestLengthFloorMatchesScan|TestForkAloneWithinBoundRapid|TestForkWarmAloneRapid|TestAudit25|TestAudit26ChunksDraftsUnderPressure",
}

// rapidIn is, for each package whose files are mutated, whether its test
// binary links rapid (and so takes -rapid.checks and -rapid.nofailfile):
// paged and sched do, and testsLinkRapid finds out for the others.
var rapidIn = map[string]bool{"paged": true, "sched": true}

// testsLinkRapid reports whether the test binary of the package in dir
// links pgregory.net/rapid, directly or through a package it imports.
func testsLinkRapid(dir string) (bool, error) {
	out, err := exec.Command("go", "list", "-test", "-deps", "-f", "{{.ImportPath}}", "./"+dir).Output()
	if err != nil {
		return false, fmt.Errorf("go list -test -deps ./%s: %v", dir, err)
	}
	return slices.Contains(strings.Fields(string(out)), "pgregory.net/rapid"), nil
}

// properties is, for each package whose files are mutated, the -run
// pattern of its property tests: fixed's for paged and sched, those
// findProperties finds for the others ("" for none).
var properties = maps.Clone(fixed)

// findProperties returns the -run pattern of the property tests of the
// package in dir, or "" when it has none: its top-level tests that call
// rapid.Check or rapid.MakeCheck or name rapid.T (a property a helper of
// another package checks), themselves or through functions of its test
// files that do.
func findProperties(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); err != nil {
		return "", err
	}
	// The functions of the test files and the names each one calls.
	calls := map[string]map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			return "", err
		}
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || fd.Body == nil {
				continue
			}
			names := map[string]bool{}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.SelectorExpr:
					if id, ok := x.X.(*ast.Ident); ok && id.Name == "rapid" && (x.Sel.Name == "Check" || x.Sel.Name == "MakeCheck" || x.Sel.Name == "T") {
						names["rapid."] = true
					}
				case *ast.Ident:
					names[x.Name] = true
				}
				return true
			})
			calls[fd.Name.Name] = names
		}
	}
	// The functions that reach rapid, to a fixed point.
	reach := map[string]bool{"rapid.": true}
	for grew := true; grew; {
		grew = false
		for fn, names := range calls {
			if reach[fn] {
				continue
			}
			for n := range names {
				if reach[n] {
					reach[fn], grew = true, true
					break
				}
			}
		}
	}
	var tests []string
	for fn := range calls {
		if reach[fn] && strings.HasPrefix(fn, "Test") {
			tests = append(tests, fn)
		}
	}
	if len(tests) == 0 {
		return "", nil
	}
	slices.Sort(tests)
	return "^(" + strings.Join(tests, "|") + ")$", nil
}

// noFail tells rapid not to save a failing run (see the package comment).
const noFail = "-rapid.nofailfile"

// rapidRuns lists the failing runs rapid saved for the tests of the
// packages the runner tests (package/testdata/rapid/test/*.fail).
func rapidRuns() []string {
	var runs []string
	for _, pkg := range slices.Sorted(maps.Keys(properties)) {
		fails, _ := filepath.Glob(filepath.Join(pkg, "testdata", "rapid", "*", "*.fail"))
		runs = append(runs, fails...)
	}
	return runs
}

// setAside moves the saved failing runs (rapidRuns) into dir, each under
// a name numbered by its place in the list it returns.
func setAside(dir string) ([]string, error) {
	runs := rapidRuns()
	for i, f := range runs {
		if err := os.Rename(f, filepath.Join(dir, fmt.Sprint(i))); err != nil {
			return runs[:i], err
		}
	}
	return runs, nil
}

// putBackRuns moves the runs setAside moved into dir back where they were
// and removes dir.
func putBackRuns(dir string, runs []string) {
	for i, f := range runs {
		if err := os.Rename(filepath.Join(dir, fmt.Sprint(i)), f); err != nil {
			fmt.Fprintln(os.Stderr, "mutation: putting back a saved rapid run:", err)
		}
	}
	os.Remove(dir)
}

// parse reads the mutations file: blank lines and lines starting with #
// are skipped; a mutation is three lines,
//
//	ID file[@occurrence] description
//	- the text replaced (leading "- " removed, the rest exact)
//	+ the text put in its place
func parse(name string) ([]mutation, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lines)%3 != 0 {
		return nil, fmt.Errorf("%s: %d lines, not a multiple of 3", name, len(lines))
	}
	var muts []mutation
	seen := map[string]bool{}
	for i := 0; i < len(lines); i += 3 {
		head := strings.SplitN(lines[i], " ", 3)
		if len(head) < 3 || !strings.HasPrefix(lines[i+1], "- ") || !(strings.HasPrefix(lines[i+2], "+ ") || lines[i+2] == "+") {
			return nil, fmt.Errorf("%s: bad mutation at %q", name, lines[i])
		}
		mu := mutation{id: head[0], file: head[1], desc: head[2], occurrence: 1,
			old: lines[i+1][2:], new: strings.TrimPrefix(strings.TrimPrefix(lines[i+2], "+"), " ")}
		if at := strings.LastIndex(mu.file, "@"); at >= 0 {
			if _, err := fmt.Sscan(mu.file[at+1:], &mu.occurrence); err != nil {
				return nil, fmt.Errorf("%s: bad occurrence in %q", name, lines[i])
			}
			mu.file, mu.explicit = mu.file[:at], true
		}
		if seen[mu.id] {
			return nil, fmt.Errorf("%s: mutation %s given twice", name, mu.id)
		}
		seen[mu.id] = true
		muts = append(muts, mu)
	}
	return muts, nil
}

// apply returns src with mu applied and the line it changed (from 1).
func apply(src []byte, mu mutation) ([]byte, int, error) {
	lines := bytes.SplitAfter(src, []byte("\n"))
	if !mu.explicit {
		if c := bytes.Count(src, []byte(mu.old)); c != 1 {
			return nil, 0, fmt.Errorf("%s: %q occurs %d times; name the occurrence (file@N)", mu.file, mu.old, c)
		}
	}
	n := 0
	for i, l := range lines {
		if !bytes.Contains(l, []byte(mu.old)) {
			continue
		}
		if n++; n == mu.occurrence {
			if bytes.Count(l, []byte(mu.old)) != 1 {
				return nil, 0, fmt.Errorf("%q occurs more than once on line %d", mu.old, i+1)
			}
			lines[i] = bytes.Replace(l, []byte(mu.old), []byte(mu.new), 1)
			return bytes.Join(lines, nil), i + 1, nil
		}
	}
	return nil, 0, fmt.Errorf("%s: occurrence %d of %q not found (%d found)", mu.file, mu.occurrence, mu.old, n)
}

// run runs the go command with a time limit and returns its output. The
// command runs in its own process group, which the limit kills whole: a
// test binary a mutation sent into an endless loop is go test's child and
// would outlive go test.
func run(limit time.Duration, args ...string) (string, error) {
	if args[0] == "test" {
		// The test binary's own limit, a little shorter, names the test
		// that hangs.
		args = append(args, "-timeout", (limit - limit/8).String())
	}
	var out bytes.Buffer
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(limit):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String() + "\n(time limit)", fmt.Errorf("time limit %v", limit)
	}
}

var failRE = regexp.MustCompile(`--- FAIL: (\S+)`)

// failures names the top-level tests that failed in out, or the first
// line that says why the run failed.
func failures(out string) string {
	var names []string
	seen := map[string]bool{}
	for _, m := range failRE.FindAllStringSubmatch(out, -1) {
		name := m[1]
		if i := strings.IndexByte(name, '/'); i >= 0 {
			name = name[:i]
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		if len(names) > 4 {
			names = append(names[:4], fmt.Sprintf("and %d more", len(names)-4))
		}
		return strings.Join(names, ", ")
	}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic:") || strings.Contains(l, "time limit") || strings.HasPrefix(l, "FAIL") {
			// A test binary's own time limit names the tests still
			// running on the lines after "running tests:".
			for j := i + 1; j < len(lines) && j < i+4; j++ {
				if strings.TrimSpace(lines[j]) == "running tests:" && j+1 < len(lines) {
					return strings.TrimSpace(l) + " (" + strings.TrimSpace(lines[j+1]) + ")"
				}
			}
			return strings.TrimSpace(l)
		}
	}
	return firstLine(out)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
