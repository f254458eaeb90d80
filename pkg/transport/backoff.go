package transport

import (
	"math/rand/v2"
	"time"
)

// backoff yields capped exponential delays with full jitter, so a fleet of
// producers reconnecting after a collector restart spreads out instead of
// arriving in waves.
type backoff struct {
	Min, Max time.Duration
	n        int
}

func (b *backoff) Next() time.Duration {
	d := b.Min << min(b.n, 30)
	if d <= 0 || d > b.Max {
		d = b.Max
	}
	b.n++
	// Half fixed, half random: never zero, never above the cap.
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) Reset() { b.n = 0 }

// sleep waits d or until done is closed; it reports whether it slept fully.
func sleep(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
