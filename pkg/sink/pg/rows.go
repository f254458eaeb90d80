package pg

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sysmon/sysmon/pkg/wire"
)

// Event kinds the sink itself writes into events.
const (
	EventClockSkew = "clock_skew"  // samples stored at receive time
	EventRepaired  = "sink_repair" // values changed so PostgreSQL accepts them
	EventRejected  = "sink_reject" // rows PostgreSQL refused, left out of their batch
)

// prcRow is one prc row: a copy of the process, so that repairs never touch
// the caller's batch.
type prcRow struct {
	node string
	ts   time.Time
	p    wire.Proc
}

// rowSet is a batch converted to rows, ready for COPY.
type rowSet struct {
	prc      []prcRow
	memory   [][]any
	host     [][]any
	appTop   [][]any
	funTop   [][]any
	nodeRole [][]any
	events   [][]any
	days     []dayNum
}

func (r *rowSet) rows() int {
	return len(r.prc) + len(r.memory) + len(r.host) + len(r.appTop) + len(r.funTop) + len(r.nodeRole) + len(r.events)
}

// Column lists, in COPY order.
var (
	prcColumns = []string{"node", "ts", "pid", "comm", "cmdline", "state", "ppid", "username", "app",
		"cpu_pct", "cpu_time_ms", "rss", "d_rss", "vsz", "threads", "fds", "read_bps", "write_bps",
		"runq_wait_pct", "wchan", "start_time"}
	memoryColumns = []string{"node", "ts", "total", "free", "available", "buffers", "cached", "swap_total", "swap_free"}
	hostColumns   = []string{"node", "ts", "load1", "load5", "load15", "cpu_user", "cpu_system", "cpu_iowait",
		"cpu_idle", "cpu_steal", "procs_running", "procs_blocked", "procs_total",
		"pressure_cpu_some", "pressure_memory_some", "pressure_memory_full", "pressure_io_some", "pressure_io_full",
		"procs_seen"}
	appTopColumns   = []string{"node", "ts", "grouping", "application", "unit", "value"}
	funTopColumns   = []string{"node", "ts", "fun", "fun_type", "num_processes"}
	nodeRoleColumns = []string{"node", "ts", "data"}
	eventsColumns   = []string{"node", "ts", "kind", "subject", "detail"}
)

// converter turns one batch into rows, applying the time policy and the
// repairs, and counts what it changed for the events rows it adds.
type converter struct {
	node    string
	now     time.Time
	lo, hi  time.Time // accepted sample times: [lo, hi)
	repairs map[string]int
	skewed  int
	skewLo  time.Time
	skewHi  time.Time
	days    map[dayNum]bool
}

// window is the range of sample times stored as they are: from the start of
// the oldest retained day to the end of the last day created ahead (at least
// one day after now, so a clock a little fast never counts as skewed).
func window(now time.Time, retentionDays, daysAhead int) (lo, hi time.Time) {
	today := dayOf(now)
	lo = (today - dayNum(retentionDays)).start()
	hi = (today + dayNum(daysAhead) + 1).start()
	if min := now.Add(day); hi.Before(min) {
		hi = min
	}
	return lo, hi
}

// convert builds the rows of b. Policy for sample times outside the window
// (older than retention, or beyond the partitions kept ahead): the sample is
// stored at the receive time (plus its index in microseconds, to keep the
// samples of a batch distinct and ordered), and one clock_skew event row
// records how many samples moved and their original time range. Rows are
// never rejected for their time.
func convert(h *wire.Hello, b *wire.Batch, now time.Time, retentionDays, daysAhead int) *rowSet {
	c := &converter{now: now, days: map[dayNum]bool{}}
	c.lo, c.hi = window(now, retentionDays, daysAhead)
	c.node = c.str("node.node", h.Node)
	rs := &rowSet{}
	nprocs := 0
	for i := range b.Samples {
		nprocs += len(b.Samples[i].Procs)
	}
	rs.prc = make([]prcRow, 0, nprocs)
	for i := range b.Samples {
		s := &b.Samples[i]
		ts := c.time(s.Time, i)
		node := c.node
		for j := range s.Procs {
			r := prcRow{node: node, ts: ts, p: s.Procs[j]}
			p := &r.p
			p.Comm = c.str("prc.comm", p.Comm)
			p.Cmdline = c.str("prc.cmdline", p.Cmdline)
			p.State = c.str("prc.state", p.State)
			p.User = c.str("prc.username", p.User)
			p.App = c.str("prc.app", p.App)
			p.Wchan = c.str("prc.wchan", p.Wchan)
			p.CPUTimeMs = c.u64("prc.cpu_time_ms", p.CPUTimeMs)
			p.RSS = c.u64("prc.rss", p.RSS)
			p.VSZ = c.u64("prc.vsz", p.VSZ)
			p.StartTime = c.u64("prc.start_time", p.StartTime)
			rs.prc = append(rs.prc, r)
		}
		if m := s.Memory; m != nil {
			rs.memory = append(rs.memory, []any{node, ts,
				c.i64("memory.total", m.Total), c.i64("memory.free", m.Free), c.i64("memory.available", m.Available),
				c.i64("memory.buffers", m.Buffers), c.i64("memory.cached", m.Cached),
				c.i64("memory.swap_total", m.SwapTotal), c.i64("memory.swap_free", m.SwapFree)})
		}
		if hs := s.Host; hs != nil {
			row := []any{node, ts, hs.Load1, hs.Load5, hs.Load15, hs.CPUUser, hs.CPUSystem, hs.CPUIOWait,
				hs.CPUIdle, hs.CPUSteal, int64(hs.ProcsRunning), int64(hs.ProcsBlocked), int64(hs.ProcsTotal)}
			if p := hs.Pressure; p != nil {
				row = append(row, p.CPUSome, p.MemorySome, p.MemoryFull, p.IOSome, p.IOFull)
			} else {
				row = append(row, nil, nil, nil, nil, nil)
			}
			rs.host = append(rs.host, append(row, int64(s.ProcsSeen)))
		}
		for _, a := range s.Apps {
			rs.appTop = append(rs.appTop, []any{node, ts, c.str("app_top.grouping", a.Group),
				c.str("app_top.application", a.Application), c.str("app_top.unit", a.Unit), a.Value})
		}
		for _, f := range s.Funs {
			rs.funTop = append(rs.funTop, []any{node, ts, c.str("fun_top.fun", f.Fun),
				c.str("fun_top.fun_type", f.FunType), int64(f.NumProcesses)})
		}
		if st := s.Status; st != nil {
			rs.nodeRole = append(rs.nodeRole, []any{node, ts, c.str("node_role.data", st.Data)})
		}
		for _, e := range s.Events {
			ets := ts
			if !e.Time.IsZero() {
				ets = c.time(e.Time, i)
			}
			rs.events = append(rs.events, []any{node, ets, c.str("events.kind", e.Kind),
				c.str("events.subject", e.Subject), c.str("events.detail", e.Detail)})
		}
	}
	c.report(rs, b.Seq)
	for d := range c.days {
		rs.days = append(rs.days, d)
	}
	sort.Slice(rs.days, func(i, j int) bool { return rs.days[i] < rs.days[j] })
	return rs
}

// time applies the time policy to the i-th sample's time.
func (c *converter) time(t time.Time, i int) time.Time {
	if !t.Before(c.lo) && t.Before(c.hi) {
		c.days[dayOf(t)] = true
		return t
	}
	if c.skewed == 0 || t.Before(c.skewLo) {
		c.skewLo = t
	}
	if c.skewed == 0 || t.After(c.skewHi) {
		c.skewHi = t
	}
	c.skewed++
	r := c.now.Add(time.Duration(i) * time.Microsecond)
	c.days[dayOf(r)] = true
	return r
}

// str returns s as PostgreSQL text accepts it: NUL bytes removed, invalid
// UTF-8 replaced by U+FFFD.
func (c *converter) str(col, s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	c.repair(col + ": NUL bytes removed or invalid UTF-8 replaced")
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// u64 clamps an unsigned value to bigint's range.
func (c *converter) u64(col string, v uint64) uint64 {
	if v > math.MaxInt64 {
		c.repair(col + ": values above bigint's maximum clamped")
		return math.MaxInt64
	}
	return v
}

func (c *converter) i64(col string, v uint64) int64 { return int64(c.u64(col, v)) }

func (c *converter) repair(what string) {
	if c.repairs == nil {
		c.repairs = map[string]int{}
	}
	c.repairs[what]++
}

// report adds the events rows that say what the sink changed.
func (c *converter) report(rs *rowSet, seq uint64) {
	if c.skewed == 0 && len(c.repairs) == 0 {
		return
	}
	c.days[dayOf(c.now)] = true
	if c.skewed > 0 {
		rs.events = append(rs.events, []any{c.node, c.now, EventClockSkew, fmt.Sprintf("batch %d", seq),
			fmt.Sprintf("%d sample times from %s to %s outside the stored window [%s, %s): stored at receive time",
				c.skewed, c.skewLo.UTC().Format(time.RFC3339Nano), c.skewHi.UTC().Format(time.RFC3339Nano),
				c.lo.Format(time.RFC3339), c.hi.Format(time.RFC3339))})
	}
	keys := make([]string, 0, len(c.repairs))
	for k := range c.repairs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		col, what, _ := strings.Cut(k, ": ")
		rs.events = append(rs.events, []any{c.node, c.now, EventRepaired, col,
			fmt.Sprintf("batch %d: %d %s", seq, c.repairs[k], what)})
	}
}
