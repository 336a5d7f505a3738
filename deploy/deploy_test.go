package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/firmbridge/firmbridge"
)

// The files under test, relative to the repository root.
const (
	dockerfilePath = "deploy/docker/Dockerfile"
	composePath    = "deploy/docker-compose.yml"
	k8sDir         = "deploy/k8s"
	kustomization  = "kustomization.yaml"
	binarySource   = "cmd/firmbridge"
)

// listeners are the subcommands that serve HTTP, with the flag and the
// variable that set their address; TestBinaryModel checks both exist.
var listeners = map[string]struct{ flag, env string }{
	"serve":  {"addr", "FIRMBRIDGE_HTTP_ADDR"},
	"ingest": {"ops-addr", "FIRMBRIDGE_INGEST_OPS_ADDR"},
}

// keyFiles are the key files each subcommand reads (cmd/firmbridge:
// serve loads FIRMBRIDGE_KEY_FILE and verifies digests with
// FIRMBRIDGE_AUDIT_PUBLIC_KEYS, else with the audit key; ingest signs with
// the audit key). Variables whose value is a comma-separated list end in S.
var keyFiles = map[string][]string{
	"serve":  {"FIRMBRIDGE_KEY_FILE", "FIRMBRIDGE_VERIFY_KEY_FILES", "FIRMBRIDGE_AUDIT_PUBLIC_KEYS"},
	"ingest": {"FIRMBRIDGE_AUDIT_KEY_FILE"},
}

// otherEnv are variables a firmbridge container may set besides FIRMBRIDGE_*:
// the Go runtime's.
var otherEnv = map[string]bool{"GOGC": true, "GOMEMLIMIT": true, "GOMAXPROCS": true, "GODEBUG": true, "TZ": true}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd) // go test runs in deploy/
}

// ---------------------------------------------------------------------------
// What the binary really has, read from cmd/firmbridge's source.

type flagInfo struct{ isBool bool }

type binaryModel struct {
	env      map[string]bool                // FIRMBRIDGE_* variables it reads
	defaults map[string]string              // their literal defaults
	commands map[string]string              // subcommand -> the function that runs it
	flags    map[string]map[string]flagInfo // subcommand -> flags it accepts
}

var (
	binaryOnce sync.Once
	binary     *binaryModel
	binaryErr  error
)

func loadBinary(t *testing.T) *binaryModel {
	t.Helper()
	binaryOnce.Do(func() { binary, binaryErr = parseBinary(filepath.Join(repoRoot(t), binarySource)) })
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binary
}

// flagMethods are flag.FlagSet's definers; the value is the index of the
// name argument and whether the flag is boolean.
var flagMethods = map[string]struct {
	arg    int
	isBool bool
}{
	"String": {0, false}, "StringVar": {1, false}, "Int": {0, false}, "IntVar": {1, false},
	"Int64": {0, false}, "Int64Var": {1, false}, "Uint": {0, false}, "UintVar": {1, false},
	"Uint64": {0, false}, "Uint64Var": {1, false}, "Float64": {0, false}, "Float64Var": {1, false},
	"Duration": {0, false}, "DurationVar": {1, false}, "Func": {0, false}, "Var": {1, false},
	"TextVar": {1, false}, "Bool": {0, true}, "BoolVar": {1, true}, "BoolFunc": {0, true},
}

// rangeLists are package-level lists of the root package that the binary
// ranges over to build names (rate-limit flags and variables per role).
var rangeLists = map[string][]string{"Roles": firmbridge.Roles, "Domains": firmbridge.Domains}

var envName = regexp.MustCompile(`^FIRMBRIDGE_[A-Z0-9_]+$`)

// parseBinary reads the non-test Go files of the binary. Variables: every
// call of env (the function that reads "FIRMBRIDGE_" + its first
// parameter) or of a wrapper passing its first parameter on to it, with the
// name evaluated where it is built from literals, strings.ToUpper and a
// range over firmbridge.Roles; and every literal that is a whole
// FIRMBRIDGE_* name. Subcommands: the map literal of main.go from names to
// run functions. Flags of a subcommand: every flag defined in a function
// or method reachable from its run function (a method when the type of its
// receiver value is declared in sight, see localTypes). A nested
// subcommand's flags count for its parent (ingest has replay-dlq's).
func parseBinary(dir string) (*binaryModel, error) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var files []*ast.File
	var mainFile *ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		if filepath.Base(p) == "main.go" {
			mainFile = f
		}
	}
	if len(files) == 0 || mainFile == nil {
		return nil, fmt.Errorf("no Go files or no main.go in %s", dir)
	}
	// Functions by name, methods by Type.name.
	funcs := map[string]*ast.FuncDecl{}
	for _, f := range files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				funcs[funcKey(fd)] = fd
			}
		}
	}
	m := &binaryModel{env: map[string]bool{}, defaults: map[string]string{}, commands: map[string]string{}, flags: map[string]map[string]flagInfo{}}

	// The readers of FIRMBRIDGE_<first parameter>, then their wrappers.
	readers := map[string]bool{}
	for name, fd := range funcs {
		p := firstStringParam(fd)
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if b, ok := n.(*ast.BinaryExpr); ok && b.Op == token.ADD && p != "" {
				if lit, ok := b.X.(*ast.BasicLit); ok && lit.Value == `"FIRMBRIDGE_"` && isIdent(b.Y, p) {
					readers[name] = true
				}
			}
			return true
		})
	}
	if len(readers) == 0 {
		return nil, errors.New(`no function reads "FIRMBRIDGE_" + its parameter`)
	}
	for changed := true; changed; {
		changed = false
		for name, fd := range funcs {
			p := firstStringParam(fd)
			if readers[name] || p == "" {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if c, ok := n.(*ast.CallExpr); ok && len(c.Args) > 0 && readers[calleeName(c)] && isIdent(c.Args[0], p) {
					readers[name], changed = true, true
				}
				return true
			})
		}
	}

	// Variables, defaults and flags, function by function.
	flagsIn := map[string]map[string]flagInfo{}
	refs := map[string]map[string]bool{}
	for name, fd := range funcs {
		flagsIn[name], refs[name] = map[string]flagInfo{}, map[string]bool{}
		ev := evaluator{fd: fd}
		types := localTypes(fd, funcs)
		// Names that are not the package's functions here: x.Sel, and
		// variables declared in the function (a local run shadows func run).
		selected, locals := map[*ast.Ident]bool{}, map[string]bool{}
		ast.Inspect(fd, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				selected[n.Sel] = true
			case *ast.AssignStmt:
				if n.Tok == token.DEFINE {
					for _, l := range n.Lhs {
						if id, ok := l.(*ast.Ident); ok {
							locals[id.Name] = true
						}
					}
				}
			case *ast.RangeStmt:
				for _, e := range []ast.Expr{n.Key, n.Value} {
					if id, ok := e.(*ast.Ident); ok {
						locals[id.Name] = true
					}
				}
			case *ast.ValueSpec:
				for _, id := range n.Names {
					locals[id.Name] = true
				}
			case *ast.Field:
				for _, id := range n.Names {
					locals[id.Name] = true
				}
			}
			return true
		})
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); err == nil && n.Kind == token.STRING && envName.MatchString(s) {
					m.env[s] = true
				}
			case *ast.Ident:
				if _, ok := funcs[n.Name]; ok && !selected[n] && !locals[n.Name] {
					refs[name][n.Name] = true
				}
			case *ast.SelectorExpr:
				// A method of a value whose type is known here.
				if x, ok := n.X.(*ast.Ident); ok {
					if _, ok := funcs[types[x.Name]+"."+n.Sel.Name]; ok {
						refs[name][types[x.Name]+"."+n.Sel.Name] = true
					}
				}
			case *ast.CallExpr:
				if readers[calleeName(n)] && len(n.Args) > 0 {
					names := ev.strs(n.Args[0], 0)
					for _, s := range names {
						m.env["FIRMBRIDGE_"+s] = true
					}
					if len(names) == 1 && len(n.Args) > 1 {
						if def := ev.strs(n.Args[1], 0); len(def) == 1 {
							m.defaults["FIRMBRIDGE_"+names[0]] = def[0]
						}
					}
				}
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
					if fm, ok := flagMethods[sel.Sel.Name]; ok && len(n.Args) > fm.arg {
						for _, s := range ev.strs(n.Args[fm.arg], 0) {
							flagsIn[name][s] = flagInfo{isBool: fm.isBool}
						}
					}
				}
			}
			return true
		})
	}

	// Subcommands: main.go's map literal from names to run functions.
	ast.Inspect(mainFile, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		if mt, ok := lit.Type.(*ast.MapType); !ok || !isIdent(mt.Key, "string") {
			return true
		}
		for _, e := range lit.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			k, ok1 := kv.Key.(*ast.BasicLit)
			v, ok2 := kv.Value.(*ast.Ident)
			if !ok1 || !ok2 || k.Kind != token.STRING {
				continue
			}
			if _, isFunc := funcs[v.Name]; isFunc {
				cmd, _ := strconv.Unquote(k.Value)
				m.commands[cmd] = v.Name
			}
		}
		return true
	})
	if len(m.commands) == 0 {
		return nil, errors.New("no map from subcommand names to run functions in main.go")
	}
	for cmd, fn := range m.commands {
		m.flags[cmd] = map[string]flagInfo{}
		seen := map[string]bool{}
		queue := []string{fn}
		for len(queue) > 0 {
			f := queue[0]
			queue = queue[1:]
			if seen[f] {
				continue
			}
			seen[f] = true
			for fl, info := range flagsIn[f] {
				m.flags[cmd][fl] = info
			}
			for r := range refs[f] {
				queue = append(queue, r)
			}
		}
	}
	return m, nil
}

func funcKey(fd *ast.FuncDecl) string {
	if fd.Recv != nil && len(fd.Recv.List) == 1 {
		return typeName(fd.Recv.List[0].Type) + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// typeName is T for T, *T and T[P].
func typeName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.StarExpr:
		return typeName(e.X)
	case *ast.IndexExpr:
		return typeName(e.X)
	case *ast.UnaryExpr:
		return typeName(e.X)
	case *ast.CompositeLit:
		return typeName(e.Type)
	}
	return ""
}

// localTypes names the package-local types of a function's receiver,
// parameters and variables, as far as their declaration shows them: var x
// T, x := T{...} or &T{...}, and x, y := f(...) for a function of the
// package. Method calls on other values are not followed.
func localTypes(fd *ast.FuncDecl, funcs map[string]*ast.FuncDecl) map[string]string {
	types := map[string]string{}
	fields := func(fl *ast.FieldList) {
		if fl == nil {
			return
		}
		for _, f := range fl.List {
			for _, n := range f.Names {
				types[n.Name] = typeName(f.Type)
			}
		}
	}
	fields(fd.Recv)
	fields(fd.Type.Params)
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ValueSpec:
			for _, id := range n.Names {
				if n.Type != nil {
					types[id.Name] = typeName(n.Type)
				}
			}
		case *ast.AssignStmt:
			if len(n.Lhs) == len(n.Rhs) {
				for i, l := range n.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						if t := typeName(n.Rhs[i]); t != "" {
							types[id.Name] = t
						}
					}
				}
			} else if call, ok := n.Rhs[0].(*ast.CallExpr); ok && len(n.Rhs) == 1 {
				if f, ok := funcs[calleeName(call)]; ok && f.Recv == nil && f.Type.Results != nil {
					var results []string
					for _, r := range f.Type.Results.List {
						for range max(1, len(r.Names)) {
							results = append(results, typeName(r.Type))
						}
					}
					for i, l := range n.Lhs {
						if id, ok := l.(*ast.Ident); ok && i < len(results) {
							types[id.Name] = results[i]
						}
					}
				}
			}
		}
		return true
	})
	return types
}

func firstStringParam(fd *ast.FuncDecl) string {
	if fd.Type.Params == nil || len(fd.Type.Params.List) == 0 {
		return ""
	}
	f := fd.Type.Params.List[0]
	if len(f.Names) == 0 || !isIdent(f.Type, "string") {
		return ""
	}
	return f.Names[0].Name
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// calleeName is the name of a function of the package called by its name.
func calleeName(c *ast.CallExpr) string {
	if f, ok := c.Fun.(*ast.Ident); ok {
		return f.Name
	}
	return ""
}

// evaluator gives the strings an expression of one function can be.
type evaluator struct{ fd *ast.FuncDecl }

func (ev evaluator) strs(e ast.Expr, depth int) []string {
	if depth > 8 {
		return nil
	}
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind == token.STRING {
			if s, err := strconv.Unquote(e.Value); err == nil {
				return []string{s}
			}
		}
	case *ast.ParenExpr:
		return ev.strs(e.X, depth+1)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return nil
		}
		l, r := ev.strs(e.X, depth+1), ev.strs(e.Y, depth+1)
		var out []string
		for _, a := range l {
			for _, b := range r {
				out = append(out, a+b)
			}
		}
		return out
	case *ast.CallExpr:
		sel, ok := e.Fun.(*ast.SelectorExpr)
		if !ok || !isIdent(sel.X, "strings") || len(e.Args) != 1 {
			return nil
		}
		conv := map[string]func(string) string{"ToUpper": strings.ToUpper, "ToLower": strings.ToLower}[sel.Sel.Name]
		if conv == nil {
			return nil
		}
		var out []string
		for _, s := range ev.strs(e.Args[0], depth+1) {
			out = append(out, conv(s))
		}
		return out
	case *ast.Ident:
		var out []string
		ast.Inspect(ev.fd.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.AssignStmt:
				if len(n.Lhs) == len(n.Rhs) {
					for i, l := range n.Lhs {
						if isIdent(l, e.Name) {
							out = append(out, ev.strs(n.Rhs[i], depth+1)...)
						}
					}
				}
			case *ast.RangeStmt:
				if n.Value != nil && isIdent(n.Value, e.Name) {
					if sel, ok := n.X.(*ast.SelectorExpr); ok && isIdent(sel.X, "firmbridge") {
						out = append(out, rangeLists[sel.Sel.Name]...)
					}
				}
			}
			return true
		})
		return out
	}
	return nil
}

func TestBinaryModel(t *testing.T) {
	b := loadBinary(t)
	for _, cmd := range []string{"serve", "ingest", "migrate", "keygen"} {
		if _, ok := b.commands[cmd]; !ok {
			t.Errorf("subcommand %q not found in main.go (found %v)", cmd, sortedKeys(b.commands))
		}
	}
	for cmd, l := range listeners {
		if _, ok := b.flags[cmd][l.flag]; !ok {
			t.Errorf("%s has no flag --%s for its listen address", cmd, l.flag)
		}
		if !b.env[l.env] || b.defaults[l.env] == "" {
			t.Errorf("%s: %s is not read with a literal default", cmd, l.env)
		}
	}
	for cmd, vars := range keyFiles {
		for _, v := range vars {
			if !b.env[v] {
				t.Errorf("%s: key file variable %s is not read by the binary", cmd, v)
			}
		}
	}
	// The variables built per role must have been found.
	if !b.env["FIRMBRIDGE_RATE_LIMIT_BANK"] || !b.env["FIRMBRIDGE_CLICKHOUSE_PASSWORD"] {
		t.Errorf("variables per role or environment-only ones not found: %v", sortedKeys(b.env))
	}
	if _, ok := b.flags["keygen"]["if-missing"]; !ok {
		t.Error("keygen has no --if-missing")
	}
	t.Logf("%d variables, %d subcommands", len(b.env), len(b.commands))
}

// ---------------------------------------------------------------------------
// The manifests.

type object struct {
	file string
	doc  map[string]any
}

func (o object) kind() string      { return str(o.doc["kind"]) }
func (o object) name() string      { return str(dig(o.doc, "metadata", "name")) }
func (o object) namespace() string { return str(dig(o.doc, "metadata", "namespace")) }
func (o object) String() string    { return fmt.Sprintf("%s %s/%s", o.file, o.kind(), o.name()) }

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func listOf(v any) []any {
	l, _ := v.([]any)
	return l
}

func strList(v any) []string {
	var out []string
	for _, e := range listOf(v) {
		out = append(out, str(e))
	}
	return out
}

func intOf(v any) (int, bool) {
	switch v := v.(type) {
	case int:
		return v, true
	case int64:
		return int(v), true
	case uint64:
		return int(v), true
	case float64:
		return int(v), v == float64(int(v))
	case string:
		n, err := strconv.Atoi(v)
		return n, err == nil
	}
	return 0, false
}

func decodeAll(data []byte) ([]map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

type manifests struct {
	objects   []object
	kustomize map[string]any
	files     []string // every YAML file in deploy/k8s but the kustomization
	compose   map[string]any
	docker    *dockerfile
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	root := repoRoot(t)
	ms := &manifests{}
	entries, err := os.ReadDir(filepath.Join(root, k8sDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || (!strings.HasSuffix(e.Name(), ".yaml") && !strings.HasSuffix(e.Name(), ".yml")) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, k8sDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		docs, err := decodeAll(data)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		if e.Name() == kustomization {
			if len(docs) != 1 {
				t.Fatalf("%s: want one document, got %d", e.Name(), len(docs))
			}
			ms.kustomize = docs[0]
			continue
		}
		ms.files = append(ms.files, e.Name())
		for _, d := range docs {
			o := object{file: e.Name(), doc: d}
			if o.kind() == "" || o.name() == "" || str(d["apiVersion"]) == "" {
				t.Errorf("%s: a document without apiVersion, kind or metadata.name", e.Name())
			}
			ms.objects = append(ms.objects, o)
		}
	}
	if ms.kustomize == nil {
		t.Fatalf("no %s in %s", kustomization, k8sDir)
	}
	data, err := os.ReadFile(filepath.Join(root, composePath))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := decodeAll(data)
	if err != nil || len(docs) != 1 {
		t.Fatalf("%s: %v (%d documents)", composePath, err, len(docs))
	}
	ms.compose = docs[0]
	if ms.docker, err = parseDockerfile(filepath.Join(root, dockerfilePath)); err != nil {
		t.Fatal(err)
	}
	return ms
}

func (ms *manifests) find(kind, name string) (object, bool) {
	for _, o := range ms.objects {
		if o.kind() == kind && o.name() == name {
			return o, true
		}
	}
	return object{}, false
}

func (ms *manifests) ofKind(kind string) []object {
	var out []object
	for _, o := range ms.objects {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// workload is an object that runs pods.
type workload struct {
	object
	pod    map[string]any // the pod spec
	labels map[string]any // the pod template's labels
}

func (ms *manifests) workloads() []workload {
	var out []workload
	for _, o := range ms.objects {
		var tmpl any
		switch o.kind() {
		case "Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet":
			tmpl = dig(o.doc, "spec", "template")
		case "CronJob":
			tmpl = dig(o.doc, "spec", "jobTemplate", "spec", "template")
		case "Pod":
			tmpl = o.doc
		default:
			continue
		}
		out = append(out, workload{object: o, pod: mapOf(dig(tmpl, "spec")), labels: mapOf(dig(tmpl, "metadata", "labels"))})
	}
	return out
}

// container is a firmbridge container of a workload or of the compose file.
type container struct {
	where string
	image string
	argv  []string          // after the entry point: subcommand and flags
	env   map[string]string // its environment, as far as the manifests say
	c     map[string]any    // the container (Kubernetes) or service (compose)
	w     *workload         // nil in compose
}

func (c container) cmd() string {
	if len(c.argv) == 0 {
		return ""
	}
	return c.argv[0]
}

// flag returns the value of --name among the container's arguments: after
// "=", else the next argument unless that is a flag too (a boolean flag
// alone is "true"; TestCommandsAndFlags refuses other positional arguments).
func (c container) flag(name string) (string, bool) {
	for i := 1; i < len(c.argv); i++ {
		a := strings.TrimLeft(c.argv[i], "-")
		if !strings.HasPrefix(c.argv[i], "-") {
			continue
		}
		if k, v, ok := strings.Cut(a, "="); ok && k == name {
			return v, true
		}
		if a == name {
			if i+1 < len(c.argv) && !strings.HasPrefix(c.argv[i+1], "-") {
				return c.argv[i+1], true
			}
			return "true", true
		}
	}
	return "", false
}

// setting is the effective value of a variable: flag, then the container's
// environment, then the image's ENV, then the binary's default.
func (c container) setting(d *dockerfile, b *binaryModel, flagName, env string) string {
	if v, ok := c.flag(flagName); ok && flagName != "" {
		return v
	}
	if v, ok := c.env[env]; ok && v != "" {
		return v
	}
	if v := d.final().env[env]; v != "" {
		return v
	}
	return b.defaults[env]
}

// k8sContainers lists every container of every workload; the environment
// includes what envFrom brings from the ConfigMaps and Secrets here.
func (ms *manifests) k8sContainers(t *testing.T) []container {
	t.Helper()
	var out []container
	for _, w := range ms.workloads() {
		for _, key := range []string{"initContainers", "containers"} {
			for _, raw := range listOf(w.pod[key]) {
				c := mapOf(raw)
				ct := container{where: fmt.Sprintf("%s container %s", w.object, str(c["name"])), image: str(c["image"]), c: c, w: &w, env: map[string]string{}}
				cmd := strList(c["command"])
				switch {
				case len(cmd) == 0:
				case len(cmd) == 1 && slices.Equal(cmd, ms.docker.final().entrypoint):
				default:
					t.Errorf("%s: command %v replaces the image's entry point %v; give the subcommand as args", ct.where, cmd, ms.docker.final().entrypoint)
				}
				ct.argv = strList(c["args"])
				if len(ct.argv) == 0 {
					ct.argv = ms.docker.final().cmd
				}
				for _, ef := range listOf(c["envFrom"]) {
					if name := str(dig(ef, "configMapRef", "name")); name != "" {
						if cm, ok := ms.find("ConfigMap", name); ok {
							for k, v := range mapOf(cm.doc["data"]) {
								ct.env[str(dig(ef, "prefix"))+k] = str(v)
							}
						}
					}
					if name := str(dig(ef, "secretRef", "name")); name != "" {
						if s, ok := ms.find("Secret", name); ok {
							for _, k := range secretKeys(s) {
								ct.env[str(dig(ef, "prefix"))+k] = "(secret)"
							}
						}
					}
				}
				for _, e := range listOf(c["env"]) {
					ct.env[str(dig(e, "name"))] = str(dig(e, "value"))
				}
				out = append(out, ct)
			}
		}
	}
	return out
}

func secretKeys(s object) []string {
	var keys []string
	for _, f := range []string{"data", "stringData"} {
		for k := range mapOf(s.doc[f]) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// composeServices returns every service by name.
func (ms *manifests) composeServices() map[string]map[string]any {
	out := map[string]map[string]any{}
	for name, s := range mapOf(ms.compose["services"]) {
		out[name] = mapOf(s)
	}
	return out
}

func composeEnv(s map[string]any) map[string]string {
	env := map[string]string{}
	switch e := s["environment"].(type) {
	case map[string]any:
		for k, v := range e {
			env[k] = str(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(str(kv), "=")
			env[k] = v
		}
	}
	return env
}

func composeArgv(s map[string]any) []string {
	switch c := s["command"].(type) {
	case string:
		return strings.Fields(c)
	case []any:
		return strList(c)
	}
	return nil
}

// composeContainers lists the compose services that run firmbridge: those
// built from the Dockerfile or running a firmbridge subcommand.
func (ms *manifests) composeContainers(b *binaryModel) []container {
	var out []container
	for _, name := range sortedKeys(ms.composeServices()) {
		s := ms.composeServices()[name]
		argv := composeArgv(s)
		_, isCmd := b.commands[firstOr(argv, "")]
		if s["build"] == nil && !isCmd {
			continue
		}
		if len(argv) == 0 {
			argv = ms.docker.final().cmd
		}
		out = append(out, container{where: "compose service " + name, image: str(s["image"]), argv: argv, env: composeEnv(s), c: s})
	}
	return out
}

func firstOr(l []string, def string) string {
	if len(l) == 0 {
		return def
	}
	return l[0]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ---------------------------------------------------------------------------
// The Dockerfile.

type stage struct {
	from, name string
	env        map[string]string
	runs       []string   // RUN commands, shell form, without --mount and other options
	copies     [][]string // COPY arguments
	user       string
	entrypoint []string
	cmd        []string
	expose     []string
	lines      []string // every instruction after FROM, in order
}

type dockerfile struct{ stages []*stage }

func (d *dockerfile) final() *stage { return d.stages[len(d.stages)-1] }

func parseDockerfile(p string) (*dockerfile, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	// Join continued lines, drop comments.
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	d := &dockerfile{}
	for _, line := range lines {
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		instr = strings.ToUpper(instr)
		if instr == "FROM" {
			f := strings.Fields(rest)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			if len(f) == 0 {
				return nil, fmt.Errorf("%s: FROM without an image", p)
			}
			s := &stage{from: f[0], env: map[string]string{}}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			d.stages = append(d.stages, s)
			continue
		}
		if len(d.stages) == 0 {
			if instr == "ARG" {
				continue
			}
			return nil, fmt.Errorf("%s: %s before FROM", p, instr)
		}
		s := d.stages[len(d.stages)-1]
		s.lines = append(s.lines, instr+" "+rest)
		switch instr {
		case "ENV":
			words, err := shellWords(rest)
			if err != nil {
				return nil, err
			}
			if len(words) == 2 && !strings.Contains(words[0], "=") {
				s.env[words[0]] = words[1]
				break
			}
			for _, w := range words {
				k, v, ok := strings.Cut(w, "=")
				if !ok {
					return nil, fmt.Errorf("%s: ENV %q: want KEY=VALUE", p, w)
				}
				s.env[k] = v
			}
		case "RUN":
			for strings.HasPrefix(rest, "--") {
				_, rest, _ = strings.Cut(rest, " ")
				rest = strings.TrimSpace(rest)
			}
			s.runs = append(s.runs, rest)
		case "COPY", "ADD":
			words, err := shellWords(rest)
			if err != nil {
				return nil, err
			}
			s.copies = append(s.copies, words)
		case "USER":
			s.user = rest
		case "EXPOSE":
			s.expose = append(s.expose, strings.Fields(rest)...)
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				return nil, fmt.Errorf("%s: %s must be in exec (JSON) form: %v", p, instr, err)
			}
			if instr == "ENTRYPOINT" {
				s.entrypoint = v
			} else {
				s.cmd = v
			}
		}
	}
	if len(d.stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM", p)
	}
	return d, nil
}

// shellWords splits a command line as sh would for plain words and quotes.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, quote := false, rune(0)
	for i := 0; i < len(s); i++ {
		ch := rune(s[i])
		switch {
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			} else {
				cur.WriteRune(ch)
			}
		case quote == '"':
			if ch == '"' {
				quote = 0
			} else if ch == '\\' && i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			} else {
				cur.WriteRune(ch)
			}
		case ch == '\'' || ch == '"':
			quote, inWord = ch, true
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case ch == ' ' || ch == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.ContainsRune("&|;<>()$`", ch):
			return nil, fmt.Errorf("%q: only a plain command is understood here, not shell syntax (%c)", s, ch)
		default:
			cur.WriteRune(ch)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%q: unterminated quote", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// goBuild is the build stage's `go build`: its environment assignments and
// its arguments after "go".
func (d *dockerfile) goBuild() (st *stage, env map[string]string, args []string, err error) {
	for _, s := range d.stages {
		for _, r := range s.runs {
			if !strings.Contains(r, "go build") {
				continue
			}
			words, err := shellWords(r)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("the RUN with go build must be one plain command: %v", err)
			}
			env = map[string]string{}
			for len(words) > 0 && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(words[0]) {
				k, v, _ := strings.Cut(words[0], "=")
				env[k] = v
				words = words[1:]
			}
			if len(words) < 2 || words[0] != "go" || words[1] != "build" {
				return nil, nil, nil, fmt.Errorf("RUN %q: want [VAR=value ...] go build ...", r)
			}
			if args != nil {
				return nil, nil, nil, errors.New("more than one go build in the Dockerfile")
			}
			st, args = s, words[1:]
		}
	}
	if args == nil {
		return nil, nil, nil, errors.New("no RUN go build in the Dockerfile")
	}
	return st, env, args, nil
}

// ---------------------------------------------------------------------------
// Checks.

var digestRef = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

// pinned says whether an image reference names a fixed version: a digest,
// or a tag other than latest.
func pinned(ref string) error {
	if ref == "" {
		return errors.New("no image")
	}
	if digestRef.MatchString(ref) {
		return nil
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	switch {
	case !ok || tag == "":
		return fmt.Errorf("image %q has no tag or digest", ref)
	case tag == "latest" || strings.HasPrefix(tag, "latest-") || strings.Contains(tag, "${"):
		return fmt.Errorf("image %q is not pinned (tag %q)", ref, tag)
	}
	return nil
}

func repository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

func TestImagesPinned(t *testing.T) {
	ms := loadManifests(t)
	for _, w := range ms.workloads() {
		for _, key := range []string{"initContainers", "containers"} {
			for _, c := range listOf(w.pod[key]) {
				if err := pinned(str(dig(c, "image"))); err != nil {
					t.Errorf("%s container %s: %v", w.object, str(dig(c, "name")), err)
				}
			}
		}
	}
	for name, s := range ms.composeServices() {
		if err := pinned(str(s["image"])); err != nil {
			t.Errorf("%s service %s: %v", composePath, name, err)
		}
	}
	for _, img := range listOf(ms.kustomize["images"]) {
		ref := str(dig(img, "name"))
		switch {
		case str(dig(img, "digest")) != "":
			ref += "@" + str(dig(img, "digest"))
		case str(dig(img, "newTag")) != "":
			ref += ":" + str(dig(img, "newTag"))
		}
		if err := pinned(ref); err != nil {
			t.Errorf("%s images: %v", kustomization, err)
		}
	}
	stages := map[string]bool{}
	for _, s := range ms.docker.stages {
		if !stages[s.from] && s.from != "scratch" {
			if err := pinned(s.from); err != nil {
				t.Errorf("%s: FROM %v", dockerfilePath, err)
			}
		}
		if s.name != "" {
			stages[s.name] = true
		}
	}
}

// TestFirmbridgeImage: every firmbridge container runs the one image built
// from the Dockerfile, under one name.
func TestFirmbridgeImage(t *testing.T) {
	ms, b := loadManifests(t), loadBinary(t)
	var repo string
	built := 0
	for name, s := range ms.composeServices() {
		if s["build"] == nil {
			continue
		}
		built++
		bld := s["build"]
		ctx, file := str(dig(bld, "context")), str(dig(bld, "dockerfile"))
		if sb, ok := bld.(string); ok {
			ctx, file = sb, "Dockerfile"
		}
		if got := filepath.Clean(filepath.Join(filepath.Dir(composePath), ctx, file)); got != filepath.Clean(dockerfilePath) {
			t.Errorf("compose service %s builds %s, want %s", name, got, dockerfilePath)
		}
		if filepath.Clean(filepath.Join(filepath.Dir(composePath), ctx)) != "." {
			t.Errorf("compose service %s: the build context must be the repository root (the Dockerfile copies go.mod from it), got %q", name, ctx)
		}
		if repo == "" {
			repo = repository(str(s["image"]))
		}
	}
	if built == 0 {
		t.Fatalf("no compose service is built from %s", dockerfilePath)
	}
	images := map[string]bool{}
	for _, c := range ms.composeContainers(b) {
		if c.c["build"] == nil {
			t.Errorf("%s runs firmbridge but is not built from %s", c.where, dockerfilePath)
		}
		if c.c["entrypoint"] != nil {
			t.Errorf("%s replaces the image's entry point", c.where)
		}
		images[c.image] = true
	}
	if len(images) != 1 {
		t.Errorf("compose: the firmbridge services use %d images, want one: %v", len(images), sortedKeys(images))
	}
	k8sImages := map[string]bool{}
	for _, c := range ms.k8sContainers(t) {
		k8sImages[c.image] = true
		if repository(c.image) != repo {
			t.Errorf("%s: image %s, want the firmbridge image %s", c.where, c.image, repo)
		}
	}
	if len(k8sImages) != 1 {
		t.Errorf("Kubernetes: the firmbridge containers use %d images, want one: %v", len(k8sImages), sortedKeys(k8sImages))
	}
	found := false
	for _, img := range listOf(ms.kustomize["images"]) {
		found = found || str(dig(img, "name")) == repo
	}
	if !found {
		t.Errorf("%s: no images entry for %s, the release to deploy", kustomization, repo)
	}
}

// TestEnvNamesAreRead: every FIRMBRIDGE_* variable the deployment sets is
// one the binary reads; firmbridge containers set no others but Go's.
func TestEnvNamesAreRead(t *testing.T) {
	ms, b := loadManifests(t), loadBinary(t)
	check := func(where, name string, onlyFirmbridge bool) {
		switch {
		case envName.MatchString(name):
			if !b.env[name] {
				t.Errorf("%s: %s is not read by %s", where, name, binarySource)
			}
		case onlyFirmbridge && !otherEnv[name]:
			t.Errorf("%s: %s is not a FIRMBRIDGE_* variable", where, name)
		}
	}
	for _, cm := range ms.ofKind("ConfigMap") {
		for k := range mapOf(cm.doc["data"]) {
			check(cm.String(), k, true)
		}
	}
	for _, s := range ms.ofKind("Secret") {
		for _, k := range secretKeys(s) {
			check(s.String(), k, false)
		}
	}
	for _, w := range ms.workloads() {
		for _, key := range []string{"initContainers", "containers"} {
			for _, c := range listOf(w.pod[key]) {
				for _, e := range listOf(dig(c, "env")) {
					check(w.String(), str(dig(e, "name")), true)
				}
				// Every key of a Secret taken whole into the environment is a variable.
				for _, ef := range listOf(dig(c, "envFrom")) {
					if s, ok := ms.find("Secret", str(dig(ef, "secretRef", "name"))); ok {
						for _, k := range secretKeys(s) {
							check(s.String()+" (envFrom of "+w.name()+")", str(dig(ef, "prefix"))+k, true)
						}
					}
				}
			}
		}
	}
	for name, s := range ms.composeServices() {
		for k := range composeEnv(s) {
			check("compose service "+name, k, false)
		}
	}
	for _, c := range ms.composeContainers(b) {
		for k := range c.env {
			check(c.where, k, true)
		}
	}
	for _, s := range ms.docker.stages {
		for k := range s.env {
			check(dockerfilePath, k, false)
		}
	}
}

// TestCommandsAndFlags: every container runs a real subcommand with flags
// that subcommand has.
// composeHealthchecks are the health checks of firmbridge compose services
// that run the binary itself (`firmbridge healthcheck --url ...`), as
// containers whose argv follows the entry point.
func (ms *manifests) composeHealthchecks(t *testing.T, b *binaryModel) []container {
	t.Helper()
	var out []container
	for _, c := range ms.composeContainers(b) {
		test := strList(dig(c.c["healthcheck"], "test"))
		if len(test) < 2 || test[0] != "CMD" || !slices.Equal(test[1:2], ms.docker.final().entrypoint) {
			if len(test) > 0 {
				t.Errorf("%s: health check %v does not run the image's binary %v (the image has no shell or curl)", c.where, test, ms.docker.final().entrypoint)
			}
			continue
		}
		out = append(out, container{where: c.where + " healthcheck", image: c.image, argv: test[2:], env: c.env, c: c.c})
	}
	return out
}

func TestCommandsAndFlags(t *testing.T) {
	ms, b := loadManifests(t), loadBinary(t)
	all := append(ms.k8sContainers(t), ms.composeContainers(b)...)
	all = append(all, ms.composeHealthchecks(t, b)...)
	if len(all) == 0 {
		t.Fatal("no firmbridge containers")
	}
	for _, c := range all {
		flags, ok := b.flags[c.cmd()]
		if !ok {
			t.Errorf("%s: %q is not a firmbridge subcommand (%v)", c.where, c.cmd(), sortedKeys(b.commands))
			continue
		}
		for i := 1; i < len(c.argv); i++ {
			a := c.argv[i]
			if !strings.HasPrefix(a, "-") {
				t.Errorf("%s: argument %q is not a flag", c.where, a)
				continue
			}
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			info, ok := flags[name]
			if !ok {
				t.Errorf("%s: %s has no flag --%s", c.where, c.cmd(), name)
				continue
			}
			if !hasValue && !info.isBool {
				i++ // its value
				if i >= len(c.argv) {
					t.Errorf("%s: --%s has no value", c.where, name)
				}
			}
		}
	}
}

// listenAddr is the address a listening container's process binds.
func listenAddr(c container, ms *manifests, b *binaryModel) (host string, port int, err error) {
	l := listeners[c.cmd()]
	addr := c.setting(ms.docker, b, l.flag, l.env)
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %v", addr, err)
	}
	if port, err = strconv.Atoi(p); err != nil {
		return "", 0, fmt.Errorf("listen address %q: %v", addr, err)
	}
	switch h {
	case "", "0.0.0.0", "::":
	default:
		return "", 0, fmt.Errorf("listens on %q (%s or --%s): in a container that must be 0.0.0.0:PORT", addr, l.env, l.flag)
	}
	return h, port, nil
}

// containerPort resolves a probe's or a Service's port (number or name).
func containerPort(c map[string]any, p any) (int, bool) {
	if n, ok := intOf(p); ok {
		return n, true
	}
	for _, cp := range listOf(c["ports"]) {
		if str(dig(cp, "name")) == str(p) {
			return intOf(dig(cp, "containerPort"))
		}
	}
	return 0, false
}

// TestProbesAndResources: the processes that listen do so on every
// interface, on a declared port, with liveness on /healthz and readiness on
// /readyz there; every container asks for CPU and memory.
func TestProbesAndResources(t *testing.T) {
	ms, b := loadManifests(t), loadBinary(t)
	listening := 0
	for _, c := range ms.k8sContainers(t) {
		for _, r := range []string{"cpu", "memory"} {
			if str(dig(c.c, "resources", "requests", r)) == "" {
				t.Errorf("%s: no resources.requests.%s", c.where, r)
			}
		}
		if str(dig(c.c, "resources", "limits", "memory")) == "" {
			t.Errorf("%s: no resources.limits.memory", c.where)
		}
		if _, ok := listeners[c.cmd()]; !ok {
			continue
		}
		listening++
		_, port, err := listenAddr(c, ms, b)
		if err != nil {
			t.Errorf("%s: %v", c.where, err)
			continue
		}
		declared := false
		for _, cp := range listOf(c.c["ports"]) {
			n, _ := intOf(dig(cp, "containerPort"))
			declared = declared || n == port
		}
		if !declared {
			t.Errorf("%s: listens on port %d but does not declare it in ports", c.where, port)
		}
		for probe, want := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": ""} {
			p := dig(c.c, probe)
			if p == nil {
				if want != "" {
					t.Errorf("%s: no %s", c.where, probe)
				}
				continue
			}
			get := dig(p, "httpGet")
			if get == nil {
				t.Errorf("%s: %s is not an httpGet", c.where, probe)
				continue
			}
			if path := str(dig(get, "path")); (want != "" && path != want) || (want == "" && path != "/healthz" && path != "/readyz") {
				t.Errorf("%s: %s on %q, want %q", c.where, probe, path, want)
			}
			if n, ok := containerPort(c.c, dig(get, "port")); !ok || n != port {
				t.Errorf("%s: %s on port %v (%d), but %s listens on %d", c.where, probe, dig(get, "port"), n, c.cmd(), port)
			}
		}
		// Scrapers find /metrics on a declared port.
		if ann := str(dig(c.w.doc, "spec", "template", "metadata", "annotations", "prometheus.io/port")); ann != "" {
			if n, ok := containerPort(c.c, ann); !ok || n != port {
				t.Errorf("%s: prometheus.io/port %s is not the port %d that serves /metrics", c.where, ann, port)
			}
		}
		if c.cmd() == "ingest" {
			if n, ok := containerPort(c.c, "metrics"); !ok || n != port {
				t.Errorf("%s: no container port named metrics on the ops port %d", c.where, port)
			}
		}
	}
	if listening == 0 {
		t.Error("no Kubernetes container runs serve or ingest")
	}
	// Compose: published ports reach the listening port.
	for _, c := range ms.composeContainers(b) {
		ports := listOf(c.c["ports"])
		if _, ok := listeners[c.cmd()]; !ok {
			if len(ports) > 0 {
				t.Errorf("%s: %s listens on nothing but publishes %v", c.where, c.cmd(), ports)
			}
			continue
		}
		_, port, err := listenAddr(c, ms, b)
		if err != nil {
			t.Errorf("%s: %v", c.where, err)
			continue
		}
		for _, p := range ports {
			target := str(dig(p, "target"))
			if target == "" {
				s := strings.TrimSuffix(str(p), "/tcp")
				target = s[strings.LastIndex(s, ":")+1:]
			}
			if n, err := strconv.Atoi(target); err != nil || n != port {
				t.Errorf("%s: publishes container port %s, but %s listens on %d", c.where, target, c.cmd(), port)
			}
		}
	}
}

// TestSecurityContext: no firmbridge process runs as root or may gain
// privileges or write its image.
func TestSecurityContext(t *testing.T) {
	ms, b := loadManifests(t), loadBinary(t)
	for _, c := range ms.k8sContainers(t) {
		pod, sc := mapOf(c.w.pod["securityContext"]), mapOf(c.c["securityContext"])
		eff := func(k string) any {
			if v, ok := sc[k]; ok {
				return v
			}
			return pod[k]
		}
		if eff("runAsNonRoot") != true {
			t.Errorf("%s: runAsNonRoot is not true", c.where)
		}
		if u, ok := intOf(eff("runAsUser")); ok && u == 0 {
			t.Errorf("%s: runAsUser 0", c.where)
		}
		if sc["readOnlyRootFilesystem"] != true {
			t.Errorf("%s: readOnlyRootFilesystem is not true", c.where)
		}
		if sc["allowPrivilegeEscalation"] != false {
			t.Errorf("%s: allowPrivilegeEscalation is not false", c.where)
		}
		if !slices.Contains(strList(dig(sc, "capabilities", "drop")), "ALL") {
			t.Errorf("%s: capabilities.drop does not hold ALL", c.where)
		}
	}
	for _, c := range ms.composeContainers(b) {
		if u := str(c.c["user"]); u != "" && (u == "root" || strings.HasPrefix(u, "0:") || u == "0") {
			t.Errorf("%s: user %s", c.where, u)
		}
		if c.c["read_only"] != true {
			t.Errorf("%s: read_only is not true", c.where)
		}
		if !slices.Contains(strList(c.c["cap_drop"]), "ALL") {
			t.Errorf("%s: cap_drop does not hold ALL", c.where)
		}
	}
}

func selects(selector, labels map[string]any) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if str(labels[k]) != str(v) {
			return false
		}
	}
	return true
}

// selected lists the workloads whose pods a label selector picks.
func (ms *manifests) selected(selector map[string]any) []string {
	var names []string
	for _, w := range ms.workloads() {
		if selects(selector, w.labels) {
			names = append(names, w.kind()+"/"+w.name())
		}
	}
	return names
}

// TestAPIAvailability: the API Deployment is spread, kept up by a PDB,
// scaled by an HPA on CPU, and reached by its Service.
func TestAPIAvailability(t *testing.T) {
	ms := loadManifests(t)
	const api = "firmbridge-api"
	dep, ok := ms.find("Deployment", api)
	if !ok {
		t.Fatalf("no Deployment %s", api)
	}
	var w workload
	for _, x := range ms.workloads() {
		if x.kind() == "Deployment" && x.name() == api {
			w = x
		}
	}
	if got := strList(dig(firstMap(listOf(w.pod["containers"])), "args")); firstOr(got, "") != "serve" {
		t.Errorf("%s runs %v, want serve", dep, got)
	}
	replicas, _ := intOf(dig(dep.doc, "spec", "replicas"))
	if replicas < 2 {
		t.Errorf("%s: %d replicas", dep, replicas)
	}
	if sel := mapOf(dig(dep.doc, "spec", "selector", "matchLabels")); !selects(sel, w.labels) {
		t.Errorf("%s: selector %v does not match its pod labels %v", dep, sel, w.labels)
	}
	wantOnly := []string{"Deployment/" + api}
	spread := false
	for _, c := range listOf(w.pod["topologySpreadConstraints"]) {
		if got := ms.selected(mapOf(dig(c, "labelSelector", "matchLabels"))); slices.Equal(got, wantOnly) {
			spread = true
		} else {
			t.Errorf("%s: a topology spread constraint selects %v", dep, got)
		}
	}
	for _, term := range listOf(dig(w.pod, "affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution")) {
		spread = spread || slices.Equal(ms.selected(mapOf(dig(term, "podAffinityTerm", "labelSelector", "matchLabels"))), wantOnly)
	}
	for _, term := range listOf(dig(w.pod, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution")) {
		spread = spread || slices.Equal(ms.selected(mapOf(dig(term, "labelSelector", "matchLabels"))), wantOnly)
	}
	if !spread {
		t.Errorf("%s: no topologySpreadConstraints or pod anti-affinity over its own pods", dep)
	}

	minAvailable := 0
	pdbs := 0
	for _, pdb := range ms.ofKind("PodDisruptionBudget") {
		got := ms.selected(mapOf(dig(pdb.doc, "spec", "selector", "matchLabels")))
		if len(got) == 0 {
			t.Errorf("%s selects no pods", pdb)
		}
		if !slices.Contains(got, "Deployment/"+api) {
			continue
		}
		pdbs++
		if !slices.Equal(got, wantOnly) {
			t.Errorf("%s selects %v, want only the API", pdb, got)
		}
		minA, hasMin := intOf(dig(pdb.doc, "spec", "minAvailable"))
		maxU, hasMax := intOf(dig(pdb.doc, "spec", "maxUnavailable"))
		switch {
		case hasMin && minA >= 2 && minA < replicas:
			minAvailable = minA
		case hasMax && maxU == 1:
		default:
			t.Errorf("%s: want minAvailable 2..replicas-1 or maxUnavailable 1", pdb)
		}
	}
	if pdbs != 1 {
		t.Errorf("%d PodDisruptionBudgets cover %s, want 1", pdbs, api)
	}

	hpas := 0
	for _, hpa := range ms.ofKind("HorizontalPodAutoscaler") {
		ref := mapOf(dig(hpa.doc, "spec", "scaleTargetRef"))
		if str(ref["name"]) != api {
			continue
		}
		hpas++
		if str(hpa.doc["apiVersion"]) != "autoscaling/v2" || str(ref["kind"]) != "Deployment" || str(ref["apiVersion"]) != "apps/v1" {
			t.Errorf("%s: want autoscaling/v2 scaling apps/v1 Deployment %s, got %s %v", hpa, api, str(hpa.doc["apiVersion"]), ref)
		}
		minR, _ := intOf(dig(hpa.doc, "spec", "minReplicas"))
		maxR, _ := intOf(dig(hpa.doc, "spec", "maxReplicas"))
		if minR < 2 || minR <= minAvailable || maxR < minR {
			t.Errorf("%s: minReplicas %d (PDB minAvailable %d), maxReplicas %d", hpa, minR, minAvailable, maxR)
		}
		if minR > replicas {
			t.Errorf("%s: minReplicas %d above the Deployment's %d replicas", hpa, minR, replicas)
		}
		cpu := false
		for _, m := range listOf(dig(hpa.doc, "spec", "metrics")) {
			if str(dig(m, "type")) == "Resource" && str(dig(m, "resource", "name")) == "cpu" && str(dig(m, "resource", "target", "type")) == "Utilization" {
				u, _ := intOf(dig(m, "resource", "target", "averageUtilization"))
				cpu = u > 0 && u <= 100
			}
		}
		if !cpu {
			t.Errorf("%s: no CPU utilization target between 1 and 100", hpa)
		}
	}
	if hpas != 1 {
		t.Errorf("%d HorizontalPodAutoscalers scale %s, want 1", hpas, api)
	}

	// Services reach pods on a port they declare.
	apiService := false
	for _, svc := range ms.ofKind("Service") {
		got := ms.selected(mapOf(dig(svc.doc, "spec", "selector")))
		if len(got) == 0 {
			t.Errorf("%s selects no pods", svc)
			continue
		}
		apiService = apiService || slices.Equal(got, wantOnly)
		for _, w := range ms.workloads() {
			if !slices.Contains(got, w.kind()+"/"+w.name()) {
				continue
			}
			for _, p := range listOf(dig(svc.doc, "spec", "ports")) {
				target := dig(p, "targetPort")
				if target == nil {
					target = dig(p, "port")
				}
				found := false
				for _, c := range listOf(w.pod["containers"]) {
					if n, ok := containerPort(mapOf(c), target); ok {
						for _, cp := range listOf(dig(c, "ports")) {
							m, _ := intOf(dig(cp, "containerPort"))
							found = found || m == n
						}
					}
				}
				if !found {
					t.Errorf("%s: targetPort %v is not a port of %s", svc, target, w)
				}
			}
		}
	}
	if !apiService {
		t.Errorf("no Service selects exactly the pods of %s", api)
	}
}

func firstMap(l []any) map[string]any {
	if len(l) == 0 {
		return nil
	}
	return mapOf(l[0])
}

// TestReferences: every name a manifest refers to exists, everything is in
// the one namespace, and the key files the processes read are mounted.
func TestReferences(t *testing.T) {
	ms, b := loadManifests(t), loadBinary(t)
	nss := ms.ofKind("Namespace")
	if len(nss) != 1 {
		t.Fatalf("%d Namespaces, want 1", len(nss))
	}
	ns := nss[0].name()
	if got := str(ms.kustomize["namespace"]); got != "" && got != ns {
		t.Errorf("%s: namespace %s, but the Namespace is %s", kustomization, got, ns)
	}
	for _, o := range ms.objects {
		if o.kind() != "Namespace" && o.namespace() != ns {
			t.Errorf("%s: namespace %q, want %q", o, o.namespace(), ns)
		}
	}
	secretHas := func(name, key string) error {
		s, ok := ms.find("Secret", name)
		if !ok {
			return fmt.Errorf("no Secret %s", name)
		}
		if key != "" && !slices.Contains(secretKeys(s), key) {
			return fmt.Errorf("Secret %s has no key %s", name, key)
		}
		return nil
	}
	configMapHas := func(name, key string) error {
		cm, ok := ms.find("ConfigMap", name)
		if !ok {
			return fmt.Errorf("no ConfigMap %s", name)
		}
		if _, has := mapOf(cm.doc["data"])[key]; key != "" && !has {
			return fmt.Errorf("ConfigMap %s has no key %s", name, key)
		}
		return nil
	}
	for _, w := range ms.workloads() {
		if sa := str(w.pod["serviceAccountName"]); sa != "" {
			if _, ok := ms.find("ServiceAccount", sa); !ok {
				t.Errorf("%s: no ServiceAccount %s", w, sa)
			}
		}
		volumes := map[string]map[string]any{}
		for _, v := range listOf(w.pod["volumes"]) {
			volumes[str(dig(v, "name"))] = mapOf(v)
			if name := str(dig(v, "secret", "secretName")); name != "" {
				if err := secretHas(name, ""); err != nil {
					t.Errorf("%s volume %s: %v", w, str(dig(v, "name")), err)
				}
				for _, it := range listOf(dig(v, "secret", "items")) {
					if err := secretHas(name, str(dig(it, "key"))); err != nil {
						t.Errorf("%s volume %s: %v", w, str(dig(v, "name")), err)
					}
				}
			}
			if name := str(dig(v, "configMap", "name")); name != "" {
				if err := configMapHas(name, ""); err != nil {
					t.Errorf("%s volume %s: %v", w, str(dig(v, "name")), err)
				}
			}
		}
		for _, key := range []string{"initContainers", "containers"} {
			for _, c := range listOf(w.pod[key]) {
				where := fmt.Sprintf("%s container %s", w, str(dig(c, "name")))
				for _, ef := range listOf(dig(c, "envFrom")) {
					if name := str(dig(ef, "configMapRef", "name")); name != "" {
						if err := configMapHas(name, ""); err != nil {
							t.Errorf("%s envFrom: %v", where, err)
						}
					}
					if name := str(dig(ef, "secretRef", "name")); name != "" {
						if err := secretHas(name, ""); err != nil {
							t.Errorf("%s envFrom: %v", where, err)
						}
					}
				}
				for _, e := range listOf(dig(c, "env")) {
					if ref := dig(e, "valueFrom", "secretKeyRef"); ref != nil {
						if err := secretHas(str(dig(ref, "name")), str(dig(ref, "key"))); err != nil {
							t.Errorf("%s env %s: %v", where, str(dig(e, "name")), err)
						}
					}
					if ref := dig(e, "valueFrom", "configMapKeyRef"); ref != nil {
						if err := configMapHas(str(dig(ref, "name")), str(dig(ref, "key"))); err != nil {
							t.Errorf("%s env %s: %v", where, str(dig(e, "name")), err)
						}
					}
				}
				for _, vm := range listOf(dig(c, "volumeMounts")) {
					if _, ok := volumes[str(dig(vm, "name"))]; !ok {
						t.Errorf("%s: volumeMount of a volume %s the pod does not have", where, str(dig(vm, "name")))
					}
				}
			}
		}
	}
	// Key files: each one a process reads is a file of a mounted Secret.
	for _, c := range ms.k8sContainers(t) {
		for _, p := range requiredKeyFiles(t, c, ms, b) {
			if err := mountedSecretFile(c, ms, p); err != nil {
				t.Errorf("%s: key file %s: %v", c.where, p, err)
			}
		}
	}
}

// requiredKeyFiles are the key files c's subcommand reads.
func requiredKeyFiles(t *testing.T, c container, ms *manifests, b *binaryModel) []string {
	var files []string
	vars := keyFiles[c.cmd()]
	for _, v := range vars {
		val := c.setting(ms.docker, b, "", v)
		if v == "FIRMBRIDGE_AUDIT_KEY_FILE" && val == "" {
			t.Errorf("%s: %s runs the audit sealer but FIRMBRIDGE_AUDIT_KEY_FILE is not set", c.where, c.cmd())
		}
		for _, p := range strings.Split(val, ",") {
			if p = strings.TrimSpace(p); p != "" {
				files = append(files, p)
			}
		}
	}
	// serve verifies digests with the audit key when no public keys are given.
	if c.cmd() == "serve" && c.setting(ms.docker, b, "", "FIRMBRIDGE_AUDIT_PUBLIC_KEYS") == "" {
		if p := c.setting(ms.docker, b, "", "FIRMBRIDGE_AUDIT_KEY_FILE"); p != "" {
			files = append(files, p)
		}
	}
	return files
}

func mountedSecretFile(c container, ms *manifests, file string) error {
	if !path.IsAbs(file) {
		return errors.New("not an absolute path")
	}
	for _, vm := range listOf(c.c["volumeMounts"]) {
		mp := path.Clean(str(dig(vm, "mountPath")))
		var vol map[string]any
		for _, v := range listOf(c.w.pod["volumes"]) {
			if str(dig(v, "name")) == str(dig(vm, "name")) {
				vol = mapOf(v)
			}
		}
		secret := str(dig(vol, "secret", "secretName"))
		var key string
		switch sub := str(dig(vm, "subPath")); {
		case sub != "" && file == mp:
			key = sub
		case sub == "" && path.Dir(file) == mp:
			key = path.Base(file)
			if items := listOf(dig(vol, "secret", "items")); len(items) > 0 {
				key = ""
				for _, it := range items {
					if str(dig(it, "path")) == path.Base(file) {
						key = str(dig(it, "key"))
					}
				}
				if key == "" {
					return fmt.Errorf("volume %s mounted at %s does not project %s", str(dig(vm, "name")), mp, path.Base(file))
				}
			}
		default:
			continue
		}
		if secret == "" {
			return fmt.Errorf("mounted from volume %s, which is not a Secret", str(dig(vm, "name")))
		}
		if dig(vm, "readOnly") != true {
			return fmt.Errorf("volumeMount %s is not readOnly", str(dig(vm, "name")))
		}
		s, ok := ms.find("Secret", secret)
		if !ok || !slices.Contains(secretKeys(s), key) {
			return fmt.Errorf("Secret %s has no key %s", secret, key)
		}
		return nil
	}
	return errors.New("no volumeMount provides it")
}

// TestKustomization: kustomization.yaml lists exactly the manifests here.
func TestKustomization(t *testing.T) {
	ms := loadManifests(t)
	listed := strList(ms.kustomize["resources"])
	for _, f := range ms.files {
		if !slices.Contains(listed, f) {
			t.Errorf("%s does not list %s", kustomization, f)
		}
	}
	seen := map[string]bool{}
	for _, r := range listed {
		if seen[r] {
			t.Errorf("%s lists %s twice", kustomization, r)
		}
		seen[r] = true
		if !slices.Contains(ms.files, r) {
			t.Errorf("%s lists %s, which is not a manifest in %s", kustomization, r, k8sDir)
		}
	}
}

// TestCompose: the one-host stack starts in order, reaches its services by
// the names in the settings, and keeps its keys.
func TestCompose(t *testing.T) {
	ms, b := loadManifests(t), loadBinary(t)
	services := ms.composeServices()
	// A service's own health check asks the port its process listens on.
	checks := ms.composeHealthchecks(t, b)
	for _, c := range ms.composeContainers(b) {
		if _, listens := listeners[c.cmd()]; !listens {
			continue
		}
		_, port, err := listenAddr(c, ms, b)
		if err != nil {
			t.Errorf("%s: %v", c.where, err)
			continue
		}
		i := slices.IndexFunc(checks, func(h container) bool { return h.where == c.where+" healthcheck" })
		if i < 0 {
			t.Errorf("%s: no health check running `firmbridge healthcheck`", c.where)
			continue
		}
		url, _ := checks[i].flag("url")
		if checks[i].cmd() != "healthcheck" || !strings.HasSuffix(url, ":"+strconv.Itoa(port)+"/readyz") {
			t.Errorf("%s: health check %v does not ask /readyz on the listen port %d", c.where, checks[i].argv, port)
		}
	}
	volumes := mapOf(ms.compose["volumes"])
	for name, s := range services {
		for dep, cond := range mapOf(s["depends_on"]) {
			target, ok := services[dep]
			if !ok {
				t.Errorf("compose service %s depends on %s, which does not exist", name, dep)
				continue
			}
			switch c := str(dig(cond, "condition")); c {
			case "service_healthy":
				if target["healthcheck"] == nil {
					t.Errorf("compose service %s waits for %s to be healthy, but it has no healthcheck", name, dep)
				}
			case "service_completed_successfully":
				if r := str(target["restart"]); r != "" && r != "no" {
					t.Errorf("compose service %s waits for %s to complete, but it restarts (%s)", name, dep, r)
				}
			case "service_started":
			default:
				t.Errorf("compose service %s depends on %s with condition %q", name, dep, c)
			}
		}
		for _, v := range strList(s["volumes"]) {
			src, _, ok := strings.Cut(v, ":")
			if ok && !strings.ContainsAny(src, "./~") {
				if _, declared := volumes[src]; !declared {
					t.Errorf("compose service %s mounts volume %s, which is not declared", name, src)
				}
			}
		}
	}
	cond := func(s map[string]any, dep string) string { return str(dig(s, "depends_on", dep, "condition")) }
	var oneShots, longRunning []container
	isOneShot := map[string]bool{}
	for _, c := range ms.composeContainers(b) {
		if r := str(c.c["restart"]); r == "" || r == "no" {
			oneShots = append(oneShots, c)
			isOneShot[c.where] = true
		} else {
			longRunning = append(longRunning, c)
		}
	}
	for _, want := range []string{"migrate", "keygen", "serve", "ingest"} {
		n := 0
		for _, c := range append(slices.Clone(oneShots), longRunning...) {
			if c.cmd() == want {
				n++
			}
		}
		if n != 1 {
			t.Errorf("compose: %d services run %s, want 1", n, want)
		}
	}
	for _, c := range ms.composeContainers(b) {
		// ClickHouse and Kafka are reached by service name, and waited for.
		var deps []string
		for _, v := range []string{"FIRMBRIDGE_CLICKHOUSE_ADDR", "FIRMBRIDGE_KAFKA_BROKERS"} {
			for _, addr := range strings.Split(c.setting(ms.docker, b, "", v), ",") {
				host, port, _ := strings.Cut(strings.TrimSpace(addr), ":")
				if _, ok := services[host]; !ok {
					if c.cmd() != "keygen" {
						t.Errorf("%s: %s names %s, which is not a compose service", c.where, v, host)
					}
					continue
				}
				deps = append(deps, host)
				if v == "FIRMBRIDGE_KAFKA_BROKERS" {
					adv := composeEnv(services[host])["KAFKA_ADVERTISED_LISTENERS"]
					if !strings.Contains(adv, "://"+host+":"+port) {
						t.Errorf("compose service %s advertises %q; clients that bootstrap from %s:%s then connect there", host, adv, host, port)
					}
				}
			}
		}
		if c.cmd() == "keygen" {
			continue
		}
		for _, d := range deps {
			if cond(c.c, d) != "service_healthy" {
				t.Errorf("%s does not wait for %s to be healthy", c.where, d)
			}
		}
		if isOneShot[c.where] {
			continue
		}
		for _, o := range oneShots {
			if o.cmd() == "migrate" || o.cmd() == "keygen" {
				oname := strings.TrimPrefix(o.where, "compose service ")
				if cond(c.c, oname) != "service_completed_successfully" {
					t.Errorf("%s does not wait for %s to complete", c.where, oname)
				}
			}
		}
	}
	// Keys: keygen writes them once into a volume; the processes that read
	// them mount that volume read-only and look at the same files.
	var made [][2]string
	for _, c := range oneShots {
		if c.cmd() != "keygen" {
			continue
		}
		if v, ok := c.flag("if-missing"); !ok || v == "false" {
			t.Errorf("%s: keygen without --if-missing replaces keys on every start", c.where)
		}
		for _, v := range []string{"FIRMBRIDGE_KEY_FILE", "FIRMBRIDGE_AUDIT_KEY_FILE"} {
			p := c.setting(ms.docker, b, "key-file", v)
			if v == "FIRMBRIDGE_AUDIT_KEY_FILE" {
				p = c.setting(ms.docker, b, "audit-key-file", v)
			}
			vol, rel, ro, err := composeVolumeFile(c.c, p)
			if err != nil || ro {
				t.Errorf("%s: %s %s is not in a writable named volume (%v)", c.where, v, p, err)
				continue
			}
			made = append(made, [2]string{vol, rel})
		}
	}
	for _, c := range longRunning {
		for _, p := range requiredKeyFiles(t, c, ms, b) {
			vol, rel, ro, err := composeVolumeFile(c.c, p)
			switch {
			case err != nil:
				t.Errorf("%s: key file %s: %v", c.where, p, err)
			case !ro:
				t.Errorf("%s: key file %s: volume %s is mounted writable", c.where, p, vol)
			case !slices.Contains(made, [2]string{vol, rel}):
				t.Errorf("%s: key file %s (%s in volume %s) is not one keygen writes (%v)", c.where, p, rel, vol, made)
			}
		}
	}
}

// composeVolumeFile finds the named volume holding file in a service.
func composeVolumeFile(s map[string]any, file string) (vol, rel string, readOnly bool, err error) {
	for _, v := range strList(s["volumes"]) {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			continue
		}
		target := path.Clean(parts[1])
		if r, ok := strings.CutPrefix(file, target+"/"); ok {
			if strings.ContainsAny(parts[0], "./~") {
				return "", "", false, fmt.Errorf("mounted from host path %s, not a named volume", parts[0])
			}
			return parts[0], r, len(parts) > 2 && strings.Contains(parts[2], "ro"), nil
		}
	}
	return "", "", false, errors.New("no volume mounted there")
}

// TestDockerfile: multi-stage, a static build by the go.mod Go version, a
// non-root final stage that runs the binary.
func TestDockerfile(t *testing.T) {
	ms := loadManifests(t)
	d := ms.docker
	if len(d.stages) < 2 {
		t.Fatalf("%s: %d stages, want a build stage and a final stage", dockerfilePath, len(d.stages))
	}
	st, runEnv, args, err := d.goBuild()
	if err != nil {
		t.Fatal(err)
	}
	if st == d.final() {
		t.Error("go build runs in the final stage")
	}
	if v := runEnv["CGO_ENABLED"]; v != "0" && !(v == "" && st.env["CGO_ENABLED"] == "0") {
		t.Errorf("the build stage does not set CGO_ENABLED=0")
	}
	if !slices.Contains(args, "-trimpath") {
		t.Error("go build without -trimpath")
	}
	ldflags := ""
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "-ldflags="); ok {
			ldflags = v
		} else if a == "-ldflags" && i+1 < len(args) {
			ldflags = args[i+1]
		}
	}
	if f := strings.Fields(ldflags); !slices.Contains(f, "-s") || !slices.Contains(f, "-w") {
		t.Errorf("go build -ldflags %q: want -s -w", ldflags)
	}

	// The Go version is go.mod's.
	mod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if goLine == nil {
		t.Fatal("go.mod has no go line")
	}
	if tc := regexp.MustCompile(`(?m)^toolchain go(\S+)$`).FindSubmatch(mod); tc != nil {
		goLine = tc
	}
	repo, tag, _ := strings.Cut(strings.Split(st.from, "@")[0], ":")
	if repository(st.from) != "golang" && !strings.HasSuffix(repo, "/golang") {
		t.Errorf("build stage FROM %s, want the official golang image", st.from)
	}
	if version, _, _ := strings.Cut(tag, "-"); version != string(goLine[1]) {
		t.Errorf("build stage FROM %s: Go %s, but go.mod says %s", st.from, version, goLine[1])
	}

	// Modules download in their own layer: after copying only go.mod and
	// go.sum, before copying the rest.
	downloadAt, copyAllAt, modCopied := -1, -1, false
	for i, line := range st.lines {
		switch f := strings.Fields(line); {
		case f[0] == "COPY" && slices.Contains(f, "go.mod") && slices.Contains(f, "go.sum") && !slices.Contains(f, "."):
			modCopied = true
		case f[0] == "COPY" && len(f) == 3 && f[1] == ".":
			copyAllAt = i
		case f[0] == "RUN" && strings.Contains(line, "go mod download") && modCopied && downloadAt < 0:
			downloadAt = i
		}
	}
	if downloadAt < 0 || copyAllAt < 0 || downloadAt > copyAllAt {
		t.Errorf("%s: want COPY go.mod go.sum, RUN go mod download, then COPY . (download at %d, copy at %d)", dockerfilePath, downloadAt, copyAllAt)
	}

	// The final stage: non-root by number, the binary as entry point.
	f := d.final()
	uid, gid, _ := strings.Cut(f.user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("final stage USER %q: want a numeric non-zero uid", f.user)
	}
	if gid != "" {
		if _, err := strconv.Atoi(gid); err != nil {
			t.Errorf("final stage USER %q: want a numeric gid", f.user)
		}
	}
	out := ""
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			out = args[i+1]
		} else if v, ok := strings.CutPrefix(a, "-o="); ok {
			out = v
		}
	}
	copied := false
	for _, c := range f.copies {
		if len(c) >= 2 && slices.Contains(c, "--from="+st.name) && slices.Contains(c, out) && len(f.entrypoint) == 1 {
			dst := c[len(c)-1]
			copied = copied || dst == f.entrypoint[0] || (strings.HasSuffix(dst, "/") && dst+path.Base(out) == f.entrypoint[0])
		}
	}
	if !copied {
		t.Errorf("final stage: ENTRYPOINT %v is not the binary %s copied from stage %s", f.entrypoint, out, st.name)
	}
	for _, l := range listeners {
		addr := f.env[l.env]
		if addr == "" {
			continue
		}
		if !slices.Contains(f.expose, addr[strings.LastIndex(addr, ":")+1:]) {
			t.Errorf("final stage: %s=%s but EXPOSE %v", l.env, addr, f.expose)
		}
	}
	for _, p := range []string{"8080", "8081"} {
		if !slices.Contains(f.expose, p) {
			t.Errorf("final stage does not EXPOSE %s", p)
		}
	}
}

// ---------------------------------------------------------------------------
// The build itself.

// ignoreRule is one line of .dockerignore.
type ignoreRule struct {
	re     *regexp.Regexp
	negate bool
}

func loadDockerignore(root string) ([]ignoreRule, error) {
	data, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return nil, err
	}
	var rules []ignoreRule
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if r.negate = strings.HasPrefix(line, "!"); r.negate {
			line = strings.TrimSpace(line[1:])
		}
		line = strings.TrimPrefix(path.Clean("/"+line), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch ch := line[i]; {
			case strings.HasPrefix(line[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(line[i:], "**"):
				re.WriteString(".*")
				i++
			case ch == '*':
				re.WriteString("[^/]*")
			case ch == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(ch)))
			}
		}
		re.WriteString("$")
		if r.re, err = regexp.Compile(re.String()); err != nil {
			return nil, fmt.Errorf(".dockerignore %q: %v", line, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// ignored applies the rules as Docker does: the last rule that matches the
// path or one of its parent directories wins.
func ignored(rules []ignoreRule, rel string) bool {
	out := false
	for _, r := range rules {
		for p := rel; p != "." && p != "/" && p != ""; p = path.Dir(p) {
			if r.re.MatchString(p) {
				out = !r.negate
				break
			}
		}
	}
	return out
}

// TestDockerBuild runs the Dockerfile's go build, in its environment, on a
// copy of the build context (the repository filtered by .dockerignore).
func TestDockerBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	root := repoRoot(t)
	ms := loadManifests(t)
	st, runEnv, args, err := ms.docker.goBuild()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := loadDockerignore(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{".git", ".local/keys/jwt-signing.pem", "all.test", "firmbridge"} {
		if !ignored(rules, must) {
			t.Errorf(".dockerignore does not keep %s out of the build context", must)
		}
	}
	negate := slices.ContainsFunc(rules, func(r ignoreRule) bool { return r.negate })
	ctxDir := filepath.Join(t.TempDir(), "context")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return os.MkdirAll(ctxDir, 0o755)
		}
		if ignored(rules, rel) {
			if d.IsDir() && !negate {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(ctxDir, filepath.FromSlash(rel))
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			return os.WriteFile(dst, data, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Run it as the Dockerfile does, writing the binary to a temporary
	// directory instead of its -o path.
	bin := filepath.Join(t.TempDir(), "firmbridge")
	args = slices.Clone(args)
	out := -1
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			out = i + 1
		} else if strings.HasPrefix(a, "-o=") {
			args[i] = "-o=" + bin
		}
	}
	if out >= 0 {
		args[out] = bin
	} else if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "-o=") }) {
		t.Fatal("go build without -o")
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = ctxDir
	env := map[string]string{"GOFLAGS": ""}
	for k, v := range st.env {
		env[k] = v
	}
	for k, v := range runEnv {
		env[k] = v
	}
	// The context has no .git, so the image's build stamps no VCS data.
	env["GOFLAGS"] = strings.TrimSpace(env["GOFLAGS"] + " -buildvcs=false")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	t.Logf("go %s (in the build context, %v)", strings.Join(args, " "), st.env)
	if outp, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build as the Dockerfile runs it: %v\n%s", err, outp)
	}
	// A static binary whose usage lists the subcommands the manifests run.
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("no executable at %s: %v", bin, err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked (it has an ELF interpreter)")
		}
	}
	ef.Close()
	usage, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", bin, err, usage)
	}
	for _, c := range []string{"serve", "ingest", "migrate", "keygen"} {
		if !regexp.MustCompile(`(?m)^\s+` + c + `\s`).Match(usage) {
			t.Errorf("the built binary's usage does not list %s", c)
		}
	}
}
