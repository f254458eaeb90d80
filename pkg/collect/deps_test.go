package collect

import (
	"go/build"
	"strings"
	"testing"
)

// TestDeps holds the architecture line: collect reads /proc into wire types
// and imports no other sysmon package.
func TestDeps(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/sysmon/sysmon/") && imp != "github.com/sysmon/sysmon/pkg/wire" {
			t.Errorf("collect imports %s; only pkg/wire is allowed", imp)
		}
	}
}
