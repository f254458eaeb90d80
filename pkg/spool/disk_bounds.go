package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/sysmon/sysmon/pkg/wire"
)

// Event kinds and subjects the spool writes into the stream when a bound
// costs data, so the loss shows up in the consumer's events table.
const (
	EventKindShed    = "spool_shed"
	ShedSubjectProcs = "procs"   // per-process detail (procs, app_top, fun_top) removed, host data kept
	ShedSubjectBatch = "batches" // whole batches dropped
)

// dropNote accumulates dropped batches for one event.
type dropNote struct {
	batches int
	t1, t2  time.Time
	why     string
}

func (n *dropNote) add(t time.Time) {
	if n.batches == 0 || t.Before(n.t1) {
		n.t1 = t
	}
	if n.batches == 0 || t.After(n.t2) {
		n.t2 = t
	}
	n.batches++
}

func (n *dropNote) merge(o dropNote, why string) {
	if o.batches == 0 {
		return
	}
	if n.batches == 0 || o.t1.Before(n.t1) {
		n.t1 = o.t1
	}
	if n.batches == 0 || o.t2.After(n.t2) {
		n.t2 = o.t2
	}
	n.batches += o.batches
	n.why = why
}

// logRound logs what one enforcement round cost, one line per kind of loss.
func (d *Disk) logRound() {
	if n := d.roundShed; n.batches > 0 {
		d.log.Warn("spool bound reached: shed per-process detail of the oldest samples",
			"samples", n.batches, "from", stamp(n.t1), "to", stamp(n.t2), "reason", n.why)
	}
	if n := d.roundDrop; n.batches > 0 {
		d.log.Warn("spool bound reached: dropped the oldest batches",
			"batches", n.batches, "from", stamp(n.t1), "to", stamp(n.t2), "reason", n.why)
	}
}

func (n dropNote) event(now time.Time, why string) wire.Event {
	return wire.Event{
		Time:    now,
		Kind:    EventKindShed,
		Subject: ShedSubjectBatch,
		Detail:  fmt.Sprintf("dropped %d batches from %s to %s (%s)", n.batches, stamp(n.t1), stamp(n.t2), why),
	}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// enforceBounds applies MaxAge and MaxBytes to the segments on disk. Older
// than MaxAge, batches lose their per-process detail. Over MaxBytes, the
// detail of the oldest batches goes first, then whole oldest segments; the
// newest segment is never dropped. Each step is recorded as an event in the
// stream.
func (d *Disk) enforceBounds() {
	d.roundShed, d.roundDrop = dropNote{}, dropNote{}
	defer d.logRound()
	cutoff := d.o.Now().Add(-d.o.MaxAge)
	old := func(e entry) bool { return e.t().Before(cutoff) }
	ageWhy := fmt.Sprintf("spool older than MaxAge %s", d.o.MaxAge)
	for _, seg := range append([]*segment(nil), d.segs...) {
		if !d.hasUnshed(seg, old) {
			if e, ok := d.firstUnacked(seg); ok && !old(e) {
				break // segments are in time order: nothing later is old
			}
			continue
		}
		if !d.shedSegment(seg, old, ageWhy) {
			return
		}
	}
	if d.diskBytes() <= d.o.MaxBytes {
		d.boundWarn = ""
		return
	}
	// Once over, go down to 90% so that the work (segment rewrites, log
	// lines, events) happens once per tenth of the bound rather than on
	// every append.
	low := d.o.MaxBytes - d.o.MaxBytes/10
	all := func(entry) bool { return true }
	bytesWhy := fmt.Sprintf("spool over MaxBytes %d", d.o.MaxBytes)
	for d.diskBytes() > low {
		var target *segment
		for _, seg := range d.segs {
			if d.hasUnshed(seg, all) {
				target = seg
				break
			}
		}
		if target != nil {
			if !d.shedSegment(target, all, bytesWhy) {
				return
			}
			continue
		}
		d.dropOldest(low, bytesWhy)
		return
	}
	d.boundWarn = ""
}

func (d *Disk) diskBytes() uint64 {
	var n uint64
	for _, seg := range d.segs {
		n += uint64(seg.size)
	}
	return n
}

func (d *Disk) firstUnacked(seg *segment) (entry, bool) {
	for _, e := range seg.ents {
		if e.seq > d.acked {
			return e, true
		}
	}
	return entry{}, false
}

func (d *Disk) hasUnshed(seg *segment, eligible func(entry) bool) bool {
	if seg.unshed == 0 {
		return false
	}
	for _, e := range seg.ents {
		if e.seq > d.acked && e.flags&flagShed == 0 && eligible(e) {
			return true
		}
	}
	return false
}

// boundFailed logs a failure to enforce a bound once per distinct failure.
func (d *Disk) boundFailed(msg string, err error) {
	if s := msg + err.Error(); s != d.boundWarn {
		d.boundWarn = s
		d.log.Error(msg, "err", err)
	}
}

// shedSegment removes per-process detail (Procs, Apps, Funs) from the
// eligible unacknowledged batches of seg, keeping their seq, host, memory,
// status and events, and adds one event saying what was shed to the first
// batch it changed. It reports whether the segment could be rewritten.
func (d *Disk) shedSegment(seg *segment, eligible func(entry) bool, why string) bool {
	data, err := d.readSegmentFile(seg)
	if err != nil {
		d.boundFailed("cannot shed spool detail", err)
		return false
	}
	type change struct {
		batch *wire.Batch
		stale bool
	}
	changes := map[int]*change{}
	var note dropNote // counts samples here, not batches
	first := -1
	for i, e := range seg.ents {
		if e.seq <= d.acked || e.flags&flagShed != 0 || !eligible(e) {
			continue
		}
		c := &change{}
		changes[i] = c
		m, err := wire.Binary.Decode(payloadOf(data, e))
		b, ok := m.(*wire.Batch)
		if err != nil || !ok {
			// Kept as is: better an unshed batch than a lost one.
			d.log.Error("spool batch undecodable; not shedding it", "file", filepath.Join(d.dir, seg.name), "seq", e.seq, "err", err)
			continue
		}
		for j := range b.Samples {
			s := &b.Samples[j]
			if len(s.Procs)+len(s.Apps)+len(s.Funs) == 0 {
				continue
			}
			s.Procs, s.Apps, s.Funs = nil, nil, nil
			note.add(s.Time)
			c.batch, c.stale = b, true
			if first < 0 {
				first = i
			}
		}
	}
	if first >= 0 {
		s := &changes[first].batch.Samples[0]
		s.Events = append(s.Events, wire.Event{
			Time:    d.o.Now(),
			Kind:    EventKindShed,
			Subject: ShedSubjectProcs,
			Detail:  fmt.Sprintf("shed per-process detail of %d samples from %s to %s (%s)", note.batches, stamp(note.t1), stamp(note.t2), why),
		})
	}
	err = d.rewriteSegment(seg, data, func(i int, e entry, p []byte) ([]byte, uint32, error) {
		c, ok := changes[i]
		if !ok {
			return p, e.flags, nil
		}
		if c.stale {
			np, err := wire.Binary.Append(nil, c.batch)
			if err != nil {
				return nil, 0, fmt.Errorf("re-encode batch %d: %w", e.seq, err)
			}
			p = np
		}
		return p, e.flags | flagShed, nil
	})
	if err != nil {
		d.boundFailed("cannot shed spool detail", err)
		return false
	}
	if note.batches > 0 {
		d.shed += uint64(note.batches)
		d.roundShed.merge(note, why)
	}
	return true
}

// dropOldest deletes the oldest segments, never the newest, until the spool
// is down to low bytes, and records what they held as one event in the
// oldest remaining batch, carrying along the earlier such events that the
// deleted batches held.
func (d *Disk) dropOldest(low uint64, why string) {
	var note dropNote
	var carried []wire.Event
	for len(d.segs) >= 2 && d.diskBytes() > low {
		seg := d.segs[0]
		carried = append(carried, d.dropEvents(seg)...)
		path := filepath.Join(d.dir, seg.name)
		if err := os.Remove(path); err != nil {
			d.boundFailed("cannot drop the oldest spool segment", err)
			break
		}
		for _, e := range seg.ents {
			if e.seq > d.acked {
				note.add(e.t())
			}
		}
		d.segs = d.segs[1:]
	}
	if note.batches == 0 {
		return
	}
	d.dropped += uint64(note.batches)
	d.roundDrop.merge(note, why)
	d.noteInStream(mergeDropEvents(append(carried, note.event(d.o.Now(), why))))
}

var dropDetailRE = regexp.MustCompile(`^dropped (\d+) batches from (\S+) to (\S+) \((.*)\)$`)

// mergeDropEvents folds batch-drop events with the same cause into one, so
// that the events carried from dropped batches to the oldest remaining one
// stay a handful however long the outage. Events it did not write are kept
// as they are.
func mergeDropEvents(evs []wire.Event) []wire.Event {
	type acc struct {
		at   int
		note dropNote
		last time.Time
	}
	var out []wire.Event
	byWhy := map[string]*acc{}
	for _, ev := range evs {
		m := dropDetailRE.FindStringSubmatch(ev.Detail)
		var n int
		var t1, t2 time.Time
		var err error
		if m != nil {
			n, err = strconv.Atoi(m[1])
			if err == nil {
				t1, err = time.Parse(time.RFC3339, m[2])
			}
			if err == nil {
				t2, err = time.Parse(time.RFC3339, m[3])
			}
		}
		if ev.Kind != EventKindShed || ev.Subject != ShedSubjectBatch || m == nil || err != nil {
			out = append(out, ev)
			continue
		}
		a := byWhy[m[4]]
		if a == nil {
			a = &acc{at: len(out)}
			byWhy[m[4]] = a
			out = append(out, ev)
		}
		a.note.merge(dropNote{batches: n, t1: t1, t2: t2}, m[4])
		if ev.Time.After(a.last) {
			a.last = ev.Time
		}
	}
	for _, a := range byWhy {
		out[a.at] = a.note.event(a.last, a.note.why)
	}
	return out
}

// dropEvents returns the batch-drop events held by the first unacknowledged
// batch of seg, where dropOldest puts them.
func (d *Disk) dropEvents(seg *segment) []wire.Event {
	var carried []wire.Event
	if e, ok := d.firstUnacked(seg); ok {
		if data, err := d.readSegmentFile(seg); err == nil {
			if m, err := wire.Binary.Decode(payloadOf(data, e)); err == nil {
				if b, ok := m.(*wire.Batch); ok {
					for _, s := range b.Samples {
						for _, ev := range s.Events {
							if ev.Kind == EventKindShed && ev.Subject == ShedSubjectBatch {
								carried = append(carried, ev)
							}
						}
					}
				}
			}
		}
	}
	return carried
}

// noteInStream adds evs to the oldest unacknowledged batch, on disk or in
// memory.
func (d *Disk) noteInStream(evs []wire.Event) {
	for _, next := range d.segs {
		e, ok := d.firstUnacked(next)
		if !ok {
			continue
		}
		data, err := d.readSegmentFile(next)
		if err == nil {
			err = d.rewriteSegment(next, data, func(_ int, x entry, p []byte) ([]byte, uint32, error) {
				if x.seq != e.seq {
					return p, x.flags, nil
				}
				np, err := addEvents(p, evs...)
				if err != nil {
					return p, x.flags, fmt.Errorf("record dropped batches in batch %d: %w", x.seq, err)
				}
				return np, x.flags, nil
			})
		}
		if err != nil {
			d.log.Error("cannot record dropped batches in the stream", "err", err, "detail", evs[len(evs)-1].Detail)
		}
		return
	}
	// Nothing unacknowledged left on disk: tell the next batch held in memory.
	if len(d.mem) > 0 {
		if p, err := addEvents(d.mem[0].Payload, evs...); err == nil {
			d.mem[0].Payload = p
			return
		}
	}
	d.log.Error("cannot record dropped batches in the stream: no batch left to carry the event", "detail", evs[len(evs)-1].Detail)
}

// addEvents adds events to the first sample of an encoded batch.
func addEvents(payload []byte, evs ...wire.Event) ([]byte, error) {
	m, err := wire.Binary.Decode(payload)
	if err != nil {
		return nil, err
	}
	b, ok := m.(*wire.Batch)
	if !ok || len(b.Samples) == 0 {
		return nil, fmt.Errorf("not a batch with samples")
	}
	b.Samples[0].Events = append(b.Samples[0].Events, evs...)
	return wire.Binary.Append(nil, b)
}

func payloadOf(data []byte, e entry) []byte {
	return data[e.off+recHeaderLen : e.end()]
}

// readSegmentFile reads seg and checks that its indexed records are intact.
func (d *Disk) readSegmentFile(seg *segment) ([]byte, error) {
	path := filepath.Join(d.dir, seg.name)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spool segment %s: %w", path, err)
	}
	if int64(len(data)) < seg.size {
		return nil, fmt.Errorf("spool segment %s shrank to %d bytes, want %d", path, len(data), seg.size)
	}
	return data[:seg.size], nil
}

// rewriteSegment replaces seg with its unacknowledged records, each passed
// through edit, via a synced temporary file renamed over it. Records whose
// checksum no longer matches are reported and left out.
func (d *Disk) rewriteSegment(seg *segment, data []byte, edit func(i int, e entry, payload []byte) ([]byte, uint32, error)) error {
	path := filepath.Join(d.dir, seg.name)
	buf := append(make([]byte, 0, len(data)), segMagic...)
	var ents []entry
	for i, e := range seg.ents {
		if e.seq <= d.acked {
			continue
		}
		if _, why, _ := parseRecord(data, e.off, 0); why != "" {
			d.log.Error("spool record damaged since it was written; dropping it", "file", path, "offset", e.off, "seq", e.seq, "why", why)
			continue
		}
		p, flags, err := edit(i, e, payloadOf(data, e))
		if err != nil {
			return err
		}
		ne := entry{seq: e.seq, ns: e.ns, off: int64(len(buf)), len: int32(len(p)), flags: flags}
		buf = appendRecord(buf, e.seq, e.t(), flags, p)
		ents = append(ents, ne)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("rewrite spool segment %s: %w", path, err)
	}
	err = d.writeAt(f, buf, 0)
	if err == nil {
		err = d.syncFile(f)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(d.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("rewrite spool segment %s: %w", path, err)
	}
	seg.setEntries(ents)
	seg.size = int64(len(buf))
	if d.active != nil && d.segs[len(d.segs)-1] == seg {
		// Keep appending to the new file.
		d.active.Close()
		d.active = f
		return nil
	}
	f.Close()
	return nil
}
