package pg

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sysmon/sysmon/pkg/wire"
)

// Options tunes the store; zero values take the defaults.
type Options struct {
	// RetentionDays of partitions kept behind today [10];
	// DaysAhead created ahead of it [10; negative for none].
	RetentionDays, DaysAhead int
	// Now is the clock [time.Now]; tests move it.
	Now func() time.Time
	// Logger [discard].
	Logger *slog.Logger
	// MaxConns of the pool [max(4, 2*Flushers)].
	MaxConns int32

	// Flushers is how many group-commit writers run, each on its own
	// connection; a stream always goes to the same one, so its batches
	// commit in order [2].
	Flushers int
	// FlushRows closes a group once it holds this many rows [20000].
	FlushRows int
	// FlushDelay is how long a group waits for more batches after its
	// first [50ms]; a tenth of it without a new batch also closes the
	// group. Under load the size bound closes groups first.
	FlushDelay time.Duration
	// QueueLen bounds the batches waiting per flusher; WriteBatch blocks
	// (backpressure) when it is full [1024].
	QueueLen int
}

// Stats counts what the store did since Open.
type Stats struct {
	Groups   uint64 // transactions committed
	Batches  uint64 // batches committed
	Skipped  uint64 // batches skipped as already committed (replays)
	Rows     uint64 // rows committed, all tables
	Rejected uint64 // rows PostgreSQL refused, left out of their batch
	Failed   uint64 // WriteBatch results that were errors
}

// Stats returns the counters, for metrics.
func (s *Store) Stats() Stats {
	return Stats{Groups: s.stats.groups.Load(), Batches: s.stats.batches.Load(), Skipped: s.stats.skipped.Load(),
		Rows: s.stats.rows.Load(), Rejected: s.stats.rejected.Load(), Failed: s.stats.failed.Load()}
}

// ErrClosed is returned by WriteBatch after Close.
var ErrClosed = errors.New("pg store closed")

// Store writes sample batches into PostgreSQL.
type Store struct {
	o    Options
	pool *pgxpool.Pool
	log  *slog.Logger

	partMu sync.Mutex
	tables []string        // managed (partitioned) sample tables
	days   map[dayNum]bool // days whose partitions exist in every table
	ddlMu  sync.Mutex

	streamMu sync.Mutex
	streams  map[streamKey]bool // stream rows known to exist

	claimMu       sync.Mutex
	claimRefusals map[string]time.Time // last events row per refused (node, certificate)

	// routerOnly makes every statement on stream target one row by its
	// distribution column, as Citus requires of SELECT ... FOR UPDATE; set
	// when the citus extension is installed.
	routerOnly bool

	failing atomic.Bool // last group failed for want of the database
	stats   struct{ groups, batches, skipped, rows, rejected, failed atomic.Uint64 }

	// ctx bounds every commit; Close cancels it when the last groups
	// take too long (the database is down), failing them unacknowledged.
	ctx    context.Context
	cancel context.CancelFunc

	closeMu sync.RWMutex
	closed  bool
	queues  []chan *request
	wg      sync.WaitGroup
}

type streamKey struct{ node, spool string }

// request is one WriteBatch waiting in a group.
type request struct {
	key  streamKey
	h    *wire.Hello
	seq  uint64
	rows *rowSet
	done chan error
}

func (o *Options) defaults() {
	if o.RetentionDays <= 0 {
		o.RetentionDays = 10
	}
	if o.DaysAhead < 0 {
		o.DaysAhead = 0
	} else if o.DaysAhead == 0 {
		o.DaysAhead = 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Flushers <= 0 {
		o.Flushers = 2
	}
	if o.FlushRows <= 0 {
		o.FlushRows = 20000
	}
	if o.FlushDelay <= 0 {
		o.FlushDelay = 50 * time.Millisecond
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 1024
	}
	if o.MaxConns <= 0 {
		o.MaxConns = int32(max(4, 2*o.Flushers))
	}
}

// Open connects to url (a postgres:// URL or libpq key=value string; empty
// uses the PG* environment variables), applies the embedded migrations and
// creates the partitions of the retention window. Several consumers may
// open the same database at once.
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	o.defaults()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	cfg.MaxConns = o.MaxConns
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// An unreachable server must fail a group, not hold it for the
		// whole commit timeout: producers keep their data meanwhile.
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	s := &Store{o: o, pool: pool, log: o.Logger.With("component", "sink/pg"),
		days: map[dayNum]bool{}, streams: map[streamKey]bool{}}
	n, err := migrate(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if n > 0 {
		s.log.Info("schema migrated", "applied", n)
	}
	if err := s.Maintain(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("maintain partitions: %w", err)
	}
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')`).Scan(&s.routerOnly); err != nil {
		pool.Close()
		return nil, fmt.Errorf("look for the citus extension: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.queues = make([]chan *request, o.Flushers)
	for i := range s.queues {
		s.queues[i] = make(chan *request, o.QueueLen)
		s.wg.Add(1)
		go s.flusher(s.queues[i])
	}
	return s, nil
}

// Pool exposes the connection pool, for read-back in tools and tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

func (s *Store) now() time.Time { return s.o.Now() }

// OpenStream records the node (first_seen, last_seen) and the stream of h,
// and returns the highest batch sequence of the stream already committed (0
// for a new stream).
func (s *Store) OpenStream(ctx context.Context, h *wire.Hello) (lastSeq uint64, err error) {
	c := converter{}
	node, spool := cleanKey(h.Node), cleanKey(h.SpoolID)
	now := s.now()
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO node (node, first_seen, last_seen) VALUES ($1, $2, $2)
		ON CONFLICT (node) DO UPDATE SET last_seen = greatest(node.last_seen, EXCLUDED.last_seen)`, node, now)
	var seq int64
	b.Queue(`INSERT INTO stream (node, spool_id, boot_id, agent_version, first_seen, last_seen)
		VALUES ($1, $2, $3, $4, $5, $5)
		ON CONFLICT (node, spool_id) DO UPDATE SET boot_id = EXCLUDED.boot_id,
			agent_version = EXCLUDED.agent_version, last_seen = EXCLUDED.last_seen
		RETURNING last_seq`, node, spool, c.str("", h.BootID), c.str("", h.AgentVersion), now).
		QueryRow(func(r pgx.Row) error { return r.Scan(&seq) })
	// A batch sent outside a transaction runs as one implicit transaction.
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("open stream %s/%s: %w", h.Node, h.SpoolID, err)
	}
	s.streamMu.Lock()
	s.streams[streamKey{node, spool}] = true
	s.streamMu.Unlock()
	return uint64(seq), nil
}

// WriteBatch stores b, a batch of the stream opened by h, exactly once: a
// batch whose sequence is not above the stream's committed sequence is
// skipped. It returns nil only once the batch's rows and the stream's new
// sequence are committed (or the batch was already), so the caller may
// acknowledge it. Concurrent calls join one transaction (group commit);
// each waits for its group's result. It blocks while the queue is full, and
// returns ctx's error if ctx ends first, in which case the batch may or may
// not be committed (a resend is deduped).
func (s *Store) WriteBatch(ctx context.Context, h *wire.Hello, b *wire.Batch) error {
	done, err := s.Submit(ctx, h, b)
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Submit queues b for the next group commit and returns once it is queued
// (blocking while the queue is full: backpressure) with a channel that
// receives the commit's outcome, exactly as WriteBatch would return it.
// Batches of one stream must be submitted in sequence order, one Submit
// returning before the next starts; they may then be in flight together,
// which is how a connection keeps the database busy without waiting for
// each acknowledgement: acknowledge in order as the results arrive.
func (s *Store) Submit(ctx context.Context, h *wire.Hello, b *wire.Batch) (<-chan error, error) {
	rs := convert(h, b, s.now(), s.o.RetentionDays, s.o.DaysAhead)
	key := streamKey{cleanKey(h.Node), cleanKey(h.SpoolID)}
	req := &request{key: key, h: h, seq: b.Seq, rows: rs, done: make(chan error, 1)}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	select {
	case s.queues[shard(key, len(s.queues))] <- req:
		return req.done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// cleanKey repairs a stream key the way convert repairs the node column.
func cleanKey(s string) string { c := converter{}; return c.str("", s) }

func shard(k streamKey, n int) int {
	if n == 1 {
		return 0
	}
	f := fnv.New32a()
	f.Write([]byte(k.node))
	f.Write([]byte{0})
	f.Write([]byte(k.spool))
	return int(f.Sum32() % uint32(n))
}

// flusher gathers requests into groups and commits each group in one
// transaction, until its queue is closed and drained. A group closes when
// it holds FlushRows rows, when FlushDelay has passed since its first
// batch, when no batch came for a tenth of FlushDelay, or when every
// stream active in the last second has a batch in it: a producer waits for
// its acknowledgement before it sends more, so waiting longer would only
// add latency.
func (s *Store) flusher(q chan *request) {
	defer s.wg.Done()
	active := map[streamKey]time.Time{}
	lastPrune := time.Now()
	idleGap := max(s.o.FlushDelay/10, time.Millisecond)
	for first := range q {
		now := time.Now()
		if now.Sub(lastPrune) > activeWindow {
			for k, t := range active {
				if now.Sub(t) > activeWindow {
					delete(active, k)
				}
			}
			lastPrune = now
		}
		group := []*request{first}
		inGroup := map[streamKey]bool{first.key: true}
		active[first.key] = now
		rows := first.rows.rows()
		deadline := time.NewTimer(s.o.FlushDelay)
		idle := time.NewTimer(idleGap)
	gather:
		for rows < s.o.FlushRows && len(inGroup) < len(active) {
			select {
			case r, ok := <-q:
				if !ok {
					break gather
				}
				group = append(group, r)
				inGroup[r.key] = true
				active[r.key] = time.Now()
				rows += r.rows.rows()
				idle.Reset(idleGap)
			case <-idle.C:
				break gather
			case <-deadline.C:
				break gather
			}
		}
		deadline.Stop()
		idle.Stop()
		s.commitGroup(group)
	}
}

// activeWindow is how recently a stream must have sent a batch to count as
// active for closing groups early.
const activeWindow = time.Second

// commitGroup writes a group and tells every member the outcome. When the
// group fails because of its data (not the connection), each member is
// written again alone, salvaging its rows: PostgreSQL's rejects are left
// out and recorded, the rest of the batch commits, and the producer is not
// sent into a resend loop by a row that can never be stored.
func (s *Store) commitGroup(group []*request) {
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	err := s.writeWithRetry(ctx, group, false)
	if err != nil && isDataError(err) {
		s.log.Warn("group commit failed on its data; writing its batches one by one", "batches", len(group), "err", err)
		var last error
		for _, r := range group {
			err := s.writeWithRetry(ctx, []*request{r}, true)
			if err != nil {
				s.log.Warn("batch not stored", "node", r.key.node, "spool", r.key.spool, "seq", r.seq, "err", err)
				s.stats.failed.Add(1)
				last = err
			}
			r.done <- err
		}
		s.setHealth(last)
		return
	}
	s.setHealth(err)
	if err != nil {
		s.stats.failed.Add(uint64(len(group)))
	}
	for _, r := range group {
		r.done <- err
	}
}

// bisect copies rows [lo, hi) with copyRange under a savepoint. When
// PostgreSQL rejects them for their data it splits the range, down to
// single rows, which it leaves out. It returns how many rows it left out
// and the first rejection; err is any other failure.
func bisect(ctx context.Context, tx pgx.Tx, lo, hi int, copyRange func(lo, hi int) error) (rejected int, first, err error) {
	if _, err := tx.Exec(ctx, "SAVEPOINT salvage"); err != nil {
		return 0, nil, err
	}
	cerr := copyRange(lo, hi)
	if cerr == nil {
		_, err := tx.Exec(ctx, "RELEASE SAVEPOINT salvage")
		return 0, nil, err
	}
	if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT salvage"); err != nil {
		return 0, nil, err
	}
	if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT salvage"); err != nil {
		return 0, nil, err
	}
	if !isDataError(cerr) {
		return 0, nil, cerr
	}
	if hi-lo == 1 {
		return 1, cerr, nil
	}
	mid := lo + (hi-lo)/2
	r1, f1, err := bisect(ctx, tx, lo, mid, copyRange)
	if err != nil {
		return 0, nil, err
	}
	r2, f2, err := bisect(ctx, tx, mid, hi, copyRange)
	if err != nil {
		return 0, nil, err
	}
	if f1 == nil {
		f1 = f2
	}
	return r1 + r2, f1, nil
}

// setHealth logs once per change between writing and failing, not once per
// group: while the database is down every producer keeps resending.
func (s *Store) setHealth(err error) {
	failing := err != nil && !isDataError(err)
	if s.failing.Swap(failing) == failing {
		return
	}
	if failing {
		s.log.Warn("cannot write to postgres; batches are not acknowledged until it recovers", "err", err)
	} else {
		s.log.Info("writing to postgres again")
	}
}

// isDataError reports errors caused by the rows themselves: data
// exceptions (class 22), integrity violations (23) and program limits (54).
func isDataError(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "54":
		return !isNoPartition(pe)
	}
	return false
}

// isNoPartition recognises "no partition of relation ... found for row",
// which shares its code with CHECK violations.
func isNoPartition(pe *pgconn.PgError) bool {
	return pe.Code == checkViolationCode && strings.Contains(pe.Message, "no partition")
}

const (
	checkViolationCode = "23514"
	deadlockCode       = "40P01"
	serializeCode      = "40001"
)

func (s *Store) writeWithRetry(ctx context.Context, group []*request, salvage bool) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		var days []dayNum
		seen := map[dayNum]bool{}
		for _, r := range group {
			for _, d := range r.rows.days {
				if !seen[d] {
					seen[d] = true
					days = append(days, d)
				}
			}
		}
		if err = s.ensureDays(ctx, days); err != nil {
			return err
		}
		err = s.write(ctx, group, salvage)
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) {
			return err
		}
		switch {
		case isNoPartition(pe):
			// Another consumer dropped a partition we had cached, or
			// it was dropped by hand: look again.
			s.forgetDays(days)
			if lerr := s.loadPartitions(ctx); lerr != nil {
				return lerr
			}
		case pe.Code == deadlockCode || pe.Code == serializeCode:
			// Two consumers locked the same streams or nodes in
			// different orders; the loser retries.
		default:
			return err
		}
	}
	return err
}

// write commits one group in one transaction: lock the groups' stream rows,
// drop the batches already committed, COPY the rest, advance the streams.
// With salvage (a group of one batch that failed on its data), each table's
// rows are copied under savepoints, bisecting down to the rows PostgreSQL
// rejects; those are left out and recorded in events, the rest commits.
func (s *Store) write(ctx context.Context, group []*request, salvage bool) error {
	// Streams in a stable order, so that concurrent writers lock rows in
	// the same order.
	last := map[streamKey]int64{}
	var keys []streamKey
	for _, r := range group {
		if _, ok := last[r.key]; !ok {
			last[r.key] = -1
			keys = append(keys, r.key)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].node != keys[j].node {
			return keys[i].node < keys[j].node
		}
		return keys[i].spool < keys[j].spool
	})
	nodes := make([]string, len(keys))
	spools := make([]string, len(keys))
	for i, k := range keys {
		nodes[i], spools[i] = k.node, k.spool
	}

	t0 := time.Now()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("write batches: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	if unknown := s.unknownStreams(keys); len(unknown) > 0 {
		// WriteBatch without OpenStream (another consumer opened it, or
		// this one restarted): create the rows.
		now := s.now()
		un, us := make([]string, len(unknown)), make([]string, len(unknown))
		for i, k := range unknown {
			un[i], us[i] = k.node, k.spool
		}
		if _, err := tx.Exec(ctx, `INSERT INTO node (node, first_seen, last_seen)
			SELECT DISTINCT n, $2::timestamptz, $2::timestamptz FROM unnest($1::text[]) n ORDER BY 1
			ON CONFLICT (node) DO NOTHING`, un, now); err != nil {
			return fmt.Errorf("write batches: create nodes: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO stream (node, spool_id, first_seen, last_seen)
			SELECT n, sp, $3, $3 FROM unnest($1::text[], $2::text[]) AS u(n, sp) ORDER BY 1, 2
			ON CONFLICT (node, spool_id) DO NOTHING`, un, us, now); err != nil {
			return fmt.Errorf("write batches: create streams: %w", err)
		}
	}
	if err := s.lockStreams(ctx, tx, keys, nodes, spools, last); err != nil {
		return fmt.Errorf("write batches: lock streams: %w", err)
	}

	tl := time.Now()
	// Keep, per stream and in arrival order, the batches above the
	// committed sequence.
	var prc []prcRow
	var other [6][][]any
	skipped, nrows := 0, 0
	for _, r := range group {
		if int64(r.seq) <= last[r.key] {
			skipped++
			continue
		}
		last[r.key] = int64(r.seq)
		nrows += r.rows.rows()
		if len(group) == 1 {
			prc = r.rows.prc
		} else {
			prc = append(prc, r.rows.prc...)
		}
		for i, t := range [][][]any{r.rows.memory, r.rows.host, r.rows.appTop, r.rows.funTop, r.rows.nodeRole, r.rows.events} {
			other[i] = append(other[i], t...)
		}
	}
	if skipped == len(group) {
		s.stats.skipped.Add(uint64(skipped))
		return nil // all replays: nothing to commit
	}
	copyPrc := func(lo, hi int) error {
		_, err := tx.Conn().PgConn().CopyFrom(ctx, newPrcReader(prc[lo:hi]), prcCopySQL)
		return err
	}
	var rejects [][]any
	nrejected := 0
	salvaging := salvage && len(group) == 1
	copyTable := func(table string, n int, copyRange func(lo, hi int) error) error {
		if n == 0 {
			return nil
		}
		if !salvaging {
			if err := copyRange(0, n); err != nil {
				return fmt.Errorf("write batches: copy %s: %w", table, err)
			}
			return nil
		}
		rejected, first, err := bisect(ctx, tx, 0, n, copyRange)
		if err != nil {
			return fmt.Errorf("write batches: copy %s: %w", table, err)
		}
		if rejected > 0 {
			nrejected += rejected
			r := group[0]
			rejects = append(rejects, []any{r.key.node, s.now(), EventRejected, table,
				fmt.Sprintf("batch %d: %d of %d rows rejected by PostgreSQL, the rest stored; first error: %v", r.seq, rejected, n, first)})
		}
		return nil
	}
	if err := copyTable("prc", len(prc), copyPrc); err != nil {
		return err
	}
	for i, t := range []struct {
		name string
		cols []string
	}{{"memory", memoryColumns}, {"host", hostColumns}, {"app_top", appTopColumns},
		{"fun_top", funTopColumns}, {"node_role", nodeRoleColumns}, {"events", eventsColumns}} {
		rows := other[i]
		err := copyTable(t.name, len(rows), func(lo, hi int) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromRows(rows[lo:hi]))
			return err
		})
		if err != nil {
			return err
		}
	}
	if len(rejects) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventsColumns, pgx.CopyFromRows(rejects)); err != nil {
			return fmt.Errorf("write batches: record rejected rows: %w", err)
		}
		s.log.Warn("rows rejected by PostgreSQL; the rest of the batch is stored", "node", group[0].key.node, "seq", group[0].seq, "detail", rejects[0][4])
	}
	seqs := make([]int64, len(keys))
	for i, k := range keys {
		seqs[i] = last[k]
	}
	now := s.now()
	b := &pgx.Batch{}
	if s.routerOnly {
		for i, k := range keys {
			b.Queue(`UPDATE stream SET last_seq = $3, last_seen = $4
				WHERE node = $1 AND spool_id = $2 AND last_seq < $3`, k.node, k.spool, seqs[i], now)
		}
	} else {
		b.Queue(`UPDATE stream s SET last_seq = u.seq, last_seen = $4
			FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(n, sp, seq)
			WHERE s.node = u.n AND s.spool_id = u.sp AND u.seq > s.last_seq`, nodes, spools, seqs, now)
	}
	b.Queue(`UPDATE node SET last_seen = $2 WHERE node = ANY($1) AND last_seen < $2`, dedupe(nodes), now)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write batches: advance streams: %w", err)
	}
	tc := time.Now()
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("write batches: commit: %w", err)
	}
	s.stats.groups.Add(1)
	s.stats.batches.Add(uint64(len(group) - skipped))
	s.stats.skipped.Add(uint64(skipped))
	s.stats.rows.Add(uint64(nrows - nrejected + len(rejects)))
	s.stats.rejected.Add(uint64(nrejected))
	s.log.Debug("group committed", "batches", len(group), "skipped", skipped, "prc_rows", len(prc),
		"lock", tl.Sub(t0), "copy", tc.Sub(tl), "commit", time.Since(tc))
	s.streamMu.Lock()
	for _, k := range keys {
		s.streams[k] = true
	}
	s.streamMu.Unlock()
	return nil
}

// lockStreams locks the stream rows of keys (sorted, so that concurrent
// writers lock in one order) for the transaction and reads their committed
// sequences into last; a key without a row keeps its -1.
//
// On Citus (routerOnly) each row is locked by its own statement filtered on
// the distribution column, pipelined in one round trip: Citus runs SELECT
// ... FOR UPDATE only when it targets one shard. Elsewhere one join does it.
func (s *Store) lockStreams(ctx context.Context, tx pgx.Tx, keys []streamKey, nodes, spools []string, last map[streamKey]int64) error {
	if s.routerOnly {
		b := &pgx.Batch{}
		for _, k := range keys {
			b.Queue(`SELECT last_seq FROM stream WHERE node = $1 AND spool_id = $2 FOR UPDATE`, k.node, k.spool).
				QueryRow(func(r pgx.Row) error {
					var seq int64
					err := r.Scan(&seq)
					if errors.Is(err, pgx.ErrNoRows) {
						return nil
					}
					last[k] = seq
					return err
				})
		}
		return tx.SendBatch(ctx, b).Close()
	}
	rows, err := tx.Query(ctx, `SELECT s.node, s.spool_id, s.last_seq FROM stream s
		JOIN unnest($1::text[], $2::text[]) AS u(n, sp) ON s.node = u.n AND s.spool_id = u.sp
		ORDER BY s.node, s.spool_id FOR UPDATE OF s`, nodes, spools)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k streamKey
		var seq int64
		if err := rows.Scan(&k.node, &k.spool, &seq); err != nil {
			return err
		}
		last[k] = seq
	}
	return rows.Err()
}

func (s *Store) unknownStreams(keys []streamKey) []streamKey {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	var out []streamKey
	for _, k := range keys {
		if !s.streams[k] {
			out = append(out, k)
		}
	}
	return out
}

// dedupe returns the distinct values of a sorted slice.
func dedupe(sorted []string) []string {
	out := sorted[:0:0]
	for i, v := range sorted {
		if i == 0 || v != sorted[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Run calls Maintain every hour until ctx ends; errors are logged and
// retried at the next tick.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Maintain(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("partition maintenance failed; retrying in an hour", "err", err)
			}
		}
	}
}

// closeGrace is how long Close lets queued batches commit before it fails
// them: shutdown stays within a supervisor's usual 10 s.
const closeGrace = 8 * time.Second

// Close stops accepting batches, commits the ones already queued (for up
// to closeGrace; past that they fail, unacknowledged, and their producers
// resend them later), and closes the pool.
func (s *Store) Close() {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return
	}
	s.closed = true
	for _, q := range s.queues {
		close(q)
	}
	s.closeMu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeGrace):
		s.log.Warn("closing with batches still uncommitted; they stay unacknowledged")
		s.cancel()
		<-done
	}
	s.cancel()
	s.pool.Close()
}
