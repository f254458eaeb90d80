package pgserver

import (
	"context"
	"errors"
	"testing"
)

// TestWindowsRefuses holds the one line a consumer on Windows without a
// configured database gets.
func TestWindowsRefuses(t *testing.T) {
	if _, err := FindBinaries(); !errors.Is(err, errPlatform) {
		t.Errorf("FindBinaries: err = %v, want %v", err, errPlatform)
	}
	_, err := Start(context.Background(), Options{DataDir: t.TempDir()})
	if err == nil || err.Error() != "the private PostgreSQL needs Linux or macOS; set CONSUMER_DB_URL" {
		t.Errorf("Start: err = %v", err)
	}
}
