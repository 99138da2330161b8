// Package archtest holds the test that keeps the import graph the shape
// docs/architecture.md describes.
package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/quietwatch/quietwatch/"

// stages are the five filters; each has a one-line main in cmd/<stage>.
var stages = []string{"pkg/fastparse", "pkg/correlate", "pkg/notify", "pkg/block", "pkg/share"}

// imports returns, for each package folder of the repository, the project
// packages its non-test files import.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	graph := map[string][]string{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		rel = filepath.ToSlash(rel)
		if _, ok := graph[rel]; !ok {
			graph[rel] = nil
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if dep, ok := strings.CutPrefix(ip, module); ok && !slices.Contains(graph[rel], dep) {
				graph[rel] = append(graph[rel], dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return graph
}

// TestLayers: cmd/<stage> imports only pkg/<stage>; no stage imports
// another; domain packages import no stage, not pkg/command and nothing
// under internal/; pkg/record, the shared record format, imports no project
// package at all.
func TestLayers(t *testing.T) {
	graph := imports(t)
	if len(graph) < 20 {
		t.Fatalf("found only %d packages: wrong root?", len(graph))
	}
	for pkg, deps := range graph {
		isStage := slices.Contains(stages, pkg)
		for _, dep := range deps {
			switch {
			case strings.HasPrefix(pkg, "cmd/"):
				if dep != "pkg/"+path.Base(pkg) {
					t.Errorf("%s imports %s: a main imports only its stage package", pkg, dep)
				}
			case isStage && slices.Contains(stages, dep):
				t.Errorf("stage %s imports stage %s: stages share code through domain packages", pkg, dep)
			case strings.HasPrefix(pkg, "pkg/") && !isStage && (slices.Contains(stages, dep) || dep == "pkg/command"):
				t.Errorf("domain package %s imports %s: only stages wire flags and commands", pkg, dep)
			case strings.HasPrefix(pkg, "pkg/") && strings.HasPrefix(dep, "internal/"):
				t.Errorf("%s imports %s: internal/ is test support", pkg, dep)
			case pkg == "pkg/record":
				t.Errorf("pkg/record imports %s: the record format depends on nothing of ours", dep)
			}
		}
	}
}
