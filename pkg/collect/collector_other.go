//go:build !linux

package collect

import (
	"context"
	"errors"
	"os"

	"github.com/sysmon/sysmon/pkg/wire"
)

// errNotLinux is the one line a producer started on another system sees:
// every figure a sample carries comes from Linux's /proc, and no other
// system has an equivalent this package could read.
var errNotLinux = errors.New("produce reads Linux /proc and runs on Linux only")

// Collector turns scans of a /proc tree into samples. Outside Linux there
// is no /proc to scan, so none can be created; the type exists so that the
// rest of sysmon (ca, setup, consume) builds for every system.
type Collector struct{}

// New fails outside Linux: sysmon produce reads Linux /proc and runs on
// Linux only.
func New(opts Options) (*Collector, error) { return nil, errNotLinux }

// Close does nothing outside Linux.
func (c *Collector) Close() error { return nil }

// Stats returns zero counters outside Linux.
func (c *Collector) Stats() ScanStats { return ScanStats{} }

// Sample fails outside Linux.
func (c *Collector) Sample(ctx context.Context) (*wire.Sample, error) { return nil, errNotLinux }

// HostName returns os.Hostname outside Linux; procRoot is not read.
func HostName(procRoot string) string {
	h, _ := os.Hostname()
	return h
}

// BootID returns "" outside Linux, which has no boot_id to read.
func BootID(procRoot string) string { return "" }
