//go:build linux

package cmd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sysmon/sysmon/pkg/pgserver"
	"github.com/sysmon/sysmon/pkg/pgtest"
	"github.com/sysmon/sysmon/pkg/pki"
	"github.com/sysmon/sysmon/pkg/sink/pg"
	"github.com/sysmon/sysmon/pkg/spool"
	"github.com/sysmon/sysmon/pkg/transport"
	"github.com/sysmon/sysmon/pkg/wire"
)

// TestTwoConsumersOneDatabase runs the scale-out layout of the README with
// the real binaries: two consumers on different ports over one PostgreSQL,
// and producers listing both in PRODUCER_URLS (in opposite orders, so both
// consumers carry traffic). One consumer is killed with SIGKILL mid-stream;
// its producer fails over to the other, resending what was not
// acknowledged, and the dedupe in the database keeps every sample exactly
// once: per node, as many host rows as batches its stream committed, and
// no timestamp twice.
func TestTwoConsumersOneDatabase(t *testing.T) {
	dbURL := pgtest.URL(t)
	dir := t.TempDir()
	cacert, crt, key, clientPEM := mintPKI(t, dir)
	ports := []int{freeTCPPort(t), freeTCPPort(t)}
	var consumers []*proc
	for i, port := range ports {
		env := filepath.Join(dir, fmt.Sprintf("consumer%d.env", i+1))
		writeConsumerEnv(t, env, port, cacert, crt, key, fmt.Sprintf("CONSUMER_DB_URL=%q", dbURL))
		// Both start at once: the migrations' advisory lock is part of
		// what is tested.
		consumers = append(consumers, startSysmon(t, dir, "consume", "--env", env, "--log-format", "text"))
	}
	for _, c := range consumers {
		waitLog(t, c, 30*time.Second, "consumer listening")
	}
	url := func(i int) string { return fmt.Sprintf("wss://127.0.0.1:%d/", ports[i]) }
	nodes := []string{"fleet-a", "fleet-b"}
	var producers []*proc
	for i, node := range nodes {
		pdir := filepath.Join(dir, node)
		env := filepath.Join(dir, node+".env")
		// fleet-a prefers consumer 1, fleet-b consumer 2.
		writeFile(t, env, fmt.Sprintf(`PRODUCER_URLS="%s,%s"
PRODUCER_CACERTFILE="%s"
PRODUCER_CERTFILE="%s"
PRODUCER_INTERVAL="200ms"
PRODUCER_SPOOL_DIR="%s"
PRODUCER_NODE="%s"
`, url(i), url(1-i), cacert, clientPEM, filepath.Join(pdir, "spool"), node))
		producers = append(producers, startSysmon(t, dir, "produce", "--env", env, "--log-format", "text"))
	}
	waitLog(t, consumers[0], 20*time.Second, "producer connected", "fleet-a")
	waitLog(t, consumers[1], 20*time.Second, "producer connected", "fleet-b")

	ctx := context.Background()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	stored := func(node string) int64 {
		t.Helper()
		var n int64
		if err := db.QueryRow(ctx, `SELECT count(*) FROM host WHERE node = $1`, node).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitStored := func(what, node string, atLeast int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for stored(node) < atLeast {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d samples of %s stored, want %d", what, stored(node), node, atLeast)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitStored("start", "fleet-a", 10)
	waitStored("start", "fleet-b", 10)

	// kill -9 consumer 1 while fleet-a streams through it.
	consumers[0].cmd.Process.Signal(syscall.SIGKILL)
	consumers[0].cmd.Wait()
	killedAt := stored("fleet-a")
	t.Logf("consumer 1 killed with %d samples of fleet-a stored", killedAt)
	waitLog(t, consumers[1], 20*time.Second, "producer connected", "fleet-a")
	waitStored("after failover", "fleet-a", killedAt+15)
	waitStored("after failover", "fleet-b", stored("fleet-b")+5)

	for _, p := range producers {
		p.stop()
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("producer exited %d", code)
		}
	}
	consumers[1].stop()

	for _, node := range nodes {
		var rows, distinct, lastSeq, streams int64
		err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM host WHERE node = $1),
			(SELECT count(DISTINCT ts) FROM host WHERE node = $1),
			(SELECT coalesce(max(last_seq), 0) FROM stream WHERE node = $1),
			(SELECT count(*) FROM stream WHERE node = $1)`, node).Scan(&rows, &distinct, &lastSeq, &streams)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d host rows, %d distinct ts, stream last_seq %d", node, rows, distinct, lastSeq)
		if streams != 1 {
			t.Errorf("%s: %d streams, want 1", node, streams)
		}
		if rows != distinct {
			t.Errorf("%s: %d samples stored twice", node, rows-distinct)
		}
		if rows != lastSeq {
			t.Errorf("%s: %d host rows for %d committed batches (one sample each): lost or duplicated", node, rows, lastSeq)
		}
	}
}

// BenchmarkFleet is the load test of issue 7: one consumer (the same
// pieces `sysmon consume` wires: transport.Server over real mutual TLS on
// loopback, the node claims, pg.Store with its defaults) and N simulated
// producers (transport.Client with an in-memory spool, one goroutine
// each), every producer appending one sample a second with 30 processes
// and the rest of a real sample (testdata/wire/samples.json: host, memory,
// 16 app_top, 20 fun_top rows and a status report). It measures, once
// every producer is connected, for SYSMON_FLEET_SECONDS [20]:
// sample-to-commit latency (the sample's time to the consumer's OnBatch
// hook, which runs when the batch is committed, just before the ack), the
// samples and rows committed per second, and the commits (group
// transactions) per second. N is SYSMON_FLEET_N [200]; `make loadtest`
// sweeps it.
//
// The database is a private durable PostgreSQL (fsync on, as `sysmon
// consume` runs its own) unless SYSMON_FLEET_DB_URL names one. Producers
// and consumer share this process and its cores, so the figures are a
// lower bound for a consumer on a machine of its own.
func BenchmarkFleet(b *testing.B) {
	n := envInt(b, "SYSMON_FLEET_N", 200)
	window := time.Duration(envInt(b, "SYSMON_FLEET_SECONDS", 20)) * time.Second
	raiseNoFile(b, uint64(2*n+512)) // a socket each side of every connection
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dbURL := fleetDatabase(b)
	sample := fleetSample(b)
	serverTLS, clientTLS := fleetTLS(b)

	var log *slog.Logger
	if os.Getenv("SYSMON_FLEET_DEBUG") != "" {
		// The store's debug lines time each group: lock, copy, commit.
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	store, err := pg.Open(ctx, dbURL, pg.Options{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	var (
		from, until atomic.Int64 // measured window, unix ns
		mu          sync.Mutex
		lat         = make([]time.Duration, 0, n*int(window/time.Second+2))
	)
	srv := transport.NewServer(transport.ServerOptions{
		Sink:            store,
		Authorize:       certNodeAuthorizer(claimerOf(store)),
		MaxConns:        n + 64,
		MaxConnsPerCert: n + 64, // one certificate for the whole simulated fleet
		OnBatch: func(_ *wire.Hello, bt *wire.Batch, _ time.Duration) {
			now := time.Now()
			f, u := from.Load(), until.Load()
			mu.Lock()
			for _, s := range bt.Samples {
				if t := s.Time.UnixNano(); f != 0 && t >= f && t < u {
					lat = append(lat, now.Sub(s.Time))
				}
			}
			mu.Unlock()
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	sctx, stopServer := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { srv.Serve(sctx, ln, serverTLS); close(served) }()

	until.Store(math.MaxInt64)
	var appended atomic.Int64 // samples taken inside the window
	pctx, stopProducers := context.WithCancel(ctx)
	sctxSamplers, stopSamplers := context.WithCancel(pctx)
	var wg sync.WaitGroup
	fleetUp := make(chan struct{})
	run := time.Now().UnixNano()
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < n; i++ {
		mem := spool.NewMemory(600, 0, 0)
		c := transport.NewClient(transport.ClientOptions{
			URLs: []string{"wss://" + ln.Addr().String() + "/"},
			TLS:  clientTLS,
			Hello: wire.Hello{Node: fmt.Sprintf("fleet-%04d", i), AgentVersion: "bench", BootID: "bench",
				SpoolID: fmt.Sprintf("bench-%x-%04d", run, i)},
			Outbox: outboxAdapter{Outbox: mem},
		})
		wg.Add(2)
		go func() { defer wg.Done(); c.Run(pctx, 2*time.Second) }()
		// Sampling starts once the whole fleet is connected: the load
		// test measures a steady state, not the drain of a backlog piled
		// up while a thousand TLS handshakes queue. A fleet's samplers are
		// not in phase: each starts at its own offset within the second.
		phase := time.Duration(i) * time.Second / time.Duration(n)
		go func() {
			defer wg.Done()
			select {
			case <-fleetUp:
			case <-sctxSamplers.Done():
				return
			}
			if !sleepCtx(sctxSamplers, phase) {
				return
			}
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				s := sample
				s.Time = time.Now()
				if t := s.Time.UnixNano(); from.Load() != 0 && t >= from.Load() && t < until.Load() {
					appended.Add(1)
				}
				seq := mem.LastSeq() + 1
				payload, err := wire.Binary.Append(nil, &wire.Batch{Seq: seq, Samples: []wire.Sample{s}})
				if err == nil {
					err = mem.Append(seq, payload)
				}
				if err != nil {
					b.Errorf("producer %d: %v", i, err)
					return
				}
				select {
				case <-sctxSamplers.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	// Measure once the whole fleet is connected and its backlog drained.
	for srv.Sessions() < n {
		if time.Since(start) > 2*time.Minute {
			b.Fatalf("only %d of %d producers connected after %v", srv.Sessions(), n, time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	connected := time.Since(start)
	close(fleetUp)
	time.Sleep(3 * time.Second) // warm-up: partitions, caches, the first groups
	st0, ru0 := store.Stats(), cpuTime()
	t0 := time.Now()
	from.Store(t0.UnixNano())
	time.Sleep(window)
	t1 := time.Now()
	until.Store(t1.UnixNano())
	st1, ru1 := store.Stats(), cpuTime()
	stopSamplers()
	// Samples taken in the window may still be in flight: wait for them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := len(lat)
		mu.Unlock()
		if int64(got) >= appended.Load() || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	stopProducers()
	wg.Wait()
	stopServer()
	<-served

	mu.Lock()
	defer mu.Unlock()
	want := int(appended.Load())
	missing := max(want-len(lat), 0)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		k := int(math.Ceil(p*float64(want))) - 1
		if k < 0 || want == 0 {
			return 0
		}
		if k >= len(lat) {
			return math.Inf(1) // among the samples never committed
		}
		return float64(lat[k]) / float64(time.Millisecond)
	}
	secs := t1.Sub(t0).Seconds()
	b.ReportMetric(float64(n), "producers")
	b.ReportMetric(float64(st1.Batches-st0.Batches)/secs, "samples/s")
	b.ReportMetric(float64(st1.Rows-st0.Rows)/secs, "rows/s")
	b.ReportMetric(float64(st1.Groups-st0.Groups)/secs, "commits/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(float64(missing), "uncommitted")
	b.ReportMetric((ru1-ru0).Seconds()/secs, "cpu-cores")
	b.ReportMetric(connected.Seconds(), "connect-s")
	b.Logf("%d producers connected in %v; window %v: %d samples taken, %d committed, %d commits, p50 %.1f ms p99 %.1f ms max %.1f ms",
		n, connected.Round(time.Millisecond), t1.Sub(t0).Round(time.Millisecond), want, len(lat), st1.Groups-st0.Groups, pct(0.5), pct(0.99), pct(1))
}

func envInt(b *testing.B, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", key, v)
	}
	return n
}

// raiseNoFile lifts the soft open-file limit towards need (up to the hard
// limit): a thousand TLS connections in one process need two thousand
// descriptors.
func raiseNoFile(b *testing.B, need uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		b.Fatal(err)
	}
	if rl.Cur >= need {
		return
	}
	rl.Cur = min(need, rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		b.Fatal(err)
	}
	if rl.Cur < need {
		b.Logf("open-file limit %d is below the %d this run needs; raise the hard limit (ulimit -Hn)", rl.Cur, need)
	}
}

// fleetDatabase returns SYSMON_FLEET_DB_URL, or starts a private durable
// cluster for the run.
func fleetDatabase(b *testing.B) string {
	if u := os.Getenv("SYSMON_FLEET_DB_URL"); u != "" {
		return u
	}
	dir, err := os.MkdirTemp("", "sysmon-fleet-")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgserver.Start(ctx, pgserver.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		os.RemoveAll(dir)
		if errors.Is(err, pgserver.ErrNoBinaries) && os.Getenv("CI") != "true" {
			b.Skip(err)
		}
		b.Fatal(err)
	}
	b.Cleanup(func() {
		srv.Close()
		os.RemoveAll(dir)
	})
	return srv.URL()
}

// fleetSample is the first sample of testdata/wire/samples.json (captured
// from a real host) cut to 30 processes.
func fleetSample(b *testing.B) wire.Sample {
	data, err := os.ReadFile("../testdata/wire/samples.json")
	if err != nil {
		b.Fatal(err)
	}
	m, err := wire.JSON.Decode(data)
	if err != nil {
		b.Fatal(err)
	}
	bt, ok := m.(*wire.Batch)
	if !ok || len(bt.Samples) == 0 || len(bt.Samples[0].Procs) < 30 {
		b.Fatalf("samples.json: want a batch whose first sample has 30 processes or more")
	}
	s := bt.Samples[0]
	s.Procs = s.Procs[:30]
	return s
}

// fleetTLS mints a CA, a server certificate for 127.0.0.1 and one client
// certificate for the whole fleet, and returns both sides' configurations
// as the consumer and producer build them.
func fleetTLS(b *testing.B) (server, client *tls.Config) {
	dir := b.TempDir()
	ca, err := pki.Init(filepath.Join(dir, "certs"), pki.InitOptions{CN: "fleet CA"})
	if err != nil {
		b.Fatal(err)
	}
	crt, key, err := ca.IssueServer([]string{"127.0.0.1"}, pki.IssueOptions{})
	if err != nil {
		b.Fatal(err)
	}
	clientPEM, err := ca.IssueClient("fleet", "fleet@example.com", nil, pki.IssueOptions{})
	if err != nil {
		b.Fatal(err)
	}
	pool, _, err := pki.LoadCAPool(ca.Path(pki.CACertFile))
	if err != nil {
		b.Fatal(err)
	}
	skp, err := pki.LoadKeyPair(crt, key)
	if err != nil {
		b.Fatal(err)
	}
	ckp, err := pki.LoadKeyPair(clientPEM, "")
	if err != nil {
		b.Fatal(err)
	}
	return pki.ServerTLSConfig(skp, pool, nil), pki.ClientTLSConfig(ckp, pool, "")
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
