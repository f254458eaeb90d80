package doctor_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports holds the line the brief draws: doctor may combine config,
// pki, pgserver and pgx, but not the transport, the collector, the spool or
// the sink, which it would otherwise be tempted to run to test them.
func TestImports(t *testing.T) {
	allowed := []string{
		"github.com/sysmon/sysmon/pkg/config",
		"github.com/sysmon/sysmon/pkg/pki",
		"github.com/sysmon/sysmon/pkg/pgserver",
		"github.com/jackc/pgx/v5",
	}
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
	next:
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !strings.Contains(strings.SplitN(path, "/", 2)[0], ".") {
				continue // standard library
			}
			for _, a := range allowed {
				if path == a || strings.HasPrefix(path, a+"/") {
					continue next
				}
			}
			t.Errorf("%s imports %s", f, path)
		}
	}
}
