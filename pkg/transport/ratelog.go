package transport

import (
	"log/slog"
	"strings"
	"sync"
	"time"
)

// rateLog turns net/http's error log (refused TLS handshakes, bad requests)
// into warnings, at most burst lines per period: a scanner or a producer
// retrying with a revoked certificate must not flood the log. What it drops
// it counts and reports with the next line it lets through.
type rateLog struct {
	log    *slog.Logger
	period time.Duration
	burst  int
	now    func() time.Time

	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

func newRateLog(log *slog.Logger, burst int, period time.Duration) *rateLog {
	return &rateLog{log: log, period: period, burst: burst, now: time.Now}
}

func (r *rateLog) Write(p []byte) (int, error) {
	r.mu.Lock()
	now := r.now()
	if now.Sub(r.start) >= r.period {
		r.start, r.n = now, 0
	}
	r.n++
	if r.n > r.burst {
		r.suppressed++
		r.mu.Unlock()
		return len(p), nil
	}
	suppressed := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()
	msg := strings.TrimSpace(strings.TrimPrefix(string(p), "http: "))
	if suppressed > 0 {
		r.log.Warn(msg, "suppressed_before", suppressed)
	} else {
		r.log.Warn(msg)
	}
	return len(p), nil
}
