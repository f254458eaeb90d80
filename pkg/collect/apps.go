//go:build linux

package collect

import (
	"cmp"
	"math"
	"slices"

	"github.com/sysmon/sysmon/pkg/wire"
)

// appAgg accumulates one application's figures over a scan.
type appAgg struct {
	cpu, io float64
	mem     uint64
	n       uint32
}

type appKey struct{ group, name string }

// maxAppRows bounds app_top rows per group and unit; the largest are kept.
const maxAppRows = 200

// buildApps fills app_top: cpu (% of one CPU), memory (RSS bytes),
// processes and io (bytes/s) per cgroup application and per user, over
// every process of the scan. Rows with a zero value are left out: an idle
// application has no cpu or io row.
func (c *Collector) buildApps(s *wire.Sample) {
	clear(c.appAgg)
	for _, p := range c.seen {
		for _, k := range [2]appKey{{"cgroup", p.app}, {"user", p.user}} {
			a := c.appAgg[k]
			a.cpu += p.cpuPct
			a.io += p.readBps + p.writeBps
			a.mem += p.rss
			a.n++
			c.appAgg[k] = a
		}
	}
	start := len(s.Apps)
	for k, a := range c.appAgg {
		for _, u := range [4]struct {
			unit string
			v    float64
		}{{"cpu", a.cpu}, {"memory", float64(a.mem)}, {"processes", float64(a.n)}, {"io", a.io}} {
			if u.v > 0 {
				s.Apps = append(s.Apps, wire.AppTop{Group: k.group, Application: k.name, Unit: u.unit, Value: round3(u.v)})
			}
		}
	}
	rows := s.Apps[start:]
	slices.SortFunc(rows, func(a, b wire.AppTop) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Unit, b.Unit),
			cmp.Compare(b.Value, a.Value), cmp.Compare(a.Application, b.Application))
	})
	// Keep at most maxAppRows per (group, unit).
	out := rows[:0]
	n := 0
	for i, r := range rows {
		if i > 0 && (r.Group != rows[i-1].Group || r.Unit != rows[i-1].Unit) {
			n = 0
		}
		if n < maxAppRows {
			out = append(out, r)
		}
		n++
	}
	s.Apps = s.Apps[:start+len(out)]
}

// buildFuns fills fun_top: how many processes run each command (comm) and
// sleep in each wait channel, for those reaching Options.FunThreshold of all
// processes. Running processes have no wait channel and are not counted
// under any.
func (c *Collector) buildFuns(s *wire.Sample) {
	clear(c.funCmd)
	clear(c.funWchan)
	for _, p := range c.seen {
		c.funCmd[p.comm]++
		if p.wchan != "" {
			c.funWchan[p.wchan]++
		}
	}
	minN := uint32(math.Ceil(c.opts.FunThreshold * float64(len(c.seen))))
	// A command or wait channel of a single process is not a pattern.
	minN = max(minN, 2)
	start := len(s.Funs)
	for f, n := range c.funCmd {
		if n >= minN {
			s.Funs = append(s.Funs, wire.FunTop{Fun: f, FunType: "command", NumProcesses: n})
		}
	}
	for f, n := range c.funWchan {
		if n >= minN {
			s.Funs = append(s.Funs, wire.FunTop{Fun: f, FunType: "wchan", NumProcesses: n})
		}
	}
	rows := s.Funs[start:]
	slices.SortFunc(rows, func(a, b wire.FunTop) int {
		return cmp.Or(cmp.Compare(a.FunType, b.FunType), cmp.Compare(b.NumProcesses, a.NumProcesses), cmp.Compare(a.Fun, b.Fun))
	})
	if len(rows) > wire.MaxRowsPerTable {
		s.Funs = s.Funs[:start+wire.MaxRowsPerTable]
	}
}

// round3 keeps three decimals: the rates are estimates and shorter numbers
// encode smaller.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
