package pg

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sysmon/sysmon/pkg/pgtest"
)

// TestPortableSchema holds the line TimescaleDB and Citus draw: no primary
// key, unique constraint, foreign key or trigger on a sample table.
func TestPortableSchema(t *testing.T) {
	s := open(t, pgtest.URL(t), Options{})
	n := count(t, s, `SELECT count(*) FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
		WHERE r.relname = ANY($1) AND c.contype IN ('p', 'u', 'f', 'x')`, partitioned)
	if n != 0 {
		t.Fatalf("%d key constraints on sample tables", n)
	}
	n = count(t, s, `SELECT count(*) FROM pg_trigger g JOIN pg_class r ON r.oid = g.tgrelid
		WHERE r.relname = ANY($1) AND NOT g.tgisinternal`, partitioned)
	if n != 0 {
		t.Fatalf("%d triggers on sample tables", n)
	}
	// node and ts lead every sample table.
	for _, table := range partitioned {
		var first, second string
		err := s.Pool().QueryRow(context.Background(), `SELECT
			(SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum = 1),
			(SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum = 2)`, table).Scan(&first, &second)
		if err != nil || first != "node" || second != "ts" {
			t.Fatalf("%s leads with %s, %s (%v)", table, first, second, err)
		}
	}
}

// TestPlainTables sets the schema up as a TimescaleDB user would (plain
// tables, made hypertables there, with the migration recorded by hand) and
// checks that the store writes into them and leaves their partitioning
// alone.
func TestPlainTables(t *testing.T) {
	url := pgtest.URL(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	plain := regexp.MustCompile(`\) PARTITION BY RANGE \(ts\);`).ReplaceAllString(ms[0].sql, ");")
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{plain,
		"CREATE TABLE schema_migrations (version integer NOT NULL PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
		"INSERT INTO schema_migrations (version, name) VALUES (1, '0001_init.sql')"} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	c.Close(ctx)

	s := open(t, url, Options{})
	write(t, s, hello("plain", "sp"), batch(1, time.Now(), 2, 3))
	write(t, s, hello("plain", "sp"), batch(2, time.Now().Add(-400*24*time.Hour), 1, 1))
	if err := s.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM prc"); n != 7 {
		t.Fatalf("prc rows = %d, want 7", n)
	}
	if n := count(t, s, "SELECT count(*) FROM pg_inherits"); n != 0 {
		t.Fatalf("%d partitions created on plain tables", n)
	}
}
