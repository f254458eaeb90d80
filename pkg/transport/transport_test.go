package transport_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sysmon/sysmon/pkg/pki"
	"github.com/sysmon/sysmon/pkg/spool"
	"github.com/sysmon/sysmon/pkg/transport"
	"github.com/sysmon/sysmon/pkg/wire"
)

// pkiFixture is a CA with a server certificate for 127.0.0.1 and a client
// certificate, minted for each test.
type pkiFixture struct {
	ca         *pki.CA
	serverTLS  *tls.Config
	clientTLS  *tls.Config
	clientCert tls.Certificate
	roots      *x509.CertPool
}

func newPKI(t testing.TB) *pkiFixture {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.Init(dir, pki.InitOptions{CN: "test CA"})
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := ca.IssueServer([]string{"127.0.0.1", "localhost"}, pki.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scert, err := pki.LoadKeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	pool, _, err := pki.LoadCAPool(ca.Path("certs/cacert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := ca.IssueClient("node-a", "ops@example.com", nil, pki.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ccert, err := pki.LoadKeyPair(pem, "")
	if err != nil {
		t.Fatal(err)
	}
	return &pkiFixture{
		ca:         ca,
		serverTLS:  pki.ServerTLSConfig(scert, pool, nil),
		clientTLS:  pki.ClientTLSConfig(ccert, pool, ""),
		clientCert: ccert,
		roots:      pool,
	}
}

// memSink records batches per stream and dedupes by sequence, as a real
// sink must; failN makes the next N writes fail.
type memSink struct {
	mu      sync.Mutex
	last    map[string]uint64
	batches map[string][]uint64
	failN   int
	writes  int
}

func newMemSink() *memSink {
	return &memSink{last: map[string]uint64{}, batches: map[string][]uint64{}}
}

func (s *memSink) OpenStream(_ context.Context, h *wire.Hello) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[h.Node+"/"+h.SpoolID], nil
}

func (s *memSink) WriteBatch(_ context.Context, h *wire.Hello, b *wire.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.failN > 0 {
		s.failN--
		return errors.New("database is down")
	}
	k := h.Node + "/" + h.SpoolID
	if b.Seq <= s.last[k] {
		return nil
	}
	s.last[k] = b.Seq
	s.batches[k] = append(s.batches[k], b.Seq)
	return nil
}

func (s *memSink) stored(k string) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.batches[k]...)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// serve runs a server on ln until the test ends or stop is called.
func serve(t *testing.T, ln net.Listener, o transport.ServerOptions, tlsConf *tls.Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	srv := transport.NewServer(o)
	go func() { srv.Serve(ctx, ln, tlsConf); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func appendBatches(t *testing.T, ob *spool.Memory, n int) {
	t.Helper()
	for range n {
		seq := ob.LastSeq() + 1
		p, err := wire.Binary.Append(nil, &wire.Batch{Seq: seq, Samples: []wire.Sample{{Time: time.Now(), ProcsSeen: uint32(seq)}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := ob.Append(seq, p); err != nil {
			t.Fatal(err)
		}
	}
}

type adapter struct{ *spool.Memory }

func (a adapter) Pending(after uint64, max int) ([]transport.Record, error) {
	recs, err := a.Memory.Pending(after, max)
	out := make([]transport.Record, len(recs))
	for i, r := range recs {
		out[i] = transport.Record{Seq: r.Seq, Payload: r.Payload}
	}
	return out, err
}

func runClient(t *testing.T, o transport.ClientOptions) (*transport.Client, func()) {
	t.Helper()
	c := transport.NewClient(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, time.Second); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return c, stop
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func seqs(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func equal(a, b []uint64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestDeliversInOrderAndDrainsOutbox(t *testing.T) {
	f := newPKI(t)
	sink := newMemSink()
	ln := listen(t)
	serve(t, ln, transport.ServerOptions{Sink: sink, Logger: testLogger(t)}, f.serverTLS)
	ob := spool.NewMemory(1000, 0, 0)
	appendBatches(t, ob, 40) // more than one window
	hello := wire.Hello{Node: "node-a", SpoolID: "s1", AgentVersion: "test"}
	c, _ := runClient(t, transport.ClientOptions{URLs: []string{"wss://" + ln.Addr().String() + "/"}, TLS: f.clientTLS, Hello: hello, Outbox: adapter{ob}, Logger: testLogger(t)})
	waitFor(t, "all 40 acknowledged", 10*time.Second, func() bool { return c.Acked() == 40 })
	appendBatches(t, ob, 5) // live data after the backlog
	waitFor(t, "live batches acknowledged", 10*time.Second, func() bool { return c.Acked() == 45 })
	if got := sink.stored("node-a/s1"); !equal(got, seqs(1, 45)) {
		t.Errorf("stored %v, want 1..45 in order", got)
	}
	if ob.Len() != 0 {
		t.Errorf("outbox holds %d acknowledged records", ob.Len())
	}
}

func TestSinkOutageHoldsAcknowledgements(t *testing.T) {
	f := newPKI(t)
	sink := newMemSink()
	sink.failN = 5
	ln := listen(t)
	serve(t, ln, transport.ServerOptions{Sink: sink, Logger: testLogger(t)}, f.serverTLS)
	ob := spool.NewMemory(1000, 0, 0)
	appendBatches(t, ob, 3)
	c, _ := runClient(t, transport.ClientOptions{URLs: []string{"wss://" + ln.Addr().String() + "/"}, TLS: f.clientTLS, Hello: wire.Hello{Node: "n", SpoolID: "s"}, Outbox: adapter{ob}, Logger: testLogger(t)})
	waitFor(t, "first failures", 5*time.Second, func() bool { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.writes >= 2 })
	if c.Acked() != 0 || ob.Len() != 3 {
		t.Fatalf("acknowledged %d while the sink failed; outbox %d", c.Acked(), ob.Len())
	}
	waitFor(t, "recovery", 15*time.Second, func() bool { return c.Acked() == 3 })
	if got := sink.stored("n/s"); !equal(got, seqs(1, 3)) {
		t.Errorf("stored %v", got)
	}
}

func TestReconnectResendsUnacknowledged(t *testing.T) {
	f := newPKI(t)
	sink := newMemSink()
	ln := listen(t)
	addr := ln.Addr().String()
	stop := serve(t, ln, transport.ServerOptions{Sink: sink, Logger: testLogger(t)}, f.serverTLS)
	ob := spool.NewMemory(1000, 0, 0)
	appendBatches(t, ob, 3)
	c, _ := runClient(t, transport.ClientOptions{URLs: []string{"wss://" + addr + "/"}, TLS: f.clientTLS, Hello: wire.Hello{Node: "n", SpoolID: "s"}, Outbox: adapter{ob}, Logger: testLogger(t), MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	waitFor(t, "first batches", 5*time.Second, func() bool { return c.Acked() == 3 })
	stop()
	appendBatches(t, ob, 4) // sampled while the consumer is away
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln2, transport.ServerOptions{Sink: sink, Logger: testLogger(t)}, f.serverTLS)
	waitFor(t, "backlog after reconnect", 10*time.Second, func() bool { return c.Acked() == 7 })
	if got := sink.stored("n/s"); !equal(got, seqs(1, 7)) {
		t.Errorf("stored %v, want each of 1..7 once", got)
	}
}

func TestFailoverToSecondURL(t *testing.T) {
	f := newPKI(t)
	sink := newMemSink()
	dead := listen(t)
	deadAddr := dead.Addr().String()
	dead.Close()
	ln := listen(t)
	serve(t, ln, transport.ServerOptions{Sink: sink}, f.serverTLS)
	ob := spool.NewMemory(1000, 0, 0)
	appendBatches(t, ob, 2)
	c, _ := runClient(t, transport.ClientOptions{URLs: []string{"wss://" + deadAddr + "/", "wss://" + ln.Addr().String() + "/"}, TLS: f.clientTLS, Hello: wire.Hello{Node: "n", SpoolID: "s"}, Outbox: adapter{ob}, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	waitFor(t, "delivery through the second URL", 10*time.Second, func() bool { return c.Acked() == 2 })
}

// rawDial opens a WebSocket with the client certificate, offering protos.
func rawDial(t *testing.T, f *pkiFixture, addr string, protos ...string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc := &httpClient{tls: f.clientTLS}
	c, _, err := websocket.Dial(ctx, "wss://"+addr+"/", &websocket.DialOptions{HTTPClient: hc.client(), Subprotocols: protos})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func readCloseCode(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func TestHostileFramesCloseOnlyTheirSession(t *testing.T) {
	f := newPKI(t)
	sink := newMemSink()
	ln := listen(t)
	addr := ln.Addr().String()
	serve(t, ln, transport.ServerOptions{Sink: sink, Logger: testLogger(t)}, f.serverTLS)

	// A well-behaved producer keeps landing batches throughout.
	ob := spool.NewMemory(1000, 0, 0)
	good, _ := runClient(t, transport.ClientOptions{URLs: []string{"wss://" + addr + "/"}, TLS: f.clientTLS, Hello: wire.Hello{Node: "good", SpoolID: "s"}, Outbox: adapter{ob}})

	hello, _ := wire.Binary.Append(nil, &wire.Hello{Node: "evil", SpoolID: "x"})
	cases := []struct {
		name  string
		frame []byte
		want  websocket.StatusCode
	}{
		{"garbage", []byte("\x00\xff garbage \x01"), wire.CloseProtocolError},
		{"oversize", make([]byte, wire.MaxMessageBytes+10), wire.CloseMessageTooBig},
		{"hello twice", hello, wire.CloseProtocolError},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, f, addr, wire.SubprotocolBinary)
			ctx := context.Background()
			if err := c.Write(ctx, websocket.MessageBinary, hello); err != nil {
				t.Fatal(err)
			}
			c.Write(ctx, websocket.MessageBinary, tc.frame)
			if got := readCloseCode(t, c); got != tc.want {
				t.Errorf("close code %d, want %d", got, tc.want)
			}
			appendBatches(t, ob, 1)
			waitFor(t, "good producer still served", 5*time.Second, func() bool { return good.Acked() == uint64(i+1) })
		})
	}
	if got := sink.stored("evil/x"); len(got) != 0 {
		t.Errorf("hostile session stored %v", got)
	}
}

func TestNoSubprotocolIsRefused(t *testing.T) {
	f := newPKI(t)
	ln := listen(t)
	serve(t, ln, transport.ServerOptions{Sink: newMemSink()}, f.serverTLS)
	c := rawDial(t, f, ln.Addr().String())
	if got := readCloseCode(t, c); got != wire.CloseProtocolError {
		t.Errorf("close code %d, want %d", got, wire.CloseProtocolError)
	}
}

func TestAuthorizeRefusalClosesWithPolicyViolation(t *testing.T) {
	f := newPKI(t)
	ln := listen(t)
	sink := newMemSink()
	serve(t, ln, transport.ServerOptions{Sink: sink, Authorize: func(_ context.Context, peer *x509.Certificate, h *wire.Hello) error {
		if peer == nil || peer.Subject.CommonName != "node-a" {
			return fmt.Errorf("unexpected peer %v", peer)
		}
		return fmt.Errorf("node %q belongs to another certificate", h.Node)
	}}, f.serverTLS)
	c := rawDial(t, f, ln.Addr().String(), wire.SubprotocolBinary)
	hello, _ := wire.Binary.Append(nil, &wire.Hello{Node: "someone-else", SpoolID: "x"})
	c.Write(context.Background(), websocket.MessageBinary, hello)
	if got := readCloseCode(t, c); got != wire.ClosePolicyViolation {
		t.Errorf("close code %d, want %d", got, wire.ClosePolicyViolation)
	}
}

func TestJSONSubprotocol(t *testing.T) {
	f := newPKI(t)
	ln := listen(t)
	sink := newMemSink()
	serve(t, ln, transport.ServerOptions{Sink: sink}, f.serverTLS)
	c := rawDial(t, f, ln.Addr().String(), wire.SubprotocolJSON)
	if c.Subprotocol() != wire.SubprotocolJSON {
		t.Fatalf("negotiated %q", c.Subprotocol())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"hello","node":"py","spool_id":"j","future_field":1}`))
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := wire.JSON.Decode(data); err != nil || wire.TypeOf(m) != wire.TypeWelcome {
		t.Fatalf("want welcome, got %s (%v)", data, err)
	}
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"something_new"}`)) // skipped, not fatal
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"batch","seq":1,"samples":[{"ts":"2026-12-03T10:00:00Z","procs_seen":3}]}`))
	_, data, err = c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"type":"ack","seq":1}` {
		t.Errorf("got %s", data)
	}
}

func TestHandshakeWithoutClientCertificateFails(t *testing.T) {
	f := newPKI(t)
	ln := listen(t)
	sink := newMemSink()
	serve(t, ln, transport.ServerOptions{Sink: sink}, f.serverTLS)
	noCert := f.clientTLS.Clone()
	noCert.Certificates = nil
	noCert.GetClientCertificate = nil
	ob := spool.NewMemory(10, 0, 0)
	appendBatches(t, ob, 1)
	c, _ := runClient(t, transport.ClientOptions{URLs: []string{"wss://" + ln.Addr().String() + "/"}, TLS: noCert, Hello: wire.Hello{Node: "n", SpoolID: "s"}, Outbox: adapter{ob}})
	time.Sleep(500 * time.Millisecond)
	if c.Acked() != 0 || len(sink.stored("n/s")) != 0 {
		t.Error("a producer without a client certificate delivered data")
	}
}

func TestPlainWebSocketWithoutTLS(t *testing.T) {
	ln := listen(t)
	sink := newMemSink()
	serve(t, ln, transport.ServerOptions{Sink: sink}, nil)
	ob := spool.NewMemory(10, 0, 0)
	appendBatches(t, ob, 2)
	c, _ := runClient(t, transport.ClientOptions{URLs: []string{"ws://" + ln.Addr().String() + "/"}, Hello: wire.Hello{Node: "n", SpoolID: "s"}, Outbox: adapter{ob}})
	waitFor(t, "delivery over ws://", 5*time.Second, func() bool { return c.Acked() == 2 })
}

func TestShutdownDrainsWithinBound(t *testing.T) {
	f := newPKI(t)
	ln := listen(t)
	sink := newMemSink()
	serve(t, ln, transport.ServerOptions{Sink: sink}, f.serverTLS)
	ob := spool.NewMemory(100, 0, 0)
	c, stop := runClient(t, transport.ClientOptions{URLs: []string{"wss://" + ln.Addr().String() + "/"}, TLS: f.clientTLS, Hello: wire.Hello{Node: "n", SpoolID: "s"}, Outbox: adapter{ob}})
	waitFor(t, "connected", 5*time.Second, c.Connected)
	appendBatches(t, ob, 5)
	start := time.Now()
	stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if got := sink.stored("n/s"); !equal(got, seqs(1, 5)) {
		t.Errorf("after drain stored %v, want 1..5", got)
	}
}

var _ = filepath.Join

// TestServerShutdownSendsGoingAway: a consumer that stops tells its
// producers so with a close frame (1001) rather than dropping them.
func TestServerShutdownSendsGoingAway(t *testing.T) {
	f := newPKI(t)
	ln := listen(t)
	stop := serve(t, ln, transport.ServerOptions{Sink: newMemSink()}, f.serverTLS)
	c := rawDial(t, f, ln.Addr().String(), wire.SubprotocolBinary)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hello, _ := wire.Binary.Append(nil, &wire.Hello{Node: "n", SpoolID: "s"})
	c.Write(ctx, websocket.MessageBinary, hello)
	if _, _, err := c.Read(ctx); err != nil { // welcome
		t.Fatal(err)
	}
	go stop()
	if got := readCloseCode(t, c); got != wire.CloseGoingAway {
		t.Errorf("close code %d, want %d", got, wire.CloseGoingAway)
	}
}
