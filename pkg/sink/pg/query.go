package pg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sysmon/sysmon/pkg/wire"
)

// LatestTop reads back the newest stored process top of node: the rows of
// its latest sample, busiest first. It is what the "process top" dashboard
// shows, for the command line (sysmon demo) and tests.
func LatestTop(ctx context.Context, conn *pgx.Conn, node string, limit int) (time.Time, []wire.Proc, error) {
	rows, err := conn.Query(ctx, `
		SELECT ts, pid, start_time, comm, cmdline, state, ppid, username, app, cpu_pct,
		       cpu_time_ms, rss, d_rss, vsz, threads, fds, read_bps, write_bps, runq_wait_pct, wchan
		FROM prc
		WHERE node = $1 AND ts = (SELECT max(ts) FROM prc WHERE node = $1)
		ORDER BY pid = $3, cpu_pct DESC, rss DESC
		LIMIT $2`, node, limit, wire.OtherPID)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("query latest top of %s: %w", node, err)
	}
	var ts time.Time
	var out []wire.Proc
	for rows.Next() {
		var p wire.Proc
		var startTime, cpuMs, rss, vsz, threads int64
		if err := rows.Scan(&ts, &p.PID, &startTime, &p.Comm, &p.Cmdline, &p.State, &p.PPID, &p.User, &p.App, &p.CPUPct,
			&cpuMs, &rss, &p.DRSS, &vsz, &threads, &p.FDs, &p.ReadBps, &p.WriteBps, &p.RunqWaitPct, &p.Wchan); err != nil {
			return time.Time{}, nil, fmt.Errorf("read latest top of %s: %w", node, err)
		}
		p.StartTime, p.CPUTimeMs, p.RSS, p.VSZ, p.Threads = uint64(startTime), uint64(cpuMs), uint64(rss), uint64(vsz), uint32(threads)
		out = append(out, p)
	}
	return ts, out, rows.Err()
}
