package config

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeDocumentsEveryKey keeps the README's configuration reference in
// step with the key table.
func TestReadmeDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys {
		if !strings.Contains(string(readme), "| `"+k.Name+"`") {
			t.Errorf("README.md's configuration reference lacks %s", k.Name)
		}
	}
}
