package cmd

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sysmon/sysmon/pkg/pgtest"
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
		writeFile(t, env, fmt.Sprintf(`CONSUMER_LISTEN_IP="127.0.0.1"
CONSUMER_LISTEN_PORT="%d"
CONSUMER_CACERTFILE="%s"
CONSUMER_CERTFILE="%s"
CONSUMER_KEYFILE="%s"
CONSUMER_CRLDIR=""
CONSUMER_DB_URL="%s"
`, port, cacert, crt, key, dbURL))
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
