package metrics_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package an observer: besides the standard library
// and the Prometheus client it may import only pkg/wire, so that cmd, not
// this package, ties it to the transport, the spool and the sink.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case !strings.Contains(strings.SplitN(path, "/", 2)[0], "."): // standard library
			case strings.HasPrefix(path, "github.com/prometheus/"):
			case path == "github.com/sysmon/sysmon/pkg/wire":
			default:
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}
