// Command capture reads this machine's /proc a few times and writes one
// batch, in the sysmon.v1+json rendering, to stdout: the real-data fixture
// (testdata/wire/samples.json) that the codec tests and BenchmarkCodec use.
//
//	go run ./testdata/wire/capture -n 6 -top 12 > testdata/wire/samples.json
//
// It is a throwaway stand-in for pkg/collect, kept so the fixture can be
// regenerated: the figures only need to be realistic (top sets per category,
// the "other" roll-up, cgroup and user roll-ups, wchan counts), not exact.
// Floats are rounded to thousandths, the binary codec's precision, so the
// fixture is also an exact test vector.
package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/user"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"

	"github.com/sysmon/sysmon/pkg/wire"
)

const userHZ = 100 // clock ticks per second in /proc/PID/stat

type key struct {
	pid   int
	start uint64
}

// raw is one process as read, with the cumulative counters rates come from.
type raw struct {
	wire.Proc
	cpuTicks  uint64
	readB     uint64
	writeB    uint64
	runqNanos uint64
}

type hostRaw struct {
	cpu procfs.CPUStat
}

func main() {
	n := flag.Int("n", 6, "samples")
	interval := flag.Duration("interval", 2*time.Second, "time between samples")
	topN := flag.Int("top", 12, "processes per category")
	flag.Parse()
	if err := run(*n, *interval, *topN); err != nil {
		fmt.Fprintln(os.Stderr, "capture: error:", err)
		os.Exit(1)
	}
}

func run(n int, interval time.Duration, topN int) error {
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		return fmt.Errorf("open /proc: %w", err)
	}
	users := map[uint64]string{}
	prev, prevHost, prevT := map[key]raw{}, (*hostRaw)(nil), time.Time{}
	batch := &wire.Batch{Seq: 1}
	for i := 0; i <= n; i++ { // the first scan only primes the rates
		if i > 0 {
			time.Sleep(interval)
		}
		now := time.Now()
		cur, err := scan(fs, users)
		if err != nil {
			return err
		}
		hr, host, err := readHost(fs)
		if err != nil {
			return err
		}
		if i > 0 {
			dt := now.Sub(prevT).Seconds()
			s := buildSample(now, dt, cur, prev, topN)
			if prevHost != nil {
				fillCPU(host, prevHost, hr)
			}
			s.Host = host
			if s.Memory, err = readMemory(fs); err != nil {
				return err
			}
			if i == 1 {
				s.Status = &wire.NodeStatus{Data: nodeStatus()}
			}
			batch.Samples = append(batch.Samples, s)
		}
		prev, prevHost, prevT = cur, hr, now
	}
	b, err := wire.JSON.Append(nil, batch)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", " "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

func milli(x float64) float64 { return math.Round(x*1000) / 1000 }

func scan(fs procfs.FS, users map[uint64]string) (map[key]raw, error) {
	procs, err := fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	out := make(map[key]raw, len(procs))
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil {
			continue // exited
		}
		r := raw{Proc: wire.Proc{
			PID: int32(st.PID), StartTime: st.Starttime, Comm: st.Comm, State: st.State, PPID: int32(st.PPID),
			RSS: uint64(st.ResidentMemory()), VSZ: uint64(st.VirtualMemory()), Threads: uint32(st.NumThreads),
			CPUTimeMs: uint64(st.UTime+st.STime) * 1000 / userHZ, FDs: -1,
		}, cpuTicks: uint64(st.UTime + st.STime)}
		if args, err := p.CmdLine(); err == nil {
			r.Cmdline = strings.ToValidUTF8(strings.Join(args, " "), "\uFFFD")
			if len(r.Cmdline) > wire.MaxCmdlineBytes {
				r.Cmdline = strings.ToValidUTF8(r.Cmdline[:wire.MaxCmdlineBytes], "")
			}
		}
		if nfd, err := p.FileDescriptorsLen(); err == nil {
			r.FDs = int32(nfd)
		}
		if io, err := p.IO(); err == nil {
			r.readB, r.writeB = io.ReadBytes, io.WriteBytes
		}
		if ss, err := p.Schedstat(); err == nil {
			r.runqNanos = ss.WaitingNanoseconds
		}
		if w, err := p.Wchan(); err == nil && w != "0" {
			r.Wchan = w
		}
		if status, err := p.NewStatus(); err == nil {
			uid := status.UIDs[1]
			name, ok := users[uid]
			if !ok {
				name = strconv.FormatUint(uid, 10)
				if u, err := user.LookupId(name); err == nil {
					name = u.Username
				}
				users[uid] = name
			}
			r.User = name
		}
		r.App = "kernel"
		if cgs, err := p.Cgroups(); err == nil {
			for _, cg := range cgs {
				if cg.HierarchyID == 0 || slices.Contains(cg.Controllers, "memory") {
					if b := path.Base(cg.Path); b != "/" && b != "." {
						r.App = b
					} else if st.PPID != 2 && st.PID != 2 {
						r.App = "root"
					}
				}
			}
		}
		out[key{st.PID, st.Starttime}] = r
	}
	return out, nil
}

// buildSample computes rates against the previous scan and keeps the union
// of the top N by CPU, RSS, IO and run-queue wait, plus the "other" roll-up.
func buildSample(now time.Time, dt float64, cur, prev map[key]raw, topN int) wire.Sample {
	all := make([]wire.Proc, 0, len(cur))
	for k, r := range cur {
		p := r.Proc
		if o, ok := prev[k]; ok {
			p.CPUPct = milli(float64(r.cpuTicks-min(o.cpuTicks, r.cpuTicks)) / userHZ / dt * 100)
			p.DRSS = int64(r.RSS) - int64(o.RSS)
			p.ReadBps = milli(float64(r.readB-min(o.readB, r.readB)) / dt)
			p.WriteBps = milli(float64(r.writeB-min(o.writeB, r.writeB)) / dt)
			p.RunqWaitPct = milli(float64(r.runqNanos-min(o.runqNanos, r.runqNanos)) / 1e9 / dt * 100)
		}
		all = append(all, p)
	}
	top := map[int32]bool{}
	for _, by := range []func(a, b wire.Proc) int{
		func(a, b wire.Proc) int { return cmp.Compare(b.CPUPct, a.CPUPct) },
		func(a, b wire.Proc) int { return cmp.Compare(b.RSS, a.RSS) },
		func(a, b wire.Proc) int { return cmp.Compare(b.ReadBps+b.WriteBps, a.ReadBps+a.WriteBps) },
		func(a, b wire.Proc) int { return cmp.Compare(b.RunqWaitPct, a.RunqWaitPct) },
	} {
		slices.SortStableFunc(all, func(a, b wire.Proc) int {
			if c := by(a, b); c != 0 {
				return c
			}
			return cmp.Compare(a.PID, b.PID)
		})
		for _, p := range all[:min(topN, len(all))] {
			top[p.PID] = true
		}
	}
	slices.SortFunc(all, func(a, b wire.Proc) int { return cmp.Compare(a.PID, b.PID) })
	s := wire.Sample{Time: now.UTC(), ProcsSeen: uint32(len(all))}
	other := wire.Proc{PID: wire.OtherPID, Comm: "other", FDs: 0}
	type agg struct{ cpu, mem, n, io float64 }
	apps, usersAgg := map[string]*agg{}, map[string]*agg{}
	cmds, wchans := map[string]uint32{}, map[string]uint32{}
	for _, p := range all {
		for _, g := range []struct {
			m map[string]*agg
			k string
		}{{apps, p.App}, {usersAgg, p.User}} {
			m, k := g.m, g.k
			a := m[k]
			if a == nil {
				a = &agg{}
				m[k] = a
			}
			a.cpu += p.CPUPct
			a.mem += float64(p.RSS)
			a.n++
			a.io += p.ReadBps + p.WriteBps
		}
		cmds[p.Comm]++
		if p.Wchan != "" {
			wchans[p.Wchan]++
		}
		if top[p.PID] {
			s.Procs = append(s.Procs, p)
			continue
		}
		other.CPUPct += p.CPUPct
		other.CPUTimeMs += p.CPUTimeMs
		other.RSS += p.RSS
		other.DRSS += p.DRSS
		other.VSZ += p.VSZ
		other.Threads += p.Threads
		other.FDs += max(p.FDs, 0)
		other.ReadBps += p.ReadBps
		other.WriteBps += p.WriteBps
		other.RunqWaitPct += p.RunqWaitPct
	}
	other.CPUPct, other.ReadBps, other.WriteBps, other.RunqWaitPct = milli(other.CPUPct), milli(other.ReadBps), milli(other.WriteBps), milli(other.RunqWaitPct)
	s.Procs = append(s.Procs, other)
	for _, g := range []struct {
		name string
		m    map[string]*agg
	}{{"cgroup", apps}, {"user", usersAgg}} {
		for _, unit := range []string{"cpu", "memory", "processes", "io"} {
			var rows []wire.AppTop
			for name, a := range g.m {
				v := map[string]float64{"cpu": a.cpu, "memory": a.mem, "processes": a.n, "io": a.io}[unit]
				rows = append(rows, wire.AppTop{Group: g.name, Application: name, Unit: unit, Value: milli(v)})
			}
			slices.SortFunc(rows, func(a, b wire.AppTop) int {
				return cmp.Or(cmp.Compare(b.Value, a.Value), cmp.Compare(a.Application, b.Application))
			})
			s.Apps = append(s.Apps, rows[:min(5, len(rows))]...)
		}
	}
	for _, f := range []struct {
		typ string
		m   map[string]uint32
	}{{"command", cmds}, {"wchan", wchans}} {
		var rows []wire.FunTop
		for name, n := range f.m {
			rows = append(rows, wire.FunTop{Fun: name, FunType: f.typ, NumProcesses: n})
		}
		slices.SortFunc(rows, func(a, b wire.FunTop) int {
			return cmp.Or(cmp.Compare(b.NumProcesses, a.NumProcesses), cmp.Compare(a.Fun, b.Fun))
		})
		s.Funs = append(s.Funs, rows[:min(10, len(rows))]...)
	}
	return s
}

func readHost(fs procfs.FS) (*hostRaw, *wire.Host, error) {
	st, err := fs.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read /proc/stat: %w", err)
	}
	la, err := fs.LoadAvg()
	if err != nil {
		return nil, nil, fmt.Errorf("read /proc/loadavg: %w", err)
	}
	procs, _ := fs.AllProcs()
	h := &wire.Host{Load1: la.Load1, Load5: la.Load5, Load15: la.Load15,
		ProcsRunning: uint32(st.ProcessesRunning), ProcsBlocked: uint32(st.ProcessesBlocked), ProcsTotal: uint32(len(procs))}
	var p wire.Pressure
	ok := true
	for _, r := range []struct {
		name       string
		some, full *float64
	}{{"cpu", &p.CPUSome, nil}, {"memory", &p.MemorySome, &p.MemoryFull}, {"io", &p.IOSome, &p.IOFull}} {
		ps, err := fs.PSIStatsForResource(r.name)
		if err != nil {
			ok = false
			break
		}
		if ps.Some != nil {
			*r.some = ps.Some.Avg10
		}
		if r.full != nil && ps.Full != nil {
			*r.full = ps.Full.Avg10
		}
	}
	if ok {
		h.Pressure = &p
	}
	return &hostRaw{cpu: st.CPUTotal}, h, nil
}

func fillCPU(h *wire.Host, prev, cur *hostRaw) {
	a, b := prev.cpu, cur.cpu
	d := func(x, y float64) float64 { return max(y-x, 0) }
	user := d(a.User+a.Nice, b.User+b.Nice)
	sys := d(a.System+a.IRQ+a.SoftIRQ, b.System+b.IRQ+b.SoftIRQ)
	iow, idle, steal := d(a.Iowait, b.Iowait), d(a.Idle, b.Idle), d(a.Steal, b.Steal)
	total := user + sys + iow + idle + steal
	if total == 0 {
		return
	}
	h.CPUUser, h.CPUSystem = milli(user/total*100), milli(sys/total*100)
	h.CPUIOWait, h.CPUIdle, h.CPUSteal = milli(iow/total*100), milli(idle/total*100), milli(steal/total*100)
}

func readMemory(fs procfs.FS) (*wire.Memory, error) {
	mi, err := fs.Meminfo()
	if err != nil {
		return nil, fmt.Errorf("read /proc/meminfo: %w", err)
	}
	v := func(p *uint64) uint64 {
		if p == nil {
			return 0
		}
		return *p
	}
	return &wire.Memory{Total: v(mi.MemTotalBytes), Free: v(mi.MemFreeBytes), Available: v(mi.MemAvailableBytes),
		Buffers: v(mi.BuffersBytes), Cached: v(mi.CachedBytes), SwapTotal: v(mi.SwapTotalBytes), SwapFree: v(mi.SwapFreeBytes)}, nil
}

func nodeStatus() string {
	host, _ := os.Hostname()
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	up, _ := os.ReadFile("/proc/uptime")
	return fmt.Sprintf("host: %s\nkernel: %s\nuptime: %s", host, strings.TrimSpace(string(rel)), strings.Fields(string(up) + " ?")[0])
}
