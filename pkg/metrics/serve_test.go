package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sysmon/sysmon/pkg/metrics"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthz(t *testing.T) {
	var healthErr atomic.Pointer[error]
	base := serve(t, prometheus.NewRegistry(), func() error {
		if e := healthErr.Load(); e != nil {
			return *e
		}
		return nil
	})
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthy: %d %q", code, body)
	}
	down := errors.New("database unreachable")
	healthErr.Store(&down)
	if code, body := get(t, base+"/healthz"); code != 503 || !strings.Contains(body, "database unreachable") {
		t.Errorf("unhealthy: %d %q", code, body)
	}
	if code, _ := get(t, base+"/nothing"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
	nilBase := serve(t, prometheus.NewRegistry(), nil)
	if code, _ := get(t, nilBase+"/healthz"); code != 200 {
		t.Errorf("nil health callback: %d", code)
	}
}

func TestServe(t *testing.T) {
	if _, err := metrics.Listen("9464"); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Errorf("Listen without host: %v", err)
	}
	ln, err := metrics.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	busy := ln.Addr().String()
	defer ln.Close()
	if err := metrics.Serve(context.Background(), busy, prometheus.NewRegistry(), nil); err == nil {
		t.Error("Serve on a busy address returned nil")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- metrics.Serve(ctx, "127.0.0.1:0", prometheus.NewRegistry(), nil) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}
