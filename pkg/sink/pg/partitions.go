package pg

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// partitioned lists the sample tables, each range-partitioned by day on ts.
var partitioned = []string{"prc", "memory", "host", "app_top", "fun_top", "node_role", "events"}

const day = 24 * time.Hour

// dayNum numbers UTC days since the Unix epoch; partitions are UTC days.
type dayNum int32

func dayOf(t time.Time) dayNum {
	u := t.Unix()
	d := u / 86400
	if u < 0 && u%86400 != 0 {
		d-- // floor, for the rare pre-1970 timestamp
	}
	return dayNum(d)
}

func (d dayNum) start() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

func (d dayNum) suffix() string { return d.start().Format("20060102") }

func partitionName(table string, d dayNum) string { return table + "_" + d.suffix() }

// parsePartition reads the day back from <table>_YYYYMMDD; ok is false for
// any other name (a default partition or one a user attached by hand, which
// we leave alone).
func parsePartition(table, name string) (dayNum, bool) {
	rest, found := strings.CutPrefix(name, table+"_")
	if !found || len(rest) != 8 {
		return 0, false
	}
	t, err := time.Parse("20060102", rest)
	if err != nil {
		return 0, false
	}
	return dayOf(t), true
}

// managedTables returns the sample tables that are declaratively
// partitioned (relkind 'p'). A table converted to a TimescaleDB hypertable
// or otherwise made a plain table is left to its own engine.
func (s *Store) managedTables(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'p' AND c.relname = ANY($1)`, partitioned)
	if err != nil {
		return nil, fmt.Errorf("list partitioned tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list partitioned tables: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// existingPartitions reads every <table>_YYYYMMDD partition from the catalog.
func (s *Store) existingPartitions(ctx context.Context) (map[string]map[dayNum]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT p.relname, c.relname
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_class p ON p.oid = i.inhparent
		WHERE p.relnamespace = current_schema()::regnamespace AND p.relname = ANY($1)`, partitioned)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	defer rows.Close()
	out := map[string]map[dayNum]bool{}
	for rows.Next() {
		var parent, child string
		if err := rows.Scan(&parent, &child); err != nil {
			return nil, fmt.Errorf("list partitions: %w", err)
		}
		if d, ok := parsePartition(parent, child); ok {
			if out[parent] == nil {
				out[parent] = map[dayNum]bool{}
			}
			out[parent][d] = true
		}
	}
	return out, rows.Err()
}

// loadPartitions refreshes the cache of days for which every managed table
// has its partition.
func (s *Store) loadPartitions(ctx context.Context) error {
	tables, err := s.managedTables(ctx)
	if err != nil {
		return err
	}
	parts, err := s.existingPartitions(ctx)
	if err != nil {
		return err
	}
	days := map[dayNum]bool{}
	if len(tables) > 0 {
		for d := range parts[tables[0]] {
			all := true
			for _, t := range tables[1:] {
				all = all && parts[t][d]
			}
			if all {
				days[d] = true
			}
		}
	}
	s.partMu.Lock()
	s.tables, s.days = tables, days
	s.partMu.Unlock()
	return nil
}

// ensureDays creates the partitions of every managed table for the given
// days, unless the cache says they exist. Safe against other consumers: the
// DDL runs under a transaction advisory lock and IF NOT EXISTS.
func (s *Store) ensureDays(ctx context.Context, days []dayNum) error {
	s.partMu.Lock()
	var missing []dayNum
	for _, d := range days {
		if !s.days[d] {
			missing = append(missing, d)
		}
	}
	tables := s.tables
	s.partMu.Unlock()
	if len(missing) == 0 || len(tables) == 0 {
		return nil
	}
	// One creator at a time in this process too: concurrent flushers
	// would otherwise queue on the advisory lock for the same days.
	s.ddlMu.Lock()
	defer s.ddlMu.Unlock()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("create partitions: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey); err != nil {
		return fmt.Errorf("create partitions: lock: %w", err)
	}
	var b strings.Builder
	for _, d := range missing {
		for _, t := range tables {
			fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s');\n",
				pgx.Identifier{partitionName(t, d)}.Sanitize(), pgx.Identifier{t}.Sanitize(),
				d.start().Format(time.RFC3339), (d + 1).start().Format(time.RFC3339))
		}
	}
	if _, err := tx.Exec(ctx, b.String()); err != nil {
		return fmt.Errorf("create partitions for %s: %w", daysString(missing), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("create partitions: commit: %w", err)
	}
	s.partMu.Lock()
	for _, d := range missing {
		s.days[d] = true
	}
	s.partMu.Unlock()
	s.log.Debug("created partitions", "days", daysString(missing))
	return nil
}

// forgetDays drops days from the cache, after "no partition of relation
// found" from a partition another consumer dropped.
func (s *Store) forgetDays(days []dayNum) {
	s.partMu.Lock()
	for _, d := range days {
		delete(s.days, d)
	}
	s.partMu.Unlock()
}

func daysString(ds []dayNum) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, d.suffix())
	}
	return strings.Join(parts, ",")
}

// Maintain creates the partitions from RetentionDays before today to
// DaysAhead after it and drops every partition of a day older than that,
// found from the catalog, however long ago the last run was.
func (s *Store) Maintain(ctx context.Context) error {
	if err := s.loadPartitions(ctx); err != nil {
		return err
	}
	today := dayOf(s.now())
	oldest := today - dayNum(s.o.RetentionDays)
	var want []dayNum
	for d := oldest; d <= today+dayNum(s.o.DaysAhead); d++ {
		want = append(want, d)
	}
	if err := s.ensureDays(ctx, want); err != nil {
		return err
	}
	parts, err := s.existingPartitions(ctx)
	if err != nil {
		return err
	}
	var drop []string
	for table, days := range parts {
		for d := range days {
			if d < oldest {
				drop = append(drop, partitionName(table, d))
			}
		}
	}
	if len(drop) == 0 {
		return nil
	}
	sort.Strings(drop)
	s.ddlMu.Lock()
	defer s.ddlMu.Unlock()
	for _, name := range drop {
		// One transaction per partition: DROP locks the parent, and a
		// short lock keeps ingest flowing.
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return fmt.Errorf("drop partition %s: begin: %w", name, err)
		}
		_, err = tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey)
		if err == nil {
			_, err = tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize())
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		if err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("drop partition %s: %w", name, err)
		}
		s.log.Info("dropped partition past retention", "partition", name, "retention_days", s.o.RetentionDays)
	}
	return s.loadPartitions(ctx)
}
