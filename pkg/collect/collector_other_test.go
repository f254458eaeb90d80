//go:build !linux

package collect

import (
	"errors"
	"testing"
)

// TestNewNotLinux holds the one line a producer started outside Linux
// prints: cmd/produce shows it as is, without the PRODUCER_PROC_ROOT hint.
func TestNewNotLinux(t *testing.T) {
	c, err := New(Options{})
	if c != nil || !errors.Is(err, errNotLinux) {
		t.Fatalf("New = %v, %v; want nil, %v", c, err, errNotLinux)
	}
	if got, want := err.Error(), "produce reads Linux /proc and runs on Linux only"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if HostName("/proc") == "" {
		t.Error("HostName is empty; os.Hostname should answer")
	}
}
