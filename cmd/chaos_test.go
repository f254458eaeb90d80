package cmd

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sysmon/sysmon/pkg/pgtest"
)

// cutProxy forwards loopback TCP to a target and can cut every connection
// abruptly (RST, no WebSocket close frame) or freeze them (half-open: the
// sockets stay up but nothing passes).
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	frozen map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, frozen: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for {
			p.mu.Lock()
			frozen := p.frozen[src]
			p.mu.Unlock()
			if !frozen {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

// cut resets every proxied connection.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	p.conns = nil
}

// freeze stops forwarding on the existing connections: they become
// half-open, neither side sees a close. New connections pass.
func (p *cutProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		p.frozen[c] = true
	}
}

// TestChaosExactlyOnce is issue 5's chaos run with the real binaries, a real
// PostgreSQL and real processes: a producer at a 1 s interval survives the
// consumer being killed, PostgreSQL stopping for 10 s, itself being killed,
// its TCP connection being reset and going half-open; at the end every sample
// it took is in `host` exactly once.
func TestChaosExactlyOnce(t *testing.T) {
	dbURL := pgtest.URL(t)
	db := pgtest.Server(t)
	dir := t.TempDir()
	cacert, crt, key, clientPEM := mintPKI(t, dir)
	consumerPort := freeTCPPort(t)
	writeConsumerEnv(t, filepath.Join(dir, "consumer.env"), consumerPort, cacert, crt, key, fmt.Sprintf("CONSUMER_DB_URL=%q", dbURL))
	proxy := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", consumerPort))
	penv := filepath.Join(dir, "producer.env")
	writeFile(t, penv, fmt.Sprintf(`PRODUCER_IP="127.0.0.1"
PRODUCER_PORT="%d"
PRODUCER_CACERTFILE="%s"
PRODUCER_CERTFILE="%s"
PRODUCER_INTERVAL="1s"
PRODUCER_SPOOL_DIR="%s"
PRODUCER_NODE="chaos-node"
`, proxy.port(), cacert, clientPEM, filepath.Join(dir, "spool")))

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { conn.Close(ctx) }()
	stored := func() int64 {
		var n int64
		for i := 0; i < 50; i++ { // the connection dies with the database outage
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM host WHERE node = 'chaos-node'`).Scan(&n); err == nil {
				return n
			}
			conn.Close(ctx)
			time.Sleep(200 * time.Millisecond)
			if c, err := pgx.Connect(ctx, dbURL); err == nil {
				conn = c
			}
		}
		t.Fatal("database unreachable")
		return 0
	}
	waitStored := func(what string, atLeast int64) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for stored() < atLeast {
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %d samples stored, want %d", what, stored(), atLeast)
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Logf("%s: %d samples stored", what, stored())
	}
	kill9 := func(p *proc) {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}

	consumer := startSysmon(t, dir, "consume", "--env", "consumer.env", "--log-format", "text")
	producer := startSysmon(t, dir, "produce", "--env", penv, "--log-format", "text")
	waitStored("start", 4)

	// 1. kill -9 the consumer, restart it 3 s later.
	kill9(consumer)
	time.Sleep(3 * time.Second)
	consumer = startSysmon(t, dir, "consume", "--env", "consumer.env", "--log-format", "text")
	waitStored("after consumer kill -9", stored()+6)

	// 2. PostgreSQL down for 10 s.
	if err := db.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second)
	if err := db.StartAgain(ctx); err != nil {
		t.Fatal(err)
	}
	waitStored("after database outage", stored()+12)

	// 3. kill -9 the producer, restart it on the same spool.
	kill9(producer)
	producerDown := time.Now()
	time.Sleep(2 * time.Second)
	producer = startSysmon(t, dir, "produce", "--env", penv, "--log-format", "text")
	producerUp := time.Now()
	waitStored("after producer kill -9", stored()+3)

	// 4. Reset the TCP connection from the consumer's side, no close frame.
	proxy.cut()
	waitStored("after connection reset", stored()+3)

	// 5. Half-open connection: nothing passes, nobody closes. The producer's
	// keepalive must notice within three intervals and reconnect by itself.
	proxy.freeze()
	frozenAt := time.Now()
	before := stored()
	waitStored("after half-open connection", before+3)
	t.Logf("half-open connection replaced after %v", time.Since(frozenAt).Round(100*time.Millisecond))

	// Graceful stop: the producer drains within 10 s.
	start := time.Now()
	producer.stop()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("producer took %v to stop", d)
	}
	if producer.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("producer exited with %v", producer.cmd.ProcessState)
	}
	consumer.stop()

	// Every sample exactly once: no timestamp twice, and as many rows as
	// batches the stream committed (one sample per batch).
	var dups int64
	conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT ts FROM host WHERE node = 'chaos-node' GROUP BY ts HAVING count(*) > 1) d`).Scan(&dups)
	var lastSeq, rows int64
	conn.QueryRow(ctx, `SELECT max(last_seq) FROM stream WHERE node = 'chaos-node'`).Scan(&lastSeq)
	rows = stored()
	t.Logf("samples stored %d, stream last_seq %d, duplicates %d", rows, lastSeq, dups)
	if dups != 0 {
		t.Errorf("%d samples stored twice", dups)
	}
	if rows != lastSeq {
		t.Errorf("%d rows for %d batches: samples lost or duplicated", rows, lastSeq)
	}
	// No gap longer than the interval, except while the producer was down.
	rowsTS, err := conn.Query(ctx, `SELECT ts FROM host WHERE node = 'chaos-node' ORDER BY ts`)
	if err != nil {
		t.Fatal(err)
	}
	var prev time.Time
	for rowsTS.Next() {
		var ts time.Time
		rowsTS.Scan(&ts)
		if !prev.IsZero() && ts.Sub(prev) > 1500*time.Millisecond {
			downFrom, downTo := producerDown.Add(-1500*time.Millisecond), producerUp.Add(3*time.Second)
			if prev.Before(downFrom) || ts.After(downTo) {
				t.Errorf("gap of %v from %v to %v outside the producer's own downtime (%v..%v)", ts.Sub(prev), prev, ts, producerDown, producerUp)
			}
		}
		prev = ts
	}
	if os.Getenv("SYSMON_CHAOS_KEEP") != "" {
		t.Logf("kept %s", dir)
	}
}
