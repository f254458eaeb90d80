//go:build linux

package collect

import (
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sysmon/sysmon/pkg/wire"
)

// clockTicks is USER_HZ, the unit of the time fields of /proc/PID/stat. It
// is 100 on every architecture Go supports on Linux except alpha and ia64,
// which Go does not support.
const clockTicks = 100

// proc is what the collector remembers about one process between scans. It
// is keyed by pid and belongs to one life of that pid: when the start time
// read for the pid differs, the entry is reset, so a reused pid never
// inherits a rate or a cached name.
type proc struct {
	pid   int32
	start uint64
	gen   uint32 // scan generation that last saw the process
	top   uint32 // scan generation in which the process made the top set
	fresh bool   // first seen in the current scan: rates are zero

	// fd is a /proc file of the process held open across scans (-1 when
	// none): re-reading an open proc file from offset 0 skips the path
	// lookup, which costs as much as the read itself. It is
	// /proc/PID/schedstat (fdSched) for a single-threaded process, whose
	// stat cannot change unless it runs, and /proc/PID/stat otherwise. The
	// descriptor is bound to the process, not the pid number, so after
	// the process exits it fails with ESRCH and can never show a later
	// process that reuses the pid.
	fd      int
	fdSched bool

	// The leader's schedstat as last read through fd; schedMoved says it
	// changed in this scan.
	schedExec  uint64
	schedWait  uint64
	schedNow   bool // read in this scan: update need not read it again
	schedMoved bool

	comm    string
	state   byte
	ppid    int32
	kthread bool
	ticks   uint64 // utime+stime, clock ticks
	rss     uint64 // bytes
	vsz     uint64
	threads uint32

	runqBase uint64 // run-queue wait (ns) at runqAt
	runqAt   time.Time
	ioRead   uint64 // read_bytes at ioAt
	ioWrite  uint64
	ioAt     time.Time
	ioDenied bool

	cpuPct   float64
	dRSS     int64
	readBps  float64
	writeBps float64
	runqPct  float64

	// Per-life data, read once per (pid, start time) and again after an
	// exec (seen as a comm change).
	lifeDone    bool
	user        string
	app         string
	cmdline     string
	haveCmdline bool
	wchan       string
	haveWchan   bool

	suspect bool // a suspect_rss event is outstanding
}

// scan lists the processes under the root, reads each one's held stat or
// schedstat and, where needed, more (see the cost model in doc.go); then
// fills s with the top set, the roll-up row, app_top, fun_top and
// per-process events.
func (c *Collector) scan(ctx context.Context, now time.Time, dt time.Duration, s *wire.Sample) error {
	c.scanGen++
	gen := c.scanGen
	// Time since boot, in the unit of process start times, tells which
	// processes were born during the interval.
	c.prevUptime, c.uptimeTicks = c.uptimeTicks, 0
	if b, err := c.dir.readFile(-1, "uptime", c.smallBuf); err == nil {
		c.uptimeTicks, _ = parseUptimeTicks(b)
	}
	if dt <= 0 {
		c.prevUptime = 0
	}
	st := ScanStats{}
	c.pids = c.pids[:0]
	err := c.dir.readDir(-1, ".", func(name []byte, _ byte) {
		if v, err := parseUint(name); err == nil && v > 0 && v <= 1<<31-1 {
			c.pids = append(c.pids, int32(v))
		}
	})
	if err != nil {
		return fmt.Errorf("list processes in %s: %w", c.opts.ProcRoot, err)
	}
	st.Listed = len(c.pids)

	if len(c.pids) > c.opts.MaxProcs {
		// Like the original's top_max_procs: past the limit a full scan
		// would cost too much, so only the count is reported.
		if !c.overMax && dt > 0 {
			c.overMax = true
			s.Events = append(s.Events, wire.Event{Time: now.UTC(), Kind: "max_procs", Subject: c.hostname,
				Detail: fmt.Sprintf("%d processes, over the limit of %d: per-process collection paused", len(c.pids), c.opts.MaxProcs)})
		}
		c.forget()
		s.ProcsSeen = uint32(len(c.pids))
		c.lastStats = st
		return nil
	}
	c.overMax = false

	c.seen = c.seen[:0]
	var sf statFields
	for i, pid := range c.pids {
		if i&255 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		p := c.procs[pid]
		if p != nil && p.fd >= 0 && p.fdSched && c.quiet(p, gen, &st) {
			p.gen = gen
			c.seen = append(c.seen, p)
			continue
		}
		var b []byte
		if p != nil && p.fd >= 0 && !p.fdSched {
			var err error
			if b, err = preadAll(p.fd, c.statBuf); err != nil || len(b) == 0 {
				// The process we held exited (ESRCH); the pid
				// may belong to another one by now.
				c.closeFD(p)
				b = nil
			}
		}
		newFD := -1 // a stat descriptor opened in this scan
		if b == nil {
			fd, err := c.dir.open(pid, "stat")
			if err == nil {
				if b, err = preadAll(fd, c.statBuf); err == nil && len(b) > 0 {
					newFD = fd
				} else {
					unix.Close(fd)
				}
			}
			if err != nil {
				if gone(err) {
					st.Vanished++
				} else {
					st.Unreadable++
				}
				continue
			}
			if len(b) == 0 {
				// A process that exits while its stat is read
				// yields an empty file rather than ENOENT.
				st.Vanished++
				continue
			}
		}
		if err := parseStat(b, &sf); err != nil {
			st.Unreadable++
			if newFD >= 0 {
				unix.Close(newFD)
			}
			continue
		}
		if p == nil {
			p = &proc{fd: -1}
			c.procs[pid] = p
			p.reset(pid, sf.starttime)
		} else if p.start != sf.starttime {
			c.closeFD(p)
			p.reset(pid, sf.starttime)
		}
		c.update(p, &sf, now, dt, &st)
		c.hold(p, newFD)
		p.gen = gen
		c.seen = append(c.seen, p)
	}
	for pid, p := range c.procs {
		if p.gen != gen {
			c.closeFD(p)
			delete(c.procs, pid)
		}
	}
	s.ProcsSeen = uint32(len(c.seen))
	c.lastStats = st

	// Events wait for the second sample: the first primes the rates and
	// callers commonly drop it, which would lose the crossings of what
	// was already over a limit when the producer started.
	if dt > 0 {
		c.suspectEvents(now, s)
	}
	c.buildTop(s)
	c.buildApps(s)
	c.buildFuns(s)
	return nil
}

// reset starts a new life for p; its descriptor must be closed.
func (p *proc) reset(pid int32, start uint64) {
	*p = proc{pid: pid, start: start, fresh: true, fd: -1}
}

// closeFD releases p's held descriptor, if any.
func (c *Collector) closeFD(p *proc) {
	if p.fd >= 0 {
		unix.Close(p.fd)
		p.fd = -1
		c.held--
	}
}

// quiet reads the held schedstat of a single-threaded process and reports
// whether the process can be taken as unchanged without reading its stat:
// it did not run (run time and run-queue wait unchanged) and was not
// runnable or in disk sleep when last seen. A task that did not run cannot
// change its CPU time, state, threads or wait channel, nor grow its RSS;
// what can change without it (RSS shrinking under reclaim, ppid after its
// parent exits) waits for the refresh every statRefresh scans.
func (c *Collector) quiet(p *proc, gen uint32, st *ScanStats) bool {
	b, err := preadAll(p.fd, c.smallBuf)
	if err != nil || len(b) == 0 {
		c.closeFD(p) // exited; the stat read by path tells the rest
		return false
	}
	exec, wait, err := parseSchedstat(b)
	if err != nil {
		return false
	}
	p.schedMoved = exec != p.schedExec || wait != p.schedWait
	p.schedExec, p.schedWait, p.schedNow = exec, wait, true
	if p.schedMoved || p.state == 'R' || p.state == 'D' || (uint32(p.pid)+gen)%statRefresh == 0 {
		return false
	}
	p.fresh, p.schedNow = false, false
	p.cpuPct, p.dRSS, p.readBps, p.writeBps, p.runqPct = 0, 0, 0, 0, 0
	if p.ioDenied {
		st.IODenied++
	}
	return true
}

// hold keeps the right descriptor of p open for the next scan: schedstat
// for a single-threaded process, stat (fd, just opened, or -1) otherwise.
// fd is closed when not kept.
func (c *Collector) hold(p *proc, fd int) {
	wantSched := c.schedstat && p.threads <= 1
	if p.fd >= 0 && p.fdSched == wantSched {
		if fd >= 0 {
			unix.Close(fd)
		}
		return
	}
	c.closeFD(p)
	if c.held >= c.maxHeld {
		if fd >= 0 {
			unix.Close(fd)
		}
		return
	}
	if !wantSched {
		if fd >= 0 {
			p.fd, p.fdSched = fd, false
			c.held++
		}
		return
	}
	if fd >= 0 {
		unix.Close(fd)
	}
	sfd, err := c.dir.open(p.pid, "schedstat")
	if err != nil {
		return
	}
	b, err := preadAll(sfd, c.smallBuf)
	if err == nil && len(b) > 0 {
		if exec, wait, err := parseSchedstat(b); err == nil {
			p.schedExec, p.schedWait = exec, wait
			p.fd, p.fdSched = sfd, true
			c.held++
			return
		}
	}
	unix.Close(sfd)
}

// forget drops every remembered process and its descriptor.
func (c *Collector) forget() {
	for _, p := range c.procs {
		c.closeFD(p)
	}
	clear(c.procs)
}

// update refreshes p from its stat fields and reads what else can have
// changed. A process is active when it is new, used CPU time since the last
// scan, is runnable or in uninterruptible sleep, or changed state. Only an
// active process can have done IO, waited on a run queue or moved to
// another wait channel, so io, schedstat (of each thread when there are
// several) and wchan are read for active processes only; wchan is also
// refreshed for one process in wchanRefresh per scan, because a wake-up
// too short to move the tick counter can still change where a process
// sleeps. Rates divide by the time since the figure was last read, so
// activity below the clock-tick resolution is delayed, never lost.
func (c *Collector) update(p *proc, sf *statFields, now time.Time, dt time.Duration, st *ScanStats) {
	fresh := p.gen == 0
	p.fresh = fresh
	if p.comm != string(sf.comm) {
		p.comm = cleanText(sf.comm)
		if !fresh {
			// exec(2): a new program, so a new command line, possibly a
			// new user (setuid) and cgroup.
			p.lifeDone, p.haveCmdline = false, false
		}
	}
	prevState := p.state
	p.state = sf.state
	p.ppid = sf.ppid
	p.kthread = sf.flags&pfKthread != 0
	p.threads = sf.threads
	p.vsz = sf.vsize
	ticks := sf.utime + sf.stime
	rss := sf.rssPages * c.pageSize
	secs := dt.Seconds()

	p.cpuPct, p.dRSS, p.readBps, p.writeBps, p.runqPct = 0, 0, 0, 0, 0
	// A process born since the previous scan did all its work within the
	// interval: its counters started at zero, so it is charged them whole
	// (builds and other short-lived work would otherwise never show up).
	// A process first seen but older than that has no baseline: zero.
	born := fresh && c.prevUptime > 0 && p.start >= c.prevUptime && secs > 0
	if born {
		p.cpuPct = float64(ticks) / clockTicks / secs * 100
	}
	active := fresh || ticks != p.ticks || sf.state != prevState || sf.state == 'R' || sf.state == 'D' ||
		p.schedNow && p.schedMoved
	if !fresh && secs > 0 {
		if ticks >= p.ticks {
			p.cpuPct = float64(ticks-p.ticks) / clockTicks / secs * 100
		}
		p.dRSS = int64(rss) - int64(p.rss)
	}
	p.ticks, p.rss = ticks, rss

	// Run-queue wait: the leader's schedstat covers a single-threaded
	// process; with more threads the per-thread figures are summed.
	if active && c.schedstat {
		var wait uint64
		have := false
		if p.threads <= 1 && p.schedNow {
			wait, have = p.schedWait, true
		} else if p.threads <= 1 {
			if b, err := c.dir.readFile(p.pid, "schedstat", c.smallBuf); err == nil {
				if _, w, err := parseSchedstat(b); err == nil {
					wait, have = w, true
				}
			}
		} else if p.threads <= threadReads || (uint32(p.pid)+c.scanGen)%(p.threads/threadReads+1) == 0 {
			// A process with thousands of threads is summed only
			// every few scans, keeping the amortized cost near
			// threadReads reads; the rate covers the time since its
			// last sum either way.
			wait, have = c.threadWait(p.pid)
		}
		if have {
			if born {
				p.runqPct = float64(wait) / float64(dt.Nanoseconds()) * 100
			} else if !p.runqAt.IsZero() && wait >= p.runqBase {
				if d := now.Sub(p.runqAt); d > 0 {
					p.runqPct = float64(wait-p.runqBase) / float64(d.Nanoseconds()) * 100
				}
			}
			p.runqBase, p.runqAt = wait, now
		}
	}

	if !p.ioDenied && (active || p.ioAt.IsZero()) {
		b, err := c.dir.readFile(p.pid, "io", c.smallBuf)
		if err == nil {
			if r, w, err := parseIO(b); err == nil {
				if born {
					p.readBps, p.writeBps = float64(r)/secs, float64(w)/secs
				} else if !p.ioAt.IsZero() && r >= p.ioRead && w >= p.ioWrite {
					if d := now.Sub(p.ioAt).Seconds(); d > 0 {
						p.readBps = float64(r-p.ioRead) / d
						p.writeBps = float64(w-p.ioWrite) / d
					}
				}
				p.ioRead, p.ioWrite, p.ioAt = r, w, now
			}
		} else if !gone(err) {
			// EACCES for another user's process without
			// CAP_SYS_PTRACE: its IO stays unknown for its life.
			p.ioDenied = true
		}
	}
	if p.ioDenied {
		st.IODenied++
	}

	switch {
	case sf.state == 'R':
		p.wchan, p.haveWchan = "", true
	case active || !p.haveWchan || (uint32(p.pid)+c.scanGen)%wchanRefresh == 0:
		p.wchan, p.haveWchan = "", true
		if b, err := c.dir.readFile(p.pid, "wchan", c.smallBuf); err == nil && len(b) > 0 && !(len(b) == 1 && b[0] == '0') {
			p.wchan = c.intern(b)
		}
	}

	if !p.lifeDone {
		c.readLife(p)
	}
	p.schedNow, p.schedMoved = false, false
}

// threadReads is about the most per-thread schedstat reads one process
// costs per scan, amortized.
const threadReads = 512

// statRefresh: the stat of a quiet single-threaded process is re-read
// every this many scans anyway (see quiet).
const statRefresh = 16

// wchanRefresh: an idle process's wait channel is re-read every this many
// scans.
const wchanRefresh = 16

// threadWait sums the run-queue wait of every thread of pid.
func (c *Collector) threadWait(pid int32) (uint64, bool) {
	c.tids = c.tids[:0]
	err := c.dir.readDir(pid, "task", func(name []byte, _ byte) {
		if v, err := parseUint(name); err == nil && v <= 1<<31-1 {
			c.tids = append(c.tids, int32(v))
		}
	})
	if err != nil {
		return 0, false
	}
	var sum uint64
	for _, tid := range c.tids {
		c.taskPath = c.taskPath[:0]
		c.taskPath = append(c.taskPath, "task/"...)
		c.taskPath = appendInt(c.taskPath, int64(tid))
		c.taskPath = append(c.taskPath, "/schedstat"...)
		b, err := c.dir.readFile(pid, unsafeString(c.taskPath), c.smallBuf)
		if err != nil {
			continue // thread exited
		}
		if _, wait, err := parseSchedstat(b); err == nil {
			sum += wait
		}
	}
	return sum, true
}

// suspectEvents raises one suspect_rss event when a process's RSS rises
// above Options.SuspectRSS and re-arms when it falls below 90% of it, so
// a process hovering at the limit does not raise one event per sample.
func (c *Collector) suspectEvents(now time.Time, s *wire.Sample) {
	limit := c.opts.SuspectRSS
	for _, p := range c.seen {
		switch {
		case !p.suspect && p.rss > limit:
			p.suspect = true
			s.Events = append(s.Events, wire.Event{Time: now.UTC(), Kind: "suspect_rss",
				Subject: fmt.Sprintf("%s[%d]", p.comm, p.pid),
				Detail:  fmt.Sprintf("rss %d bytes over the limit of %d bytes", p.rss, limit)})
		case p.suspect && p.rss < limit/10*9:
			p.suspect = false
		}
	}
}

// Top categories: each yields the TopN processes with the largest positive
// value.
var categories = []func(p *proc) float64{
	func(p *proc) float64 { return p.cpuPct },
	func(p *proc) float64 { return float64(p.rss) },
	func(p *proc) float64 { return float64(p.dRSS) },
	func(p *proc) float64 { return p.readBps + p.writeBps },
	func(p *proc) float64 { return p.runqPct },
}

// buildTop marks the union of the top sets, reads what only they need
// (cmdline, fd count) and appends their rows plus the "other" roll-up.
func (c *Collector) buildTop(s *wire.Sample) {
	gen := c.scanGen
	c.top = c.top[:0]
	for _, key := range categories {
		c.best = selectTop(c.best[:0], c.seen, c.opts.TopN, key)
		for _, p := range c.best {
			if p.top != gen {
				p.top = gen
				c.top = append(c.top, p)
			}
		}
	}
	other := wire.Proc{PID: wire.OtherPID, Comm: "other", FDs: -1}
	n := 0
	for _, p := range c.seen {
		if p.top == gen {
			continue
		}
		n++
		other.CPUPct += p.cpuPct
		other.CPUTimeMs += p.ticks * (1000 / clockTicks)
		other.RSS += p.rss
		other.DRSS += p.dRSS
		other.VSZ += p.vsz
		other.Threads += p.threads
		other.ReadBps += p.readBps
		other.WriteBps += p.writeBps
		other.RunqWaitPct += p.runqPct
	}
	// Processes that exited during the interval took CPU time no scan
	// saw; the host counters did. So that the rows add up to the host
	// figure, the roll-up takes what the host used beyond the top set
	// when that exceeds the sum of the other processes seen.
	if c.hostBusy > 0 {
		var topCPU float64
		for _, p := range c.top {
			topCPU += p.cpuPct
		}
		other.CPUPct = max(other.CPUPct, c.hostBusy-topCPU)
	}
	other.Cmdline = fmt.Sprintf("%d other processes", n)

	s.Procs = make([]wire.Proc, 0, len(c.top)+1)
	for _, p := range c.top {
		if !p.haveCmdline {
			p.haveCmdline = true
			if b, err := c.dir.readFile(p.pid, "cmdline", c.bigBuf[:wire.MaxCmdlineBytes]); err == nil {
				p.cmdline = cleanCmdline(b)
			}
		}
		fds := int32(-1)
		if n, err := c.dir.fdCount(p.pid, c.procfs); err == nil {
			fds = int32(n)
		}
		s.Procs = append(s.Procs, wire.Proc{
			PID: p.pid, StartTime: p.start, Comm: p.comm, Cmdline: p.cmdline,
			State: stateString(p.state), PPID: p.ppid, User: p.user, App: p.app,
			CPUPct: p.cpuPct, CPUTimeMs: p.ticks * (1000 / clockTicks),
			RSS: p.rss, DRSS: p.dRSS, VSZ: p.vsz, Threads: p.threads, FDs: fds,
			ReadBps: p.readBps, WriteBps: p.writeBps, RunqWaitPct: p.runqPct, Wchan: p.wchan,
		})
	}
	slices.SortFunc(s.Procs, func(a, b wire.Proc) int {
		if a.CPUPct != b.CPUPct {
			if a.CPUPct > b.CPUPct {
				return -1
			}
			return 1
		}
		if a.RSS != b.RSS {
			if a.RSS > b.RSS {
				return -1
			}
			return 1
		}
		return int(a.PID - b.PID)
	})
	s.Procs = append(s.Procs, other)
}

// selectTop appends to dst the n processes with the largest positive key,
// largest first, in O(len(all)*n) time without allocating beyond dst.
func selectTop(dst, all []*proc, n int, key func(*proc) float64) []*proc {
	for _, p := range all {
		v := key(p)
		if v <= 0 {
			continue
		}
		if len(dst) == n && v <= key(dst[n-1]) {
			continue
		}
		if len(dst) < n {
			dst = append(dst, p)
		} else {
			dst[n-1] = p
		}
		for i := len(dst) - 1; i > 0 && key(dst[i]) > key(dst[i-1]); i-- {
			dst[i], dst[i-1] = dst[i-1], dst[i]
		}
	}
	return dst
}

var stateStrings [256]string

func init() {
	for i := range stateStrings {
		if i >= 'A' && i <= 'Z' || i >= 'a' && i <= 'z' {
			stateStrings[i] = string(rune(i))
		} else {
			stateStrings[i] = "?"
		}
	}
}

func stateString(b byte) string { return stateStrings[b] }
