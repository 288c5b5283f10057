package docscheck

import (
	"fmt"
	"go/build"
	"go/parser"
	"go/token"
	"go/types"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	fence      = regexp.MustCompile("(?s)```.*?```")
	inlineCode = regexp.MustCompile("`([^`\n]+)`")
	// pkg.Name, pkg.Type.Member, Type.Member, with an optional "()".
	qualifiedName = regexp.MustCompile(`^(?:([a-z][a-z0-9]*)\.)?([A-Z][A-Za-z0-9]*)(?:\.([A-Z][A-Za-z0-9]*))?(?:\(\))?$`)
)

// blankFences blanks the fenced blocks of a Markdown text, keeping its
// line numbers.
func blankFences(text string) string {
	return fence.ReplaceAllStringFunc(text, func(s string) string {
		return strings.Repeat("\n", strings.Count(s, "\n"))
	})
}

// foreignNames are inline names of other projects that look like the
// library's: llm-d's own kvevents package has a Pool.
var foreignNames = map[string]bool{
	"kvevents.Pool": true,
}

// exportedMembers lists the exported fields and methods of every named type
// of the package, by type name.
func exportedMembers(p *types.Package) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, name := range p.Scope().Names() {
		tn, ok := p.Scope().Lookup(name).(*types.TypeName)
		if !ok || !tn.Exported() {
			continue
		}
		members := map[string]bool{}
		for _, t := range []types.Type{tn.Type(), types.NewPointer(tn.Type())} {
			ms := types.NewMethodSet(t)
			for i := range ms.Len() {
				members[ms.At(i).Obj().Name()] = true
			}
		}
		if st, ok := tn.Type().Underlying().(*types.Struct); ok {
			addFields(st, members)
		}
		out[name] = members
	}
	return out
}

func addFields(st *types.Struct, members map[string]bool) {
	for f := range st.Fields() {
		members[f.Name()] = true
		if f.Embedded() {
			if inner, ok := f.Type().Underlying().(*types.Struct); ok {
				addFields(inner, members)
			}
		}
	}
}

// TestDocsInlineNamesExist checks the Go names written in inline code in
// README.md and docs/*.md: `paged.MaxSeqLen`, `Manager.AdmitChunk`,
// `Config.HashMemo`, `kvmem.Spec.StateBlocks`. A name qualified with a
// library package must exist there; Type.Member, where Type is a type of
// one or more library packages, must name a field or method of one of
// them. Other spans (flags, files, Type.Member of a type no library package
// has) are not Go names of the library and are skipped.
func TestDocsInlineNamesExist(t *testing.T) {
	l := newLoader(t, moduleRoot(t))
	types := map[string][]map[string]bool{} // type name -> members, per package having it
	scopes := map[string]*typesScope{}
	for name := range libPackages {
		p := l.lib(t, name)
		scopes[name] = &typesScope{pkg: p, members: exportedMembers(p)}
		for tn, members := range scopes[name].members {
			types[tn] = append(types[tn], members)
		}
	}
	checked := 0
	for _, d := range readDocs(t) {
		text := blankFences(d.text)
		for _, m := range inlineCode.FindAllStringSubmatchIndex(text, -1) {
			span := text[m[2]:m[3]]
			q := qualifiedName.FindStringSubmatch(span)
			if q == nil || foreignNames[span] {
				continue
			}
			where := fmt.Sprintf("%s:%d", d.name, strings.Count(text[:m[2]], "\n")+1)
			pkg, name, member := q[1], q[2], q[3]
			switch {
			case pkg != "":
				s, ok := scopes[pkg]
				if !ok {
					continue
				}
				checked++
				obj := s.pkg.Scope().Lookup(name)
				if obj == nil || !obj.Exported() {
					t.Errorf("%s: `%s`: %s.%s does not exist", where, span, pkg, name)
					continue
				}
				if member != "" && !s.members[name][member] {
					t.Errorf("%s: `%s`: %s.%s has no field or method %s", where, span, pkg, name, member)
				}
			case member != "":
				candidates := types[name]
				if len(candidates) == 0 {
					continue
				}
				checked++
				found := false
				for _, members := range candidates {
					found = found || members[member]
				}
				if !found {
					t.Errorf("%s: `%s`: no library type %s has a field or method %s", where, span, name, member)
				}
			}
		}
	}
	if checked < 100 {
		t.Fatalf("checked %d inline names in the docs; the extraction is broken", checked)
	}
	t.Logf("%d inline names checked", checked)
}

type typesScope struct {
	pkg     *types.Package
	members map[string]map[string]bool
}

// staleComments are known stale names in comments of files this test's
// author did not own (fleet/ was being reworked); their owners are to fix
// them. Remove an entry once its comment is fixed.
var staleComments = map[string]bool{}

// TestGodocReferencesExist checks the Go names in the doc comments and
// other comments of the library's non-test files: pkg.Name for a library
// package must exist, and Type.Member, where Type is a type of the same
// package, must name a field or method of it (skipped when Type is also a
// field name of the package, as in a Swap's Kind.SrcMedium).
func TestGodocReferencesExist(t *testing.T) {
	root := moduleRoot(t)
	l := newLoader(t, root)
	ref := regexp.MustCompile(`(?:\b([a-z][a-z0-9]*)\.)?\b([A-Z][A-Za-z0-9]*)\.([A-Z][A-Za-z0-9]*)\b`)
	qual := regexp.MustCompile(`\b([a-z][a-z0-9]*)\.([A-Z][A-Za-z0-9]*)\b`)
	checked := 0
	for name, dir := range libPackages {
		p := l.lib(t, name)
		members := exportedMembers(p)
		fields := map[string]bool{} // the struct fields of the package's types
		for _, n := range p.Scope().Names() {
			if tn, ok := p.Scope().Lookup(n).(*types.TypeName); ok {
				if st, ok := tn.Type().Underlying().(*types.Struct); ok {
					addFields(st, fields)
				}
			}
		}
		bp, err := build.Default.ImportDir(filepath.Join(root, filepath.FromSlash(dir)), 0)
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		for _, file := range bp.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(bp.Dir, file), nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			for _, cg := range f.Comments {
				text := cg.Text()
				where := fmt.Sprintf("%s/%s:%d", dir, file, fset.Position(cg.Pos()).Line)
				for _, m := range ref.FindAllStringSubmatch(text, -1) {
					pkg, typ, member := m[1], m[2], m[3]
					own, isType := members[typ]
					if pkg != "" && pkg != name {
						if _, isLib := libPackages[pkg]; !isLib {
							continue
						}
						own, isType = exportedMembers(l.lib(t, pkg))[typ]
					} else if fields[typ] {
						continue
					}
					if !isType || staleComments[where+" "+m[0]] {
						continue
					}
					checked++
					if !own[member] {
						t.Errorf("%s: the comment names %s.%s; %s has no field or method %s", where, typ, member, typ, member)
					}
				}
				for _, m := range qual.FindAllStringSubmatch(text, -1) {
					if _, isLib := libPackages[m[1]]; !isLib || m[1] == name {
						continue
					}
					checked++
					if obj := l.lib(t, m[1]).Scope().Lookup(m[2]); obj == nil {
						t.Errorf("%s: the comment names %s.%s, which does not exist", where, m[1], m[2])
					}
				}
			}
		}
	}
	if checked < 200 {
		t.Fatalf("checked %d names in comments; the extraction is broken", checked)
	}
	t.Logf("%d names in comments checked", checked)
}
