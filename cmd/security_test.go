package cmd

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/sysmon/sysmon/pkg/pgtest"
	"github.com/sysmon/sysmon/pkg/pki"
	"github.com/sysmon/sysmon/pkg/wire"
)

// TestSecurity proves with the real binaries (sysmon ca, consume, produce),
// a real PostgreSQL and real TLS that the consumer is secure by default. One
// consumer serves every sub-test; the producer side is the real binary where
// rows matter and a raw TLS WebSocket client where the close code or the
// handshake failure is the thing to observe. A well-behaved real producer
// lands rows throughout, so every refusal is also shown not to disturb it.
func TestSecurity(t *testing.T) {
	bin := sysmonBinary(t)
	dbURL := pgtest.URL(t)
	dir := t.TempDir()
	cadir := filepath.Join(dir, "ca")

	// The whole certificate workflow goes through the binary, as an operator
	// would run it; only certificates the CLI cannot mint on purpose
	// (expired, not yet valid, another key's CRL) come from pkg/pki.
	run(t, dir, bin, "ca", "init", "--dir", cadir, "--cn", "security test CA")
	run(t, dir, bin, "ca", "server", "--dir", cadir, "--host", "127.0.0.1,localhost")
	client := func(name string, nodes ...string) string {
		t.Helper()
		args := []string{"ca", "client", "--dir", cadir, "--name", name, "--email", name + "@example.com"}
		for _, n := range nodes {
			args = append(args, "--node", n)
		}
		return strings.TrimSpace(run(t, dir, bin, args...))
	}
	cacert := filepath.Join(cadir, pki.CACertFile)
	roots, _, err := pki.LoadCAPool(cacert)
	if err != nil {
		t.Fatal(err)
	}
	tlsFor := func(pemPath string) *tls.Config {
		t.Helper()
		kp, err := pki.LoadKeyPair(pemPath, "")
		if err != nil {
			t.Fatal(err)
		}
		return pki.ClientTLSConfig(kp, roots, "127.0.0.1")
	}

	port := freeTCPPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	writeFile(t, filepath.Join(dir, "consumer.env"), fmt.Sprintf(`CONSUMER_LISTEN_IP="127.0.0.1"
CONSUMER_LISTEN_PORT="%d"
CONSUMER_CACERTFILE="%s"
CONSUMER_CERTFILE="%s"
CONSUMER_KEYFILE="%s"
CONSUMER_CRLDIR="%s"
CONSUMER_DB_URL="%s"
CONSUMER_MAX_CONNS_PER_CERT="2"
`, port, cacert, filepath.Join(cadir, pki.ServerCertFile), filepath.Join(cadir, pki.ServerKeyFile), filepath.Join(cadir, pki.CRLDir), dbURL))
	consumer := startSysmon(t, dir, "consume", "--env", "consumer.env", "--log-format", "text")
	waitLog(t, consumer, 30*time.Second, "consumer listening")

	ctx := context.Background()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	count := func(table, node string) int64 {
		t.Helper()
		var n int64
		if err := db.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE node = $1`, node).Scan(&n); err != nil {
			t.Fatalf("count %s rows of %s: %v", table, node, err)
		}
		return n
	}

	// Slow-loris clients start first: the handshake timeout (10 s) runs
	// while the other sub-tests do their work.
	loris := startSlowLoris(t, addr, tlsFor(client("loris-tls")), tlsFor(client("loris-ws")))

	good := startSysmon(t, dir, "produce", "--env", producerEnvNode(t, filepath.Join(dir, "good"), port, cacert, client("good"), "good"), "--log-format", "text")
	// A real producer whose certificate is bound to node-a but which reports
	// as node-b: refused from the start, over and over.
	nodeA := client("node-a-client", "node-a")
	impostor := startSysmon(t, dir, "produce", "--env", producerEnvNode(t, filepath.Join(dir, "impostor"), port, cacert, nodeA, "node-b"), "--log-format", "text")
	waitRows(t, db, 30*time.Second, "rows of the good producer", `SELECT count(*) FROM host WHERE node = 'good'`)

	t.Run("certificate matrix", func(t *testing.T) {
		other, err := pki.Init(filepath.Join(dir, "other-ca"), pki.InitOptions{CN: "security test CA"})
		if err != nil {
			t.Fatal(err)
		}
		otherPEM, err := other.IssueClient("stranger", "stranger@example.com", nil, pki.IssueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ca, err := pki.Open(cadir)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		expiredPEM, err := ca.IssueClient("expired", "expired@example.com", nil, pki.IssueOptions{NotBefore: now.Add(-72 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		futurePEM, err := ca.IssueClient("future", "future@example.com", nil, pki.IssueOptions{NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(72 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		noCert := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		// The consumer's own certificate has extended key usage serverAuth
		// only: presented by a client it must be refused.
		serverKP, err := pki.LoadKeyPair(filepath.Join(cadir, pki.ServerCertFile), filepath.Join(cadir, pki.ServerKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			tls  *tls.Config
			want []string // in the consumer's log line for this connection
		}{
			{"no client certificate", noCert, []string{"didn't provide a certificate"}},
			{"another CA's certificate", tlsFor(otherPEM), []string{"unknown authority"}},
			{"expired", tlsFor(expiredPEM), []string{"expired or is not yet valid", "is after"}},
			{"not yet valid", tlsFor(futurePEM), []string{"expired or is not yet valid", "is before"}},
			{"serverAuth-only certificate as client", pki.ClientTLSConfig(serverKP, roots, "127.0.0.1"), []string{"incompatible key usage"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expectRefused(t, consumer, addr, tc.tls, tc.want...)
			})
		}

		revokedPEM := client("pre-revoke")
		t.Run("revoked before connect", func(t *testing.T) {
			// It works until it is revoked...
			c := wsSession(t, addr, tlsFor(revokedPEM), "pre-revoke")
			c.Close(websocket.StatusNormalClosure, "")
			run(t, dir, bin, "ca", "revoke", "--dir", cadir, revokedPEM, "--reason", "superseded")
			// ...and the consumer picks the new CRL up without a restart.
			waitLog(t, consumer, 10*time.Second, `msg="CRLs loaded"`, "revoked=1")
			expectRefused(t, consumer, addr, tlsFor(revokedPEM), "certificate revoked", "superseded")
		})

		t.Run("CRL signed by another key is ignored", func(t *testing.T) {
			victimPEM := client("forged-victim")
			kp, err := pki.LoadKeyPair(victimPEM, "")
			if err != nil {
				t.Fatal(err)
			}
			// Same issuer name and key identifier as the real CA, another
			// key: only the signature tells them apart.
			forged := forgeCRL(t, ca.Cert, kp.Leaf.SerialNumber)
			path := filepath.Join(cadir, pki.CRLDir, "forged.crl")
			if err := os.WriteFile(path, forged, 0o644); err != nil {
				t.Fatal(err)
			}
			waitLog(t, consumer, 10*time.Second, "CRL signature does not verify against any trusted CA", "forged.crl")
			c := wsSession(t, addr, tlsFor(victimPEM), "forged-victim")
			c.Close(websocket.StatusNormalClosure, "")
			// Nor does the forgery (newer thisUpdate) displace the real
			// CRL: the revoked certificate stays refused.
			expectRefused(t, consumer, addr, tlsFor(revokedPEM), "certificate revoked")
		})
	})

	t.Run("revoked while connected", func(t *testing.T) {
		pemPath := client("revokee")
		producer := startSysmon(t, dir, "produce", "--env", producerEnvNode(t, filepath.Join(dir, "revokee"), port, cacert, pemPath, "revokee"), "--log-format", "text")
		raw := wsSession(t, addr, tlsFor(pemPath), "revokee-raw")
		waitRows(t, db, 20*time.Second, "rows of the producer about to be revoked", `SELECT count(*) FROM host WHERE node = 'revokee' HAVING count(*) >= 2`)

		closed := make(chan closeResult, 1)
		go func() { closed <- readUntilClose(raw, 20*time.Second) }()
		run(t, dir, bin, "ca", "revoke", "--dir", cadir, pemPath, "--reason", "keyCompromise")
		start := time.Now()
		res := <-closed
		took := time.Since(start)
		t.Logf("live session of the revoked certificate closed %v after `sysmon ca revoke` returned: code %d %q", took.Round(time.Millisecond), res.code, res.reason)
		if res.code != wire.ClosePolicyViolation || !strings.Contains(res.reason, "revoked") {
			t.Errorf("close %d %q (err %v), want %d certificate revoked", res.code, res.reason, res.err, wire.ClosePolicyViolation)
		}
		if took > 10*time.Second {
			t.Errorf("revoked session closed after %v, want within 10 s", took)
		}
		// The real producer's session is closed the same way; from then on
		// nothing of it lands.
		waitLog(t, producer, 10*time.Second, "StatusPolicyViolation", "certificate revoked")
		time.Sleep(500 * time.Millisecond) // a batch stored while the close handshake ran
		before := count("host", "revokee")
		waitLog(t, producer, 10*time.Second, "bad certificate") // its reconnects are refused
		time.Sleep(1500 * time.Millisecond)                     // at 300 ms a sample, about five more would have landed
		if after := count("host", "revokee"); after != before {
			t.Errorf("%d host rows of the revoked producer landed after its session was closed", after-before)
		}
		expectRefused(t, consumer, addr, tlsFor(pemPath), "certificate revoked", "keyCompromise")
	})

	t.Run("revoked between TLS handshake and upgrade", func(t *testing.T) {
		// The revocation sweep closes the sessions it can see; a connection
		// whose TLS handshake passed before the CRL reload but whose
		// WebSocket session starts after the sweep is not one of them, so
		// the session itself must check the certificate again.
		pemPath := client("straddler")
		tc, err := tls.Dial("tcp", addr, tlsFor(pemPath))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tc.Close() })
		// TLS 1.3: the consumer checks the client certificate on reading
		// the client's last flight; give it that moment.
		time.Sleep(300 * time.Millisecond)
		revoked := strings.Count(consumer.out.String(), `msg="CRLs loaded"`)
		run(t, dir, bin, "ca", "revoke", "--dir", cadir, pemPath)
		deadline := time.Now().Add(8 * time.Second)
		for strings.Count(consumer.out.String(), `msg="CRLs loaded"`) == revoked {
			if time.Now().After(deadline) {
				t.Fatal("the consumer did not reload the CRL")
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // the sweep that follows the reload
		tr := &http.Transport{DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return tc, nil }}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "wss://"+addr+"/", &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}, Subprotocols: []string{wire.SubprotocolBinary}})
		if err != nil {
			return // refused at the upgrade: fine
		}
		defer c.CloseNow()
		hello, _ := wire.Binary.Append(nil, &wire.Hello{Node: "straddler", SpoolID: "straddler-spool"})
		if err := c.Write(ctx, websocket.MessageBinary, hello); err != nil {
			return
		}
		_, data, err := c.Read(ctx)
		if err == nil {
			m, _ := wire.Binary.Decode(data)
			t.Fatalf("a certificate revoked before its session started was welcomed (%T); nothing closes it until it disconnects", m)
		}
		if code := websocket.CloseStatus(err); code != wire.ClosePolicyViolation {
			t.Errorf("session of a revoked certificate ended with %v, want close 1008", err)
		}
	})

	t.Run("node impersonation", func(t *testing.T) {
		c := wsDialHello(t, addr, tlsFor(nodeA), "node-b")
		res := readUntilClose(c, 10*time.Second)
		if res.code != wire.ClosePolicyViolation || !strings.Contains(res.reason, "node-b") {
			t.Errorf("certificate for node-a reporting as node-b: close %d %q (err %v), want 1008", res.code, res.reason, res.err)
		}
		// The same certificate is welcome for the node it names.
		ok := wsSession(t, addr, tlsFor(nodeA), "node-a")
		ok.Close(websocket.StatusNormalClosure, "")
		waitLog(t, impostor, 10*time.Second, "StatusPolicyViolation", "may not report for node", "node-b")
		for _, table := range []string{"node", "stream", "host", "prc", "memory"} {
			if n := count(table, "node-b"); n != 0 {
				t.Errorf("%d rows for node-b in %s written by a certificate bound to node-a", n, table)
			}
		}
	})

	t.Run("hostile frames", func(t *testing.T) {
		hostile := tlsFor(client("hostile"))
		hello, err := wire.Binary.Append(nil, &wire.Hello{Node: "hostile", SpoolID: "hostile-spool", AgentVersion: "test"})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := wire.Binary.Append(nil, &wire.Batch{Seq: 1, Samples: []wire.Sample{{
			Time:   time.Now(),
			Host:   &wire.Host{Load1: 1, CPUIdle: 90, CPUUser: 10, ProcsTotal: 100},
			Memory: &wire.Memory{Total: 1 << 30, Free: 1 << 29, Available: 1 << 29},
			Procs:  []wire.Proc{{PID: 1, Comm: "init"}},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		truncated := batch[:len(batch)-4]
		if _, err := wire.Binary.Decode(truncated); err == nil {
			t.Fatal("the truncated batch decodes; the test needs a malformed one")
		}
		before := count("host", "good")
		for _, tc := range []struct {
			name   string
			frames [][]byte
			want   websocket.StatusCode
		}{
			{"garbage instead of hello", [][]byte{[]byte("\x00\xff garbage \x01")}, wire.CloseProtocolError},
			{"garbage after hello", [][]byte{hello, []byte("\x00\xff garbage \x01")}, wire.CloseProtocolError},
			{"truncated batch", [][]byte{hello, truncated}, wire.CloseProtocolError},
			{"oversize frame", [][]byte{hello, make([]byte, wire.MaxMessageBytes+1)}, wire.CloseMessageTooBig},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, _, _, err := wsDial(addr, hostile)
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				res := make(chan closeResult, 1)
				go func() { res <- readUntilClose(c, 15*time.Second) }()
				for _, f := range tc.frames {
					// The consumer may close mid-write (oversize): the close
					// code is the outcome, not the write error.
					wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					err := c.Write(wctx, websocket.MessageBinary, f)
					cancel()
					if err != nil {
						break
					}
				}
				r := <-res
				if r.code != tc.want {
					t.Errorf("close %d %q (err %v), want %d", r.code, r.reason, r.err, tc.want)
				}
			})
		}
		// The well-behaved producer on the same consumer kept landing rows.
		waitRows(t, db, 10*time.Second, "new rows of the good producer after the hostile sessions",
			`SELECT count(*) FROM host WHERE node = 'good' HAVING count(*) > $1`, before)
		for _, table := range []string{"host", "prc", "memory", "app_top", "fun_top", "node_role", "events"} {
			if n := count(table, "hostile"); n != 0 {
				t.Errorf("%d rows in %s from hostile sessions", n, table)
			}
		}
		// Each hostile peer is logged with its address and certificate.
		waitLog(t, consumer, time.Second, "closing session: protocol error", "cert=hostile", "bad magic")
		waitLog(t, consumer, time.Second, "closing session: protocol error", "cert=hostile", "body length")
		waitLog(t, consumer, time.Second, "cert=hostile", "message too big")
	})

	t.Run("limits", func(t *testing.T) {
		limited := tlsFor(client("limited"))
		var open []*websocket.Conn
		for i := range 2 {
			open = append(open, wsSession(t, addr, limited, fmt.Sprintf("limited-%d", i)))
		}
		c, _, resp, err := wsDial(addr, limited)
		if err == nil {
			c.CloseNow()
			t.Fatal("a third concurrent connection with one certificate was accepted (CONSUMER_MAX_CONNS_PER_CERT=2)")
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("third connection: %v (response %v), want 503", err, resp)
		}
		waitLog(t, consumer, 5*time.Second, "too many connections for this certificate")
		// A slot freed is a slot usable again.
		open[0].Close(websocket.StatusNormalClosure, "")
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, _, _, err := wsDial(addr, limited)
			if err == nil {
				c.CloseNow()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no connection after one of two was closed: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		open[1].CloseNow()

		for _, r := range loris.wait(t, 20*time.Second) {
			t.Logf("slow-loris %s: closed after %v (%v)", r.name, r.after.Round(time.Millisecond), r.err)
			if r.after > 15*time.Second || r.after < 5*time.Second {
				t.Errorf("slow-loris %s closed after %v, want about the 10 s handshake timeout", r.name, r.after)
			}
		}
	})

	t.Run("original CA directory layout", func(t *testing.T) {
		orig, err := filepath.Abs("../testdata/pki/original")
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(filepath.Join(orig, "crl", "63131990.r0")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("testdata/pki/original/crl lacks its <hash>.r0 link: %v", err)
		}
		port2 := freeTCPPort(t)
		addr2 := fmt.Sprintf("127.0.0.1:%d", port2)
		odir := filepath.Join(dir, "original")
		os.MkdirAll(odir, 0o755)
		writeFile(t, filepath.Join(odir, "consumer.env"), fmt.Sprintf(`CONSUMER_LISTEN_IP="127.0.0.1"
CONSUMER_LISTEN_PORT="%d"
CONSUMER_CACERTFILE="%[2]s/certs/cacert.pem"
CONSUMER_CERTFILE="%[2]s/certs/server.crt"
CONSUMER_KEYFILE="%[2]s/certs/server.key"
CONSUMER_CRLDIR="%[2]s/crl"
CONSUMER_DB_URL="%[3]s"
`, port2, orig, dbURL))
		c2 := startSysmon(t, odir, "consume", "--env", "consumer.env", "--log-format", "text")
		waitLog(t, c2, 30*time.Second, "consumer listening")
		oroots, _, err := pki.LoadCAPool(filepath.Join(orig, "certs", "cacert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		origTLS := func(pemFile string) *tls.Config {
			kp, err := pki.LoadKeyPair(filepath.Join(orig, "client_keys", pemFile), "")
			if err != nil {
				t.Fatal(err)
			}
			// The original server certificate names its host in the CN
			// only: chain verification without a host name, as the
			// original producer did.
			return pki.ClientTLSConfig(kp, oroots, "")
		}
		// alice: key first, no extended key usage (the no-EKU rule).
		s := wsSession(t, addr2, origTLS("alice@example.com.pem"), "orig-alice")
		s.Close(websocket.StatusNormalClosure, "")
		// bob: certificate first, revoked (keyCompromise) in rootca.crl,
		// which the directory holds under its <hash>.r0 link too.
		expectRefused(t, c2, addr2, origTLS("bob@example.com.pem"), "certificate revoked", "keyCompromise")
	})

	t.Run("stale CRL: fail-open by default, fail-closed on request", func(t *testing.T) {
		// A CA of its own whose CRL has passed its next-update, watched by
		// two consumers (JSON lines output: no database needed) that differ
		// only in CONSUMER_CRL_FAIL_CLOSED.
		sdir := filepath.Join(dir, "stale")
		scadir := filepath.Join(sdir, "ca")
		run(t, dir, bin, "ca", "init", "--dir", scadir)
		run(t, dir, bin, "ca", "server", "--dir", scadir, "--host", "127.0.0.1")
		spem := strings.TrimSpace(run(t, dir, bin, "ca", "client", "--dir", scadir, "--name", "stale", "--email", "stale@example.com"))
		sca, err := pki.Open(scadir)
		if err != nil {
			t.Fatal(err)
		}
		if err := sca.WriteCRL(time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
		sroots, _, err := pki.LoadCAPool(filepath.Join(scadir, pki.CACertFile))
		if err != nil {
			t.Fatal(err)
		}
		kp, err := pki.LoadKeyPair(spem, "")
		if err != nil {
			t.Fatal(err)
		}
		stls := pki.ClientTLSConfig(kp, sroots, "127.0.0.1")
		start := func(name, failClosed string) (*proc, string) {
			p := freeTCPPort(t)
			writeFile(t, filepath.Join(sdir, name+".env"), fmt.Sprintf(`CONSUMER_LISTEN_IP="127.0.0.1"
CONSUMER_LISTEN_PORT="%d"
CONSUMER_CACERTFILE="%[2]s/certs/cacert.pem"
CONSUMER_CERTFILE="%[2]s/certs/server.crt"
CONSUMER_KEYFILE="%[2]s/certs/server.key"
CONSUMER_CRLDIR="%[2]s/crl"
CONSUMER_CRL_FAIL_CLOSED="%[3]s"
`, p, scadir, failClosed))
			c := startSysmon(t, sdir, "consume", "--env", name+".env", "--output", "jsonl", "--output-file", filepath.Join(sdir, name+".jsonl"), "--log-format", "text")
			waitLog(t, c, 30*time.Second, "consumer listening")
			return c, fmt.Sprintf("127.0.0.1:%d", p)
		}
		open, openAddr := start("open", "false")
		closed, closedAddr := start("closed", "true")
		waitLog(t, open, 5*time.Second, "CRL IS PAST ITS NEXT UPDATE", "fail-open")
		waitLog(t, closed, 5*time.Second, "CRL IS PAST ITS NEXT UPDATE", "fail-closed")

		s := wsSession(t, openAddr, stls, "stale-open")
		s.Close(websocket.StatusNormalClosure, "")
		expectRefused(t, closed, closedAddr, stls, "no current CRL for the issuer (fail-closed)")

		// The operator's fix: a fresh CRL, picked up without a restart.
		run(t, dir, bin, "ca", "crl", "--dir", scadir)
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, _, _, err := wsDial(closedAddr, stls)
			if err == nil {
				c.CloseNow()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("fail-closed consumer still refuses after `sysmon ca crl`: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	// Across everything: only sessions that were let in wrote anything.
	rows, err := db.Query(ctx, `SELECT node FROM node ORDER BY node`)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{"good", "revokee", "revokee-raw", "pre-revoke", "forged-victim", "node-a", "hostile", "limited-0", "limited-1", "orig-alice"}
	for _, n := range nodes {
		if !slices.Contains(allowed, n) {
			t.Errorf("node %q is in the database: a refused session wrote to it", n)
		}
	}
	if !strings.Contains(good.out.String(), "connected to consumer") {
		t.Errorf("the good producer never connected:\n%s", good.out)
	}
}

// producerEnvNode writes a producer env file in its own directory (each
// producer needs its own spool) reporting as node.
func producerEnvNode(t *testing.T, dir string, port int, cacert, pemPath, node string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := producerEnv(t, dir, port, cacert, pemPath)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "PRODUCER_NODE=%q\n", node)
	return path
}

// waitLog waits until one line of p's output contains every one of subs and
// returns it.
func waitLog(t *testing.T, p *proc, d time.Duration, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	lines:
		for sc.Scan() {
			line := sc.Text()
			for _, s := range subs {
				if !strings.Contains(line, s) {
					continue lines
				}
			}
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within %v in:\n%s", subs, d, p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wsDial opens a wss:// WebSocket to addr with tc, offering the binary
// subprotocol, and reports the local address of its TCP connection so that
// the consumer's log line for it can be found.
func wsDial(addr string, tc *tls.Config) (*websocket.Conn, string, *http.Response, error) {
	var mu sync.Mutex
	var local string
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 5 * time.Second,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, a)
			if err == nil {
				mu.Lock()
				local = c.LocalAddr().String()
				mu.Unlock()
			}
			return c, err
		},
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "wss://"+addr+"/", &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: []string{wire.SubprotocolBinary},
	})
	mu.Lock()
	defer mu.Unlock()
	if err == nil {
		c.SetReadLimit(1 << 20)
	}
	return c, local, resp, err
}

// wsDialHello dials and sends a hello for node.
func wsDialHello(t *testing.T, addr string, tc *tls.Config, node string) *websocket.Conn {
	t.Helper()
	c, _, _, err := wsDial(addr, tc)
	if err != nil {
		t.Fatalf("dial as %s: %v", node, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	hello, err := wire.Binary.Append(nil, &wire.Hello{Node: node, SpoolID: node + "-spool", AgentVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, hello); err != nil {
		t.Fatalf("send hello as %s: %v", node, err)
	}
	return c
}

// wsSession opens a session for node and waits for the consumer's welcome:
// the certificate was accepted.
func wsSession(t *testing.T, addr string, tc *tls.Config, node string) *websocket.Conn {
	t.Helper()
	c := wsDialHello(t, addr, tc, node)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("no welcome as %s: %v", node, err)
	}
	m, err := wire.Binary.Decode(data)
	if err != nil {
		t.Fatalf("welcome as %s: %v", node, err)
	}
	if _, ok := m.(*wire.Welcome); !ok {
		t.Fatalf("got message type %d as %s, want welcome", wire.TypeOf(m), node)
	}
	return c
}

// expectRefused checks that a client with tc cannot open a session and that
// the consumer logged the refusal of that very connection with every one of
// why.
func expectRefused(t *testing.T, p *proc, addr string, tc *tls.Config, why ...string) {
	t.Helper()
	c, local, _, err := wsDial(addr, tc)
	if err == nil {
		c.CloseNow()
		t.Fatalf("session opened; want the handshake refused (%s)", strings.Join(why, ", "))
	}
	if local == "" {
		t.Fatalf("no TCP connection was made: %v", err)
	}
	line := waitLog(t, p, 5*time.Second, append([]string{"TLS handshake error from " + local + ":"}, why...)...)
	t.Logf("client: %v\nconsumer: %s", err, line)
}

type closeResult struct {
	code   websocket.StatusCode
	reason string
	err    error
}

// readUntilClose reads (and drops) messages until the connection ends and
// returns the close frame the consumer sent.
func readUntilClose(c *websocket.Conn, d time.Duration) closeResult {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return closeResult{code: ce.Code, reason: ce.Reason, err: err}
		}
		return closeResult{code: -1, err: err}
	}
}

// forgeCRL returns a PEM CRL listing serial, issued under ca's name and key
// identifier but signed by a fresh key.
func forgeCRL(t *testing.T, ca *x509.Certificate, serial *big.Int) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		RawSubject:            ca.RawSubject,
		SubjectKeyId:          ca.SubjectKeyId,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	fake, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(1 << 20),
		ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(30 * 24 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: serial, RevocationTime: now.Add(-time.Minute), ReasonCode: 1},
		},
	}, fake, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl})
}

type lorisResult struct {
	name  string
	after time.Duration
	err   error
}

type slowLoris struct {
	results chan lorisResult
	n       int
}

// startSlowLoris opens three connections that stall at each stage of the
// handshake: TCP with no TLS hello, TLS with no HTTP request, and an
// upgraded WebSocket with no protocol hello. Each must be dropped by the
// consumer's handshake timeout.
func startSlowLoris(t *testing.T, addr string, tlsConf, wsConf *tls.Config) *slowLoris {
	t.Helper()
	l := &slowLoris{results: make(chan lorisResult, 3), n: 3}
	waitClosed := func(name string, start time.Time, read func() error) {
		err := read()
		l.results <- lorisResult{name: name, after: time.Since(start), err: err}
	}
	start := time.Now()
	tcp, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	go waitClosed("TCP, no TLS hello", start, func() error {
		tcp.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := tcp.Read(make([]byte, 1))
		return err
	})

	start = time.Now()
	tc, err := tls.Dial("tcp", addr, tlsConf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	go waitClosed("TLS, no HTTP request", start, func() error {
		tc.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := tc.Read(make([]byte, 1))
		return err
	})

	start = time.Now()
	ws, _, _, err := wsDial(addr, wsConf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	go waitClosed("WebSocket, no hello", start, func() error {
		r := readUntilClose(ws, 30*time.Second)
		return fmt.Errorf("close %d %q: %w", r.code, r.reason, r.err)
	})
	return l
}

func (l *slowLoris) wait(t *testing.T, d time.Duration) []lorisResult {
	t.Helper()
	var out []lorisResult
	timeout := time.After(d)
	for range l.n {
		select {
		case r := <-l.results:
			out = append(out, r)
		case <-timeout:
			t.Fatalf("slow-loris connections still open after %v: %v closed", d, out)
		}
	}
	return out
}
