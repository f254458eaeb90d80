package cmd

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/sysmon/sysmon/pkg/pgtest"
	"github.com/sysmon/sysmon/pkg/pki"
	"github.com/sysmon/sysmon/pkg/wire"
)

// TestNodeClaims proves with the real binaries that a certificate naming no
// node owns the nodes it reported first: certificate X reports node
// "shared" and lands rows; certificate Y of the same CA, reporting
// "shared" too, is closed with 1008 (seen by a raw WebSocket client and by
// the real producer), an events row records it, and nothing of Y's reaches
// the database, while Y may still claim a node of its own.
func TestNodeClaims(t *testing.T) {
	bin := sysmonBinary(t)
	dbURL := pgtest.URL(t)
	dir := t.TempDir()
	cadir := filepath.Join(dir, "ca")
	run(t, dir, bin, "ca", "init", "--dir", cadir, "--cn", "claims test CA")
	run(t, dir, bin, "ca", "server", "--dir", cadir, "--host", "127.0.0.1")
	client := func(name string) string {
		t.Helper()
		return strings.TrimSpace(run(t, dir, bin, "ca", "client", "--dir", cadir, "--name", name, "--email", name+"@example.com"))
	}
	xPEM, yPEM := client("cert-x"), client("cert-y")
	cacert := filepath.Join(cadir, pki.CACertFile)
	roots, _, err := pki.LoadCAPool(cacert)
	if err != nil {
		t.Fatal(err)
	}
	ykp, err := pki.LoadKeyPair(yPEM, "")
	if err != nil {
		t.Fatal(err)
	}
	yTLS := pki.ClientTLSConfig(ykp, roots, "127.0.0.1")

	port := freeTCPPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	writeFile(t, filepath.Join(dir, "consumer.env"), fmt.Sprintf(`CONSUMER_LISTEN_IP="127.0.0.1"
CONSUMER_LISTEN_PORT="%d"
CONSUMER_CACERTFILE="%s"
CONSUMER_CERTFILE="%s"
CONSUMER_KEYFILE="%s"
CONSUMER_CRLDIR="%s"
CONSUMER_DB_URL="%s"
`, port, cacert, filepath.Join(cadir, pki.ServerCertFile), filepath.Join(cadir, pki.ServerKeyFile), filepath.Join(cadir, pki.CRLDir), dbURL))
	consumer := startSysmon(t, dir, "consume", "--env", "consumer.env", "--log-format", "text")
	waitLog(t, consumer, 30*time.Second, "consumer listening")

	ctx := context.Background()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	query := func(q string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := db.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}

	// X reports first and owns "shared".
	startSysmon(t, dir, "produce", "--env", producerEnvNode(t, filepath.Join(dir, "x"), port, cacert, xPEM, "shared"), "--log-format", "text")
	waitRows(t, db, 30*time.Second, "rows of certificate X", `SELECT count(*) FROM host WHERE node = 'shared'`)
	var owner string
	if err := db.QueryRow(ctx, `SELECT owner_subject FROM node WHERE node = 'shared'`).Scan(&owner); err != nil || !strings.Contains(owner, "CN=cert-x") {
		t.Fatalf("owner of shared = %q (%v), want certificate X's subject", owner, err)
	}
	streamsBefore := query(`SELECT count(*) FROM stream WHERE node = 'shared'`)

	// Y over a raw client: refused with 1008 after its hello.
	c := wsDialHello(t, addr, yTLS, "shared")
	res := readUntilClose(c, 10*time.Second)
	if res.code != wire.ClosePolicyViolation || !strings.Contains(res.reason, `"shared"`) || !strings.Contains(res.reason, "another certificate") {
		t.Fatalf("certificate Y reporting X's node: close %d %q (err %v), want 1008 naming the node", res.code, res.reason, res.err)
	}
	t.Logf("Y refused: %d %q", res.code, res.reason)
	waitRows(t, db, 10*time.Second, "events row of the refusal",
		`SELECT count(*) FROM events WHERE kind = 'node_claim_refused' AND subject = 'shared' AND detail LIKE '%CN=cert-y%'`)

	// Y as the real producer: refused over and over, never welcomed.
	yProducer := startSysmon(t, dir, "produce", "--env", producerEnvNode(t, filepath.Join(dir, "y"), port, cacert, yPEM, "shared"), "--log-format", "text")
	waitLog(t, yProducer, 15*time.Second, "StatusPolicyViolation", "another certificate")
	waitLog(t, consumer, 5*time.Second, "refusing producer", "cert-y")

	if n := query(`SELECT count(*) FROM stream WHERE node = 'shared'`); n != streamsBefore {
		t.Errorf("streams of node shared: %d, want %d (X's only): Y opened a stream", n, streamsBefore)
	}
	if n := query(`SELECT count(*) FROM stream WHERE spool_id = 'shared-spool'`); n != 0 {
		t.Errorf("the raw client's stream was recorded")
	}
	// Every host row of "shared" belongs to X's stream: as many as it committed.
	var rows, seq int64
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM host WHERE node = 'shared'),
		(SELECT coalesce(sum(last_seq), 0) FROM stream WHERE node = 'shared')`).Scan(&rows, &seq); err != nil {
		t.Fatal(err)
	}
	if rows > seq {
		t.Errorf("%d host rows for shared but X's stream committed %d batches: someone else wrote", rows, seq)
	}
	if n := query(`SELECT count(*) FROM node WHERE node = 'shared' AND owner_subject LIKE '%CN=cert-x%'`); n != 1 {
		t.Errorf("shared changed owner")
	}

	// Y is welcome for a node nobody owns, and owns it from then on.
	ok := wsSession(t, addr, yTLS, "y-own")
	ok.Close(websocket.StatusNormalClosure, "")
	if n := query(`SELECT count(*) FROM node WHERE node = 'y-own' AND owner_subject LIKE '%CN=cert-y%'`); n != 1 {
		t.Errorf("y-own not owned by certificate Y")
	}
	xkp, err := pki.LoadKeyPair(xPEM, "")
	if err != nil {
		t.Fatal(err)
	}
	c = wsDialHello(t, addr, pki.ClientTLSConfig(xkp, roots, "127.0.0.1"), "y-own")
	if res := readUntilClose(c, 10*time.Second); res.code != wire.ClosePolicyViolation {
		t.Errorf("X reporting Y's node: close %d %q, want 1008", res.code, res.reason)
	}
}
