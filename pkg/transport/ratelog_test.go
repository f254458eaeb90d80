package transport

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRateLogBoundsAndCountsWhatItDrops(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	r := newRateLog(slog.New(slog.NewTextHandler(&buf, nil)), 3, time.Minute)
	r.now = func() time.Time { return now }
	for i := 0; i < 10; i++ {
		r.Write([]byte("http: TLS handshake error from 127.0.0.1:1: bad certificate\n"))
	}
	if got := strings.Count(buf.String(), "TLS handshake error"); got != 3 {
		t.Fatalf("%d lines in one period, want 3:\n%s", got, &buf)
	}
	now = now.Add(time.Minute)
	r.Write([]byte("http: TLS handshake error from 127.0.0.1:2: bad certificate\n"))
	if !strings.Contains(buf.String(), "suppressed_before=7") {
		t.Errorf("the next line does not report the 7 dropped:\n%s", &buf)
	}
}
