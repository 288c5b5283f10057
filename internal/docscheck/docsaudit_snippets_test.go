package docscheck

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/pagedkv/pagedkv"

// libPackages maps the name a snippet qualifies with to the package's
// directory under the module root.
var libPackages = map[string]string{
	"allocator":  "allocator",
	"eviction":   "eviction",
	"paged":      "paged",
	"sched":      "sched",
	"kvmem":      "kvmem",
	"fleet":      "fleet",
	"redisindex": "fleet/redisindex",
	"fleettest":  "fleet/fleettest",
	"kvevents":   "fleet/kvevents",
	"zmq":        "fleet/zmq",
	"llmd":       "fleet/llmd",
	"bench":      "bench",
	"attention":  "bench/attention",
	"traces":     "bench/traces",
}

// docFiles are the Markdown files whose Go the tests check.
func docFiles(t *testing.T) []string {
	t.Helper()
	root := moduleRoot(t)
	files := []string{filepath.Join(root, "README.md")}
	more, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(more)
	return append(files, more...)
}

// docText is one Markdown file of the docs: its path, base name and text.
type docText struct {
	path, name, text string
}

// readDocs reads README.md and docs/*.md.
func readDocs(t *testing.T) []docText {
	t.Helper()
	var out []docText
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, docText{path: f, name: filepath.Base(f), text: string(b)})
	}
	return out
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("module root not found from the test's directory: %v", err)
	}
	return dir
}

// loader type-checks the library's packages from source, and everything
// else (the standard library, go-redis) from the build cache's export data.
type loader struct {
	root  string
	fset  *token.FileSet
	pkgs  map[string]*types.Package
	other types.Importer
}

// shared is the one loader the tests share: type-checking the library
// takes a go list and a second or so, once.
var shared struct {
	sync.Mutex
	l *loader
}

// newLoader returns the shared loader, making it on first use. The tests
// that use it do not run in parallel, so it needs no lock of its own.
func newLoader(t *testing.T, root string) *loader {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.l == nil {
		shared.l = makeLoader(t, root)
	}
	return shared.l
}

func makeLoader(t *testing.T, root string) *loader {
	t.Helper()
	// The export data of every package the library imports, from the build
	// cache (go list builds what is missing): the standard library and
	// go-redis are not in GOROOT/src's reach of go/build in module mode.
	args := []string{"list", "-export", "-deps", "-f", "{{.ImportPath}}={{.Export}}"}
	for _, dir := range libPackages {
		args = append(args, "./"+dir)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v", err)
	}
	exports := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if path, file, ok := strings.Cut(line, "="); ok && file != "" {
			exports[path] = file
		}
	}
	fset := token.NewFileSet()
	lookup := func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	}
	return &loader{root: root, fset: fset, pkgs: map[string]*types.Package{},
		other: importer.ForCompiler(fset, "gc", lookup)}
}

func (l *loader) Import(path string) (*types.Package, error) {
	if !strings.HasPrefix(path, module+"/") {
		return l.other.Import(path)
	}
	if p, ok := l.pkgs[path]; ok {
		return p, nil
	}
	dir := filepath.Join(l.root, filepath.FromSlash(strings.TrimPrefix(path, module+"/")))
	bp, err := build.Default.ImportDir(dir, 0)
	if err != nil {
		return nil, err
	}
	var files []*ast.File
	for _, name := range bp.GoFiles {
		f, err := parser.ParseFile(l.fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: l}
	p, err := conf.Check(path, l.fset, files, nil)
	if err != nil {
		return nil, err
	}
	l.pkgs[path] = p
	return p, nil
}

// lib returns the library package a snippet calls name, or nil.
func (l *loader) lib(t *testing.T, name string) *types.Package {
	dir, ok := libPackages[name]
	if !ok {
		return nil
	}
	p, err := l.Import(module + "/" + dir)
	if err != nil {
		t.Fatalf("type-checking %s: %v", dir, err)
	}
	return p
}

type snippet struct {
	file string
	line int
	src  string
}

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

func goSnippets(t *testing.T) []snippet {
	var out []snippet
	for _, d := range readDocs(t) {
		text := d.text
		for _, m := range goBlock.FindAllStringSubmatchIndex(text, -1) {
			out = append(out, snippet{file: d.name,
				line: strings.Count(text[:m[2]], "\n") + 1, src: text[m[2]:m[3]]})
		}
	}
	return out
}

// elide replaces a "..." that stands for omitted code (not a variadic
// call's or parameter's) with an identifier, so the snippet parses.
func elide(src string) string {
	var b strings.Builder
	for i := 0; i < len(src); i++ {
		if strings.HasPrefix(src[i:], "...") {
			j := i - 1
			for j >= 0 && (src[j] == ' ' || src[j] == '\t') {
				j--
			}
			spread := j >= 0 && (isIdent(src[j]) || src[j] == ')' || src[j] == ']' || src[j] == '(' || src[j] == ',')
			if !spread {
				b.WriteString("elided")
				i += 2
				continue
			}
		}
		b.WriteByte(src[i])
	}
	return b.String()
}

func isIdent(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// parseSnippet parses a snippet as a file, as a function body, or as the
// fields of a composite literal, whichever works first.
func parseSnippet(fset *token.FileSet, src string) (*ast.File, error) {
	src = elide(src)
	var first error
	for _, wrap := range []string{
		"package p\n%s\n",
		"package p\nfunc _() {\n%s\n}\n",
		"package p\nvar _ = elided{\n%s\n}\n",
	} {
		f, err := parser.ParseFile(fset, "snippet.go", fmt.Sprintf(wrap, src), parser.SkipObjectResolution)
		if err == nil {
			return f, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// checker walks one snippet, giving types to the variables it can.
type checker struct {
	t    *testing.T
	l    *loader
	vars map[string]types.Type
	errs []string
}

func (c *checker) errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(c.errs, msg) {
		c.errs = append(c.errs, msg)
	}
}

// qualified resolves pkg.Name for a library package; ok is false when x is
// not such a selector.
func (c *checker) qualified(x ast.Expr) (obj types.Object, ok bool) {
	sel, isSel := x.(*ast.SelectorExpr)
	if !isSel {
		return nil, false
	}
	id, isID := sel.X.(*ast.Ident)
	if !isID {
		return nil, false
	}
	if _, shadowed := c.vars[id.Name]; shadowed {
		return nil, false
	}
	p := c.l.lib(c.t, id.Name)
	if p == nil {
		return nil, false
	}
	obj = p.Scope().Lookup(sel.Sel.Name)
	if obj == nil || !obj.Exported() {
		c.errorf("%s.%s does not exist", id.Name, sel.Sel.Name)
		return nil, true
	}
	return obj, true
}

// typeOf returns the type of an expression when the snippet makes it
// known, or nil.
func (c *checker) typeOf(x ast.Expr) types.Type {
	switch x := x.(type) {
	case *ast.ParenExpr:
		return c.typeOf(x.X)
	case *ast.Ident:
		return c.vars[x.Name]
	case *ast.CompositeLit:
		return c.typeExpr(x.Type)
	case *ast.UnaryExpr:
		if x.Op == token.AND {
			if t := c.typeOf(x.X); t != nil {
				return types.NewPointer(t)
			}
		}
	case *ast.StarExpr:
		if p, ok := c.typeOf(x.X).(*types.Pointer); ok {
			return p.Elem()
		}
	case *ast.IndexExpr:
		switch t := under(c.typeOf(x.X)).(type) {
		case *types.Slice:
			return t.Elem()
		case *types.Array:
			return t.Elem()
		case *types.Map:
			return t.Elem()
		}
	case *ast.SliceExpr:
		return c.typeOf(x.X)
	case *ast.SelectorExpr:
		if obj, ok := c.qualified(x); ok {
			if obj != nil {
				if _, isType := obj.(*types.TypeName); !isType {
					return obj.Type()
				}
			}
			return nil
		}
		if t := c.typeOf(x.X); t != nil {
			obj, _, _ := types.LookupFieldOrMethod(t, true, nil, x.Sel.Name)
			if obj == nil {
				obj = lookupExported(t, x.Sel.Name)
			}
			if obj == nil {
				c.errorf("%s has no field or method %s", types.TypeString(t, shortQual), x.Sel.Name)
				return nil
			}
			return obj.Type()
		}
	case *ast.CallExpr:
		if sig := c.signature(x.Fun); sig != nil && sig.Results().Len() == 1 {
			return sig.Results().At(0).Type()
		}
	}
	return nil
}

// lookupExported finds an exported field or method of a library type
// (types.LookupFieldOrMethod needs the package for unexported ones only).
func lookupExported(t types.Type, name string) types.Object {
	obj, _, _ := types.LookupFieldOrMethod(t, true, nil, name)
	return obj
}

func under(t types.Type) types.Type {
	if t == nil {
		return nil
	}
	return t.Underlying()
}

func shortQual(p *types.Package) string { return p.Name() }

// typeExpr resolves a type written in the snippet (paged.Batch, *paged.X,
// []paged.Group) when it names library types.
func (c *checker) typeExpr(x ast.Expr) types.Type {
	switch x := x.(type) {
	case *ast.SelectorExpr:
		if obj, ok := c.qualified(x); ok && obj != nil {
			if tn, isType := obj.(*types.TypeName); isType {
				return tn.Type()
			}
			c.errorf("%s is not a type", obj.Name())
		}
	case *ast.StarExpr:
		if t := c.typeExpr(x.X); t != nil {
			return types.NewPointer(t)
		}
	case *ast.ArrayType:
		if t := c.typeExpr(x.Elt); t != nil {
			if x.Len == nil {
				return types.NewSlice(t)
			}
			return types.NewArray(t, -1)
		}
	}
	return nil
}

// signature returns the signature of a called library function or method
// when it is known.
func (c *checker) signature(fun ast.Expr) *types.Signature {
	switch fun := fun.(type) {
	case *ast.SelectorExpr:
		if obj, ok := c.qualified(fun); ok {
			if f, isFunc := obj.(*types.Func); isFunc {
				return f.Type().(*types.Signature)
			}
			return nil
		}
		if t := c.typeOf(fun.X); t != nil {
			obj := lookupExported(t, fun.Sel.Name)
			if f, isFunc := obj.(*types.Func); isFunc {
				return f.Type().(*types.Signature)
			}
		}
	}
	return nil
}

func (c *checker) call(x *ast.CallExpr, results int) {
	sig := c.signature(x.Fun)
	if sig == nil {
		return
	}
	name := exprString(x.Fun)
	n, want := len(x.Args), sig.Params().Len()
	switch {
	case x.Ellipsis.IsValid():
	case sig.Variadic() && n < want-1, !sig.Variadic() && n != want:
		c.errorf("%s takes %d arguments, the snippet passes %d", name, want, n)
	}
	if results >= 0 && results != sig.Results().Len() {
		c.errorf("%s returns %d values, the snippet takes %d", name, sig.Results().Len(), results)
	}
}

func exprString(x ast.Expr) string {
	switch x := x.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	}
	return "call"
}

// literal checks the keys of a composite literal of type t (a struct, or a
// slice, array or map of them with the element type elided).
func (c *checker) literal(lit *ast.CompositeLit, t types.Type) {
	if t == nil {
		return
	}
	switch u := t.Underlying().(type) {
	case *types.Struct:
		for _, e := range lit.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			key, ok := kv.Key.(*ast.Ident)
			if !ok {
				continue
			}
			obj, _, _ := types.LookupFieldOrMethod(t, false, nil, key.Name)
			f, isField := obj.(*types.Var)
			if !isField || !f.IsField() {
				c.errorf("%s has no field %s", types.TypeString(t, shortQual), key.Name)
				continue
			}
			if inner, ok := kv.Value.(*ast.CompositeLit); ok && inner.Type == nil {
				c.literal(inner, f.Type())
			}
		}
	case *types.Slice, *types.Array, *types.Map:
		elem := u.(interface{ Elem() types.Type }).Elem()
		for _, e := range lit.Elts {
			if kv, ok := e.(*ast.KeyValueExpr); ok {
				e = kv.Value
			}
			switch inner := e.(type) {
			case *ast.CompositeLit:
				if inner.Type == nil {
					c.literal(inner, elem)
				}
			case *ast.UnaryExpr:
				if in, ok := inner.X.(*ast.CompositeLit); ok && in.Type == nil {
					if p, ok := elem.(*types.Pointer); ok {
						c.literal(in, p.Elem())
					}
				}
			}
		}
	}
}

func (c *checker) assign(lhs []ast.Expr, rhs []ast.Expr) {
	if len(rhs) == 1 {
		if call, ok := rhs[0].(*ast.CallExpr); ok {
			c.call(call, len(lhs))
			if sig := c.signature(call.Fun); sig != nil && sig.Results().Len() == len(lhs) {
				for i, l := range lhs {
					c.define(l, sig.Results().At(i).Type())
				}
				return
			}
		}
	}
	if len(lhs) == len(rhs) {
		for i, l := range lhs {
			c.define(l, c.typeOf(rhs[i]))
		}
	}
}

func (c *checker) define(l ast.Expr, t types.Type) {
	id, ok := l.(*ast.Ident)
	if !ok || id.Name == "_" {
		return
	}
	if t == nil {
		if _, known := c.vars[id.Name]; !known {
			c.vars[id.Name] = nil
		}
		return
	}
	c.vars[id.Name] = t
}

// walk visits the snippet in source order, so a variable's type is known
// before its uses.
func (c *checker) walk(n ast.Node) { ast.Inspect(n, c.node) }

func (c *checker) node(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.AssignStmt:
		for _, r := range n.Rhs {
			c.expr(r)
		}
		c.assign(n.Lhs, n.Rhs)
		return false
	case *ast.ValueSpec:
		for _, v := range n.Values {
			c.expr(v)
		}
		if n.Type != nil {
			t := c.typeExpr(n.Type)
			for _, name := range n.Names {
				c.define(name, t)
			}
			return false
		}
		lhs := make([]ast.Expr, len(n.Names))
		for i, name := range n.Names {
			lhs[i] = name
		}
		c.assign(lhs, n.Values)
		return false
	case *ast.RangeStmt:
		c.expr(n.X)
		var elem types.Type
		switch u := under(c.typeOf(n.X)).(type) {
		case *types.Slice:
			elem = u.Elem()
		case *types.Array:
			elem = u.Elem()
		}
		if n.Value != nil {
			c.define(n.Value, elem)
		}
		c.walk(n.Body)
		return false
	case *ast.FuncDecl:
		c.walk(n.Body)
		return false
	case ast.Expr:
		c.expr(n)
		return false
	}
	return true
}

// expr checks one expression tree: qualified names, literals, calls and
// selections on typed variables.
func (c *checker) expr(x ast.Expr) {
	ast.Inspect(x, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			if n.Type != nil {
				c.literal(n, c.typeExpr(n.Type))
			}
		case *ast.CallExpr:
			c.call(n, -1)
			c.typeOf(n.Fun)
			for _, a := range n.Args {
				c.expr(a)
			}
			return false
		case *ast.SelectorExpr:
			c.typeOf(n)
			return false
		case *ast.FuncLit:
			c.walk(n.Body)
			return false
		}
		return true
	})
}

// TestDocsGoSnippetsUseCurrentAPI checks every ```go block of README.md and
// docs/*.md against the packages it names.
func TestDocsGoSnippetsUseCurrentAPI(t *testing.T) {
	l := newLoader(t, moduleRoot(t))
	snippets := goSnippets(t)
	if len(snippets) < 10 {
		t.Fatalf("found %d Go snippets in the docs; the extraction is broken", len(snippets))
	}
	// A file's snippets read as one session: a variable keeps the type an
	// earlier snippet gave it (docs/tiers.md's m).
	vars := map[string]map[string]types.Type{}
	for _, s := range snippets {
		if vars[s.file] == nil {
			vars[s.file] = map[string]types.Type{}
		}
		fset := token.NewFileSet()
		f, err := parseSnippet(fset, s.src)
		if err != nil {
			t.Errorf("%s:%d: the Go snippet does not parse: %v", s.file, s.line, err)
			continue
		}
		c := &checker{t: t, l: l, vars: vars[s.file]}
		c.walk(f)
		for _, e := range c.errs {
			t.Errorf("%s:%d (Go snippet): %s", s.file, s.line, e)
		}
	}
}
