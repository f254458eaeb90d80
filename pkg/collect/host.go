//go:build linux

package collect

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/procfs"

	"github.com/sysmon/sysmon/pkg/wire"
)

// readHost reads CPU modes (/proc/stat), load (/proc/loadavg) and PSI
// (/proc/pressure/*). CPU percentages are over the time since the previous
// call and zero on the first; a counter that went backwards (a CPU taken
// offline) restarts the series instead of producing a negative figure.
func (c *Collector) readHost() (*wire.Host, error) {
	st, err := c.fs.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s/stat: %w", c.opts.ProcRoot, err)
	}
	h := &wire.Host{
		ProcsRunning: uint32(st.ProcessesRunning),
		ProcsBlocked: uint32(st.ProcessesBlocked),
	}
	cur := st.CPUTotal
	if prev := c.prevCPU; prev != nil {
		d := procfs.CPUStat{
			User:    cur.User - prev.User,
			Nice:    cur.Nice - prev.Nice,
			System:  cur.System - prev.System,
			Idle:    cur.Idle - prev.Idle,
			Iowait:  cur.Iowait - prev.Iowait,
			IRQ:     cur.IRQ - prev.IRQ,
			SoftIRQ: cur.SoftIRQ - prev.SoftIRQ,
			Steal:   cur.Steal - prev.Steal,
		}
		// Guest time is already part of user time; nice is folded into
		// user and irq/softirq into system so the five modes of the host
		// table add up to 100.
		user := d.User + d.Nice
		system := d.System + d.IRQ + d.SoftIRQ
		total := user + system + d.Idle + d.Iowait + d.Steal
		c.hostBusy = 0
		if total > 0 && user >= 0 && system >= 0 && d.Idle >= 0 && d.Iowait >= 0 && d.Steal >= 0 {
			c.hostBusy = 100 * (user + system) / total * float64(max(len(st.CPU), 1))
			h.CPUUser = 100 * user / total
			h.CPUSystem = 100 * system / total
			h.CPUIdle = 100 * d.Idle / total
			h.CPUIOWait = 100 * d.Iowait / total
			h.CPUSteal = 100 * d.Steal / total
		}
	}
	c.prevCPU = &cur

	if la, err := c.fs.LoadAvg(); err == nil {
		h.Load1, h.Load5, h.Load15 = la.Load1, la.Load5, la.Load15
	} else {
		c.log.Warn("read loadavg", "err", err)
	}
	h.Pressure = c.readPressure()
	return h, nil
}

// readPressure returns PSI avg10 figures, or nil when the kernel has none
// (no /proc/pressure, or PSI disabled: reading then fails with
// EOPNOTSUPP). Absent data is not an error.
func (c *Collector) readPressure() *wire.Pressure {
	var p wire.Pressure
	found := false
	for _, r := range []struct {
		name       string
		some, full *float64
	}{
		{"cpu", &p.CPUSome, nil},
		{"memory", &p.MemorySome, &p.MemoryFull},
		{"io", &p.IOSome, &p.IOFull},
	} {
		ps, err := c.fs.PSIStatsForResource(r.name)
		if err != nil {
			continue
		}
		found = true
		if ps.Some != nil {
			*r.some = ps.Some.Avg10
		}
		if r.full != nil && ps.Full != nil {
			*r.full = ps.Full.Avg10
		}
	}
	if !found {
		return nil
	}
	return &p
}

// readMemory reads /proc/meminfo in bytes. A field the kernel does not
// report (MemAvailable before 3.14) reads as 0.
func (c *Collector) readMemory() (*wire.Memory, error) {
	mi, err := c.fs.Meminfo()
	if err != nil {
		return nil, fmt.Errorf("read %s/meminfo: %w", c.opts.ProcRoot, err)
	}
	if mi.MemTotalBytes == nil {
		return nil, fmt.Errorf("read %s/meminfo: no MemTotal", c.opts.ProcRoot)
	}
	v := func(p *uint64) uint64 {
		if p == nil {
			return 0
		}
		return *p
	}
	return &wire.Memory{
		Total:     v(mi.MemTotalBytes),
		Free:      v(mi.MemFreeBytes),
		Available: v(mi.MemAvailableBytes),
		Buffers:   v(mi.BuffersBytes),
		Cached:    v(mi.CachedBytes),
		SwapTotal: v(mi.SwapTotalBytes),
		SwapFree:  v(mi.SwapFreeBytes),
	}, nil
}

// oomEvents raises one oom_kill event per sample in which the oom_kill
// counter of /proc/vmstat rose. The first sample only takes the baseline:
// kills before the producer started are history, not news.
func (c *Collector) oomEvents(now time.Time, s *wire.Sample) {
	b, err := os.ReadFile(filepath.Join(c.opts.ProcRoot, "vmstat"))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("read vmstat", "err", err)
		}
		return
	}
	i := bytes.Index(b, []byte("\noom_kill "))
	if i < 0 {
		return // kernel before 4.13
	}
	line := b[i+len("\noom_kill "):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	n, err := parseUint(line)
	if err != nil {
		return
	}
	if c.haveOOM && n > c.prevOOM {
		s.Events = append(s.Events, wire.Event{
			Time:    now.UTC(),
			Kind:    "oom_kill",
			Subject: c.hostname,
			Detail:  fmt.Sprintf("%d process(es) killed by the OOM killer since the previous sample (%d since boot)", n-c.prevOOM, n),
		})
	}
	c.prevOOM, c.haveOOM = n, true
}
