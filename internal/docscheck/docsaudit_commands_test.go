package docscheck

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// command is one shell command the docs show.
type command struct {
	where string
	args  []string
}

// docCommands returns the commands of README.md and docs/*.md that run
// one of the given programs ("go", "kvbench"): the lines of shell blocks
// and the inline code spans that start with it. A command given as
// "go run ./bench/cmd/kvbench NAME" counts as kvbench's; "..." stands
// for the kvbench of the sentence (README's "... fleet -shared-prefix 1").
func docCommands(t *testing.T) []command {
	var out []command
	add := func(where, line string) {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "$ "))
		// A pipe or a list runs several commands.
		for _, part := range regexp.MustCompile(`\|\||&&|[|;]`).Split(line, -1) {
			args := shellWords(strings.TrimSpace(part))
			// Leading VAR=value assignments and wrappers.
			for len(args) > 0 && (strings.Contains(args[0], "=") || args[0] == ".ci/with-redis" || args[0] == "/usr/bin/time") {
				args = args[1:]
			}
			if len(args) == 0 {
				continue
			}
			if args[0] == "..." {
				args[0] = "kvbench"
			}
			if args[0] == "go" && len(args) > 2 && args[1] == "run" {
				for i, a := range args {
					if a == "./bench/cmd/kvbench" {
						args = append([]string{"kvbench"}, args[i+1:]...)
						break
					}
				}
			}
			if args[0] == "go" || args[0] == "kvbench" {
				out = append(out, command{where: where, args: args})
			}
		}
	}
	for _, d := range readDocs(t) {
		text, name := d.text, d.name
		for _, m := range regexp.MustCompile("(?s)```(\\w*)\n(.*?)```").FindAllStringSubmatchIndex(text, -1) {
			if lang := text[m[2]:m[3]]; lang != "" && lang != "sh" && lang != "bash" && lang != "console" {
				continue
			}
			line := strings.Count(text[:m[4]], "\n") + 1
			for i, l := range strings.Split(text[m[4]:m[5]], "\n") {
				if hash := strings.Index(l, " #"); hash >= 0 {
					l = l[:hash]
				}
				add(name+":"+strconv.Itoa(line+i), strings.TrimSuffix(l, "\\"))
			}
		}
		outside := blankFences(text)
		for _, m := range inlineCode.FindAllStringSubmatchIndex(strings.ReplaceAll(outside, "\n", " "), -1) {
			span := strings.ReplaceAll(outside[m[2]:m[3]], "\n", " ")
			if strings.HasPrefix(span, "go ") || strings.HasPrefix(span, "kvbench ") || strings.HasPrefix(span, "... ") {
				add(name+":"+strconv.Itoa(strings.Count(outside[:m[2]], "\n")+1), span)
			}
		}
	}
	return out
}

// shellWords splits a command line as a shell would for the simple
// quoting the docs use ('...' and "...").
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// testFuncs lists the Test, Benchmark, Example and Fuzz functions of the
// package in dir with the build tags given.
func testFuncs(t *testing.T, dir string, tags []string) []string {
	ctxt := build.Default
	ctxt.BuildTags = tags
	bp, err := ctxt.ImportDir(dir, 0)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range slices.Concat(bp.TestGoFiles, bp.XTestGoFiles) {
		file, err := parser.ParseFile(fset, filepath.Join(dir, f), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				names = append(names, fd.Name.Name)
			}
		}
	}
	return names
}

// firstLevel is the part of a -run or -bench pattern before its first
// slash outside brackets and parentheses: what top-level names match.
func firstLevel(p string) string {
	depth := 0
	for i, r := range p {
		switch r {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case '/':
			if depth == 0 {
				return p[:i]
			}
		}
	}
	return p
}

// TestDocsGoTestPatternsMatch: every `go test` the docs show with -run,
// -bench or -fuzz matches at least one test, benchmark or fuzz target of
// the packages it names (at the first level of the pattern; '^$' and XXX
// are meant to match nothing and are skipped), and every package it names
// exists.
func TestDocsGoTestPatternsMatch(t *testing.T) {
	root := moduleRoot(t)
	checked := 0
	for _, c := range docCommands(t) {
		if len(c.args) < 2 || c.args[0] != "go" || c.args[1] != "test" {
			continue
		}
		var pkgs, tags []string
		patterns := map[string]string{}
		for i := 2; i < len(c.args); i++ {
			a := strings.TrimPrefix(c.args[i], "-")
			name, value, hasValue := strings.Cut(a, "=")
			switch name {
			case "run", "bench", "fuzz", "tags":
				if !hasValue && i+1 < len(c.args) {
					i++
					value = c.args[i]
				}
				if name == "tags" {
					tags = strings.Split(value, ",")
				} else {
					patterns[name] = value
				}
			case "benchtime", "count", "timeout", "fuzztime", "o", "cpuprofile", "memprofile", "rapid.checks", "rapid.steps":
				if !hasValue {
					i++
				}
			default:
				if strings.HasPrefix(c.args[i], "./") {
					pkgs = append(pkgs, c.args[i])
				}
			}
		}
		var dirs []string
		for _, p := range pkgs {
			if rest, ok := strings.CutSuffix(p, "/..."); ok {
				base := filepath.Join(root, filepath.FromSlash(rest))
				if _, err := os.Stat(base); err != nil {
					t.Errorf("%s: %s: no such directory", c.where, p)
				}
				continue // a tree: only its existence is checked
			}
			dir := filepath.Join(root, filepath.FromSlash(p))
			if _, err := os.Stat(dir); err != nil {
				t.Errorf("%s: %s: no such package", c.where, p)
				continue
			}
			dirs = append(dirs, dir)
		}
		if len(dirs) == 0 {
			continue
		}
		for kind, pattern := range patterns {
			if pattern == "^$" || pattern == "XXX" {
				continue
			}
			re, err := regexp.Compile(firstLevel(pattern))
			if err != nil {
				t.Errorf("%s: -%s %q: %v", c.where, kind, pattern, err)
				continue
			}
			prefixes := map[string][]string{"run": {"Test", "Example", "Fuzz"}, "bench": {"Benchmark"}, "fuzz": {"Fuzz"}}[kind]
			found := false
			for _, dir := range dirs {
				for _, fn := range testFuncs(t, dir, tags) {
					for _, prefix := range prefixes {
						found = found || strings.HasPrefix(fn, prefix) && re.MatchString(fn)
					}
				}
			}
			checked++
			if !found {
				t.Errorf("%s: go test %s -%s %q matches no %s function", c.where, strings.Join(pkgs, " "), kind, pattern, strings.Join(prefixes, "/"))
			}
		}
	}
	if checked < 30 {
		t.Fatalf("checked %d go test patterns in the docs; the extraction is broken", checked)
	}
	t.Logf("%d go test patterns checked", checked)
}

// TestDocsKvbenchCommandsExist builds kvbench and checks that every
// kvbench command the docs show names a subcommand and only flags it has.
func TestDocsKvbenchCommandsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kvbench")
	}
	root := moduleRoot(t)
	bin := filepath.Join(t.TempDir(), "kvbench")
	build := exec.Command("go", "build", "-tags", "redis", "-o", bin, "./bench/cmd/kvbench")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	flagLine := regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`)
	flags := map[string]map[string]bool{}
	flagsOf := func(sub string) map[string]bool {
		if f, ok := flags[sub]; ok {
			return f
		}
		out, err := exec.Command(bin, sub, "-h").CombinedOutput()
		if err != nil {
			flags[sub] = nil
			return nil
		}
		f := map[string]bool{"h": true}
		for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
			f[m[1]] = true
		}
		flags[sub] = f
		return f
	}
	checked := 0
	for _, c := range docCommands(t) {
		if c.args[0] != "kvbench" || len(c.args) < 2 || strings.HasPrefix(c.args[1], "-") {
			continue
		}
		sub := c.args[1]
		f := flagsOf(sub)
		if f == nil {
			t.Errorf("%s: kvbench %s: no such command", c.where, sub)
			continue
		}
		checked++
		for _, a := range c.args[2:] {
			if !strings.HasPrefix(a, "-") || a == "-" {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !f[name] {
				t.Errorf("%s: kvbench %s has no flag -%s", c.where, sub, name)
			}
		}
	}
	if checked < 30 {
		t.Fatalf("checked %d kvbench commands in the docs; the extraction is broken", checked)
	}
	t.Logf("%d kvbench commands checked", checked)
}

// foreignTests are test names of other projects the docs cite (llm-d's
// and vLLM's parity tests in docs/fleet.md).
var foreignTests = map[string]bool{
	"TestVLLMParity_NoneHash":    true,
	"TestVLLMParity_BlockHashes": true,
	"TestGolden":                 true,
}

// TestDocsCitedTestsExist: a test, benchmark, example or fuzz target the
// docs cite by name in inline code (`TestBeamStepAllocs`) exists.
func TestDocsCitedTestsExist(t *testing.T) {
	root := moduleRoot(t)
	defined := map[string]bool{}
	funcLine := regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Example|Fuzz)\w*)\(`)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range funcLine.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cited := regexp.MustCompile(`^(?:Test|Benchmark|Example|Fuzz)[A-Z0-9_]\w*$`)
	checked := 0
	for _, d := range readDocs(t) {
		text := fence.ReplaceAllString(d.text, "")
		for _, m := range inlineCode.FindAllStringSubmatch(text, -1) {
			if !cited.MatchString(m[1]) || foreignTests[m[1]] {
				continue
			}
			checked++
			if !defined[m[1]] {
				t.Errorf("%s cites %s, which no test file defines", d.name, m[1])
			}
		}
	}
	if checked < 30 {
		t.Fatalf("checked %d cited tests; the extraction is broken", checked)
	}
	t.Logf("%d cited tests checked", checked)
}
