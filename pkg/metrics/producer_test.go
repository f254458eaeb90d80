package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sysmon/sysmon/pkg/metrics"
)

func TestProducerScrape(t *testing.T) {
	var calls atomic.Int32
	oldest := time.Now().Add(-90 * time.Second)
	p := metrics.NewProducer("v1", func() metrics.ProducerState {
		calls.Add(1)
		return metrics.ProducerState{BatchesSent: 12, BatchesAcked: 10, SpooledBatches: 2, SpooledBytes: 4096, OldestUnsent: oldest, Connected: true,
			ShedSamples: 3, DroppedBatches: 1, SpoolError: "disk full"}
	})
	for range 7 {
		p.SampleTaken()
	}
	p.SetCertExpiry("client", time.Now().Add(-24*time.Hour))
	base := serve(t, p.Registry(), nil)
	fams := scrape(t, base)
	for name, want := range map[string]float64{
		"sysmon_producer_samples_taken_total":         7,
		"sysmon_producer_batches_sent_total":          12,
		"sysmon_producer_batches_acked_total":         10,
		"sysmon_producer_spooled_batches":             2,
		"sysmon_producer_spooled_bytes":               4096,
		"sysmon_producer_connected":                   1,
		"sysmon_producer_spool_shed_samples_total":    3,
		"sysmon_producer_spool_dropped_batches_total": 1,
		"sysmon_producer_spool_disk_ok":               0,
	} {
		if got := value(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if age := value(t, fams, "sysmon_producer_oldest_unsent_age_seconds"); age < 90 || age > 100 {
		t.Errorf("oldest unsent age = %v, want about 90", age)
	}
	if d := value(t, fams, "sysmon_producer_cert_expiry_days", "cert", "client"); d > -0.99 || d < -1.01 {
		t.Errorf("expired certificate shows %v days, want -1", d)
	}
	// One state reading serves all the state metrics of a scrape.
	if n := calls.Load(); n != 1 {
		t.Errorf("state callback ran %d times for one scrape", n)
	}
}

func TestProducerNoState(t *testing.T) {
	p := metrics.NewProducer("v1", nil)
	fams := scrape(t, serve(t, p.Registry(), nil))
	if got := value(t, fams, "sysmon_producer_connected"); got != 0 {
		t.Errorf("connected = %v without state", got)
	}
	if got := value(t, fams, "sysmon_producer_oldest_unsent_age_seconds"); got != 0 {
		t.Errorf("oldest unsent = %v with nothing waiting", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(s.b.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		m := map[string]any{}
		if json.Unmarshal(l, &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func TestProducerLogStatus(t *testing.T) {
	var mu sync.Mutex
	st := metrics.ProducerState{Connected: true}
	p := metrics.NewProducer("v1", func() metrics.ProducerState {
		mu.Lock()
		defer mu.Unlock()
		return st
	})
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.LogStatus(ctx, log, 20*time.Millisecond); close(done) }()

	p.SampleTaken()
	p.SampleTaken()
	mu.Lock()
	st = metrics.ProducerState{BatchesSent: 2, BatchesAcked: 1, SpooledBatches: 1, SpooledBytes: 100, OldestUnsent: time.Now().Add(-3 * time.Second), Connected: false}
	mu.Unlock()
	waitFor(t, "a warn status line", func() bool {
		for _, l := range buf.lines() {
			if l["level"] == "WARN" {
				return true
			}
		}
		return false
	})
	cancel()
	<-done
	var warn map[string]any
	for _, l := range buf.lines() {
		if l["msg"] != "producer status" {
			t.Errorf("unexpected log line %v", l)
		}
		if l["level"] == "WARN" && warn == nil {
			warn = l
		}
	}
	if warn["connected"] != false || warn["samples"] != 2.0 || warn["spooled_bytes"] != 100.0 || warn["sent"] != 2.0 || warn["oldest_unsent"] != "3s" {
		t.Errorf("status line %v", warn)
	}
}
