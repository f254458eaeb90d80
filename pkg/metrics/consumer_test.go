package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sysmon/sysmon/pkg/metrics"
	"github.com/sysmon/sysmon/pkg/sink/jsonl"
	"github.com/sysmon/sysmon/pkg/spool"
	"github.com/sysmon/sysmon/pkg/transport"
	"github.com/sysmon/sysmon/pkg/wire"
)

func batch(seq uint64, procs int) *wire.Batch {
	s := wire.Sample{
		Time:   time.Now(),
		Host:   &wire.Host{Load1: 1},
		Memory: &wire.Memory{Total: 1 << 30},
	}
	for i := range procs {
		s.Procs = append(s.Procs, wire.Proc{PID: int32(100 + i), Comm: "x"})
	}
	return &wire.Batch{Seq: seq, Samples: []wire.Sample{s}}
}

// TestConsumerThroughTransport wires the metrics the way cmd does (the sink
// wrapped, OnBatch, the session count) around a real transport server and
// client over loopback, then scrapes /metrics and parses it.
func TestConsumerThroughTransport(t *testing.T) {
	m := metrics.NewConsumer("test")
	var out bytes.Buffer
	var outMu sync.Mutex
	sink := jsonl.New(lockedWriter{&out, &outMu})
	srv := transport.NewServer(transport.ServerOptions{
		Sink:    m.WrapSink(sink),
		OnBatch: m.OnBatch,
		Logger:  slog.New(slog.DiscardHandler),
	})
	m.SetConnected(srv.Sessions)
	notAfter := time.Now().Add(45 * 24 * time.Hour)
	m.SetCertExpiry("server", notAfter)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ctx, ln, nil) }()

	const batches, procs = 5, 3
	outbox := spool.NewMemory(100, 0, 0)
	for seq := uint64(1); seq <= batches; seq++ {
		payload, err := wire.Binary.Append(nil, batch(seq, procs))
		if err != nil {
			t.Fatal(err)
		}
		if err := outbox.Append(seq, payload); err != nil {
			t.Fatal(err)
		}
	}
	client := transport.NewClient(transport.ClientOptions{
		URLs:   []string{"ws://" + ln.Addr().String() + "/"},
		Hello:  wire.Hello{Node: "n1", SpoolID: "s1", AgentVersion: "test"},
		Outbox: outboxAdapter{outbox},
		Logger: slog.New(slog.DiscardHandler),
	})
	cctx, ccancel := context.WithCancel(ctx)
	clientDone := make(chan error, 1)
	go func() { clientDone <- client.Run(cctx, time.Second) }()
	waitFor(t, "all batches acknowledged", func() bool { return client.Acked() == batches })

	base := serve(t, m.Registry(), nil)
	fams := scrape(t, base)
	rows := float64(batches * (procs + 2)) // procs + host + memory per batch
	for name, want := range map[string]float64{
		"sysmon_consumer_frames_received_total":      batches,
		"sysmon_consumer_rows_received_total":        rows,
		"sysmon_consumer_rows_committed_total":       rows,
		"sysmon_consumer_batches_deduplicated_total": 0,
		"sysmon_consumer_db_errors_total":            0,
		"sysmon_consumer_queue_depth":                0,
		"sysmon_consumer_connected_producers":        1,
		"sysmon_consumer_ingest_latency_seconds":     batches, // sample count
	} {
		if got := value(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if d := value(t, fams, "sysmon_consumer_cert_expiry_days", "cert", "server"); d < 44.9 || d > 45 {
		t.Errorf("cert expiry days = %v, want about 45", d)
	}
	if v := value(t, fams, "sysmon_build_info", "role", "consumer", "version", "test"); v != 1 {
		t.Errorf("build info = %v", v)
	}
	if fams["go_goroutines"] == nil || fams["process_open_fds"] == nil {
		t.Error("runtime and process collectors missing")
	}

	ccancel()
	<-clientDone
	waitFor(t, "session closed", func() bool { return srv.Sessions() == 0 })
	if got := value(t, scrape(t, base), "sysmon_consumer_connected_producers"); got != 0 {
		t.Errorf("connected producers after disconnect = %v", got)
	}
	cancel()
	if err := <-srvDone; err != nil {
		t.Fatal(err)
	}
	outMu.Lock()
	defer outMu.Unlock()
	if n := bytes.Count(out.Bytes(), []byte("\n")); n != batches {
		t.Errorf("sink wrote %d lines, want %d", n, batches)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type outboxAdapter struct{ *spool.Memory }

func (a outboxAdapter) Pending(after uint64, max int) ([]transport.Record, error) {
	recs, err := a.Memory.Pending(after, max)
	out := make([]transport.Record, len(recs))
	for i, r := range recs {
		out[i] = transport.Record{Seq: r.Seq, Payload: r.Payload}
	}
	return out, err
}

// flakySink fails the first fails writes and blocks writes while hold is
// set, to observe error counts and queue depth.
type flakySink struct {
	mu     sync.Mutex
	fails  int
	hold   chan struct{}
	opened uint64
}

func (s *flakySink) OpenStream(context.Context, *wire.Hello) (uint64, error) { return s.opened, nil }

func (s *flakySink) WriteBatch(ctx context.Context, _ *wire.Hello, _ *wire.Batch) error {
	s.mu.Lock()
	hold := s.hold
	if s.fails > 0 {
		s.fails--
		s.mu.Unlock()
		return errors.New("database down")
	}
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// TestConsumerRetriesDedupAndQueue drives the hooks the way the transport
// does on a failing database: retries of one frame, a resend after a
// reconnect, a write in progress.
func TestConsumerRetriesDedupAndQueue(t *testing.T) {
	m := metrics.NewConsumer("test")
	fs := &flakySink{fails: 2, opened: 3}
	s := m.WrapSink(fs)
	ctx := context.Background()
	h := &wire.Hello{Node: "n1", SpoolID: "s1"}
	if _, err := s.OpenStream(ctx, h); err != nil {
		t.Fatal(err)
	}
	// Sequences 1..3 are already durable in the database; a resend of 3 is
	// deduplicated.
	b3 := batch(3, 1)
	if err := s.WriteBatch(ctx, h, b3); err == nil {
		t.Fatal("want the first failure")
	}
	if err := s.WriteBatch(ctx, h, b3); err == nil {
		t.Fatal("want the second failure")
	}
	if err := s.WriteBatch(ctx, h, b3); err != nil {
		t.Fatal(err)
	}
	m.OnBatch(h, b3, 5*time.Millisecond)
	b4 := batch(4, 2)
	if err := s.WriteBatch(ctx, h, b4); err != nil {
		t.Fatal(err)
	}
	m.OnBatch(h, b4, 7*time.Millisecond)

	// A write that waits on the database shows in the queue depth; one whose
	// context ends is not a database error.
	fs.mu.Lock()
	fs.hold = make(chan struct{})
	fs.mu.Unlock()
	wctx, wcancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- s.WriteBatch(wctx, h, batch(5, 0)) }()

	base := serve(t, m.Registry(), nil)
	waitFor(t, "queue depth 1", func() bool { return value(t, scrape(t, base), "sysmon_consumer_queue_depth") == 1 })
	wcancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("blocked write: %v", err)
	}

	fams := scrape(t, base)
	for name, want := range map[string]float64{
		"sysmon_consumer_frames_received_total":      3, // b3 once despite retries, b4, b5
		"sysmon_consumer_rows_received_total":        3 + 4 + 2,
		"sysmon_consumer_rows_committed_total":       4,
		"sysmon_consumer_batches_deduplicated_total": 1,
		"sysmon_consumer_db_errors_total":            2,
		"sysmon_consumer_queue_depth":                0,
		"sysmon_consumer_connected_producers":        0,
		"sysmon_consumer_ingest_latency_seconds":     2,
	} {
		if got := value(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestStoreStats: a store that counts for itself wins over the hooks'
// estimate.
func TestStoreStats(t *testing.T) {
	m := metrics.NewConsumer("test")
	h := &wire.Hello{Node: "n", SpoolID: "s"}
	m.OnBatch(h, batch(1, 3), time.Millisecond)
	base := serve(t, m.Registry(), nil)
	fams := scrape(t, base)
	if got := value(t, fams, "sysmon_consumer_rows_committed_total"); got != 5 {
		t.Errorf("rows committed from hooks = %v, want 5", got)
	}
	if fams["sysmon_consumer_rows_rejected_total"] != nil {
		t.Error("rows rejected reported without a store that counts them")
	}
	m.SetStoreStats(func() metrics.StoreStats { return metrics.StoreStats{Rows: 41, Skipped: 2, Rejected: 1} })
	fams = scrape(t, base)
	for name, want := range map[string]float64{
		"sysmon_consumer_rows_committed_total":       41,
		"sysmon_consumer_batches_deduplicated_total": 2,
		"sysmon_consumer_rows_rejected_total":        1,
	} {
		if got := value(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestRows(t *testing.T) {
	if metrics.Rows(nil) != 0 {
		t.Error("nil batch has rows")
	}
	b := &wire.Batch{Samples: []wire.Sample{
		{Procs: make([]wire.Proc, 3), Apps: make([]wire.AppTop, 2), Funs: make([]wire.FunTop, 4), Events: make([]wire.Event, 1), Status: &wire.NodeStatus{}},
		{Host: &wire.Host{}, Memory: &wire.Memory{}},
	}}
	if got := metrics.Rows(b); got != 3+2+4+1+1+2 {
		t.Errorf("Rows = %d, want 13", got)
	}
}
