//go:build unix

package wire

import (
	"syscall"
	"time"
)

// processCPU is the CPU time of the whole process (every thread, so the
// garbage collector's work counts too). On a shared machine it is a steadier
// measure than wall time, which includes time spent waiting for a core.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
