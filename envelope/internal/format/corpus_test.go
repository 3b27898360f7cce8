package format

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFuzzSeedCorpora fails when a fuzz target of this package has no
// checked-in seed corpus where `go test` looks for it (written by
// ../vectorgen), or a corpus directory belongs to no target.
func TestFuzzSeedCorpora(t *testing.T) {
	files, _ := filepath.Glob("*_test.go")
	targets := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Fuzz") {
				targets[fd.Name.Name] = true
			}
		}
	}
	if len(targets) < 2 {
		t.Fatalf("found %d fuzz targets, want at least 2", len(targets))
	}
	for name := range targets {
		dir := filepath.Join("testdata", "fuzz", name)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Errorf("%s: no seed corpus: %v", name, err)
			continue
		}
		n := 0
		for _, e := range entries {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && bytes.HasPrefix(b, []byte("go test fuzz v1\n")) {
				n++
			} else {
				t.Errorf("%s/%s: not a corpus file", dir, e.Name())
			}
		}
		if n == 0 {
			t.Errorf("%s: seed corpus %s is empty", name, dir)
		}
		t.Logf("%s: %d seed files", name, n)
	}
	dirs, _ := os.ReadDir(filepath.Join("testdata", "fuzz"))
	for _, d := range dirs {
		if !targets[d.Name()] {
			t.Errorf("testdata/fuzz/%s belongs to no fuzz target", d.Name())
		}
	}
}
