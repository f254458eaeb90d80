// Package pg owns sysmon's PostgreSQL store: the schema (embedded,
// versioned migrations), the daily partitions and their retention, and the
// exactly-once ingest of wire batches through group-committed COPY.
//
// # Schema
//
// migrations/*.sql are applied at Open, in order, each recorded in
// schema_migrations, under a session advisory lock, so several consumers
// may start at once (each migration is idempotent as well). Sample tables (prc, memory, host, app_top, fun_top,
// node_role, events) lead with node text and ts timestamptz and are range
// partitioned by day on ts, one partition per UTC day named
// <table>_YYYYMMDD. node holds the known nodes; stream holds, per producer
// spool (node, spool_id), the highest batch sequence committed.
//
// # Node ownership
//
// ClaimNode binds a node to the first certificate that reports it, for
// certificates that name no node of their own (the consumer checks the
// ones that do against their SANs and never claims). The owner is stored
// in node (migration 0002) as the certificate's subject DN plus its
// issuer DN: not the serial or the key, so a certificate renewed under
// the same subject by the same CA keeps its nodes, and not the subject
// alone, so that a second CA trusted by the consumer cannot mint a
// look-alike. Another certificate claiming an owned node is refused
// (ErrNodeOwned; the consumer closes its session with 1008) and one
// events row of kind node_claim_refused per certificate and minute
// records it. OpenStream and WriteBatch create node rows without an
// owner and never change one: a node first seen from a plain ws://
// producer or a SAN-bound certificate stays unowned until a certificate
// without nodes claims it. To hand a node to a new certificate, clear its
// owner: UPDATE node SET owner_subject = NULL WHERE node = '...'.
//
// # Exactly once
//
// A batch's rows, and the advance of its stream's sequence, commit in one
// transaction that first locks the stream row (SELECT ... FOR UPDATE) and
// skips every batch whose sequence is not above the committed one. So a
// replayed spool, a resend after a lost acknowledgement, or the same batch
// offered to two consumers sharing the database is stored once. Dedupe is
// per batch, not per row: sample tables carry no unique index, which keeps
// COPY at full speed.
//
// # Group commit
//
// WriteBatch and Submit queue a converted batch to one of Options.Flushers
// writers (a stream always to the same one, so its batches commit in
// order). A writer gathers queued batches into one transaction until
// FlushRows rows, FlushDelay after the first, or until every stream active
// in the last second is in the group, then COPYs each table once and
// commits; every caller learns its group's outcome. The queues are
// bounded: a full queue blocks Submit, which stops the connection that
// called it from reading. Deadlocks between consumers and a partition
// dropped under us are retried.
//
// # Time policy
//
// A sample is stored at its own time when that falls in the window kept by
// retention: from the start of the day RetentionDays before today to the
// end of the day DaysAhead after today (at least 24 h after now). The
// partition of any day in that window is created on demand, so a producer
// with a skewed clock or a replay of old spool data never hits "no
// partition of relation found for row". A sample outside the window (older
// than retention: it would be dropped within the hour; or absurdly in the
// future: the producer's clock is wrong) is stored at the receive time,
// plus its index in the batch in microseconds to keep the batch's samples
// ordered, and one events row of kind clock_skew records how many samples
// moved and their original times. Nothing is rejected for its time.
//
// # Repairs
//
// Values PostgreSQL would reject are repaired before COPY, never rejected:
// NUL bytes are removed from text, invalid UTF-8 is replaced by U+FFFD,
// unsigned values above bigint's range are clamped. Each repaired column
// of a batch adds one events row of kind sink_repair naming the column and
// the count; the rest of the batch lands unchanged.
//
// Should PostgreSQL still reject a group for its data, each of its batches
// is written again alone, each table's rows copied under savepoints and
// bisected down to the rows it refuses. Those rows are left out, one
// events row of kind sink_reject per table says how many and why, and the
// rest of the batch commits and is acknowledged: a row that can never be
// stored does not send its producer into a resend loop.
//
// # Retention
//
// Maintain (at Open, then hourly from Run) creates the partitions from
// RetentionDays before today to DaysAhead after, and drops every
// <table>_YYYYMMDD partition of an older day, found from the catalog,
// whatever the gap since the last run.
//
// # Scaling out
//
// The schema avoids what TimescaleDB and Citus reject: no primary key or
// unique constraint on sample tables, no foreign keys, no triggers. For
// Citus, distribute by node (the partitioned tables stay partitioned):
//
//	SELECT create_distributed_table(t, 'node')
//	FROM unnest(ARRAY['node','stream','prc','memory','host','app_top',
//	                  'fun_top','node_role','events']) AS t;
//
// Open notices the citus extension and then locks and advances stream
// rows one statement per row, each filtered on node, pipelined in one
// round trip: Citus runs SELECT ... FOR UPDATE only on a single shard
// (citusdata/citus#4647), where plain PostgreSQL takes one join for the
// whole group. Neither engine is packaged for the test machines, so this
// follows the engines' documentation; the per-row statements are tested
// on plain PostgreSQL.
//
// For TimescaleDB, which needs plain tables, create the schema first from
// migrations/0001_init.sql with the PARTITION BY clauses removed, turn each
// sample table into a hypertable, and record the migration so Open skips
// it:
//
//	SELECT create_hypertable(t, 'ts', chunk_time_interval => interval '1 day')
//	FROM unnest(ARRAY['prc','memory','host','app_top','fun_top',
//	                  'node_role','events']) AS t;
//	SELECT add_retention_policy(t, interval '10 days') FROM unnest(...) AS t;
//	-- schema_migrations as migrate.go creates it, then:
//	INSERT INTO schema_migrations (version, name) VALUES (1, '0001_init.sql');
//
// The store manages partitions only of tables that are declaratively
// partitioned (relkind 'p'), so it leaves hypertables to TimescaleDB.
package pg
