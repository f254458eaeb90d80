package spool

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sysmon/sysmon/pkg/wire"
)

var _ Outbox = (*Disk)(nil)

// logBuf collects a spool's log lines and echoes them to the test log.
type logBuf struct {
	t  testing.TB
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) count(substr string) int { return strings.Count(l.String(), substr) }

func newLog(t testing.TB) (*logBuf, *slog.Logger) {
	l := &logBuf{t: t}
	return l, slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fakeClock is a settable clock safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// testSample is a realistic sample: host-level data and per-process detail.
func testSample(ts time.Time, procs int) wire.Sample {
	s := wire.Sample{
		Time:      ts,
		Host:      &wire.Host{Load1: 1.25, Load5: 0.5, CPUUser: 12.5, CPUIdle: 80, ProcsTotal: 321, ProcsRunning: 3},
		Memory:    &wire.Memory{Total: 16 << 30, Free: 3 << 30, Available: 9 << 30},
		ProcsSeen: 321,
		Status:    &wire.NodeStatus{Data: "ok"},
		Events:    []wire.Event{{Time: ts, Kind: "suspect_rss", Subject: "1234", Detail: "rss over bound"}},
	}
	for i := range procs {
		s.Procs = append(s.Procs, wire.Proc{
			PID: int32(1000 + i), StartTime: uint64(5000 + i), Comm: fmt.Sprintf("worker-%d", i),
			Cmdline: fmt.Sprintf("/usr/bin/worker --id %d --config /etc/worker/%d.conf", i, i),
			State:   "S", User: "daemon", App: "worker.service", CPUPct: float64(i), RSS: uint64(i) << 20, FDs: 12,
		})
	}
	s.Apps = []wire.AppTop{{Group: "cgroup", Application: "worker.service", Unit: "cpu", Value: 42}}
	s.Funs = []wire.FunTop{{Fun: "worker", FunType: "command", NumProcesses: uint32(procs)}}
	return s
}

func testPayload(tb testing.TB, seq uint64, ts time.Time, procs int) []byte {
	tb.Helper()
	p, err := wire.Binary.Append(nil, &wire.Batch{Seq: seq, Samples: []wire.Sample{testSample(ts, procs)}})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func decodeBatch(tb testing.TB, p []byte) *wire.Batch {
	tb.Helper()
	m, err := wire.Binary.Decode(p)
	if err != nil {
		tb.Fatalf("decode spooled batch: %v", err)
	}
	return m.(*wire.Batch)
}

type spoolT struct {
	*Disk
	tb    testing.TB
	clock *fakeClock
	log   *logBuf
}

func openT(tb testing.TB, dir string, o DiskOptions) *spoolT {
	tb.Helper()
	s := &spoolT{tb: tb, clock: &fakeClock{t: t0}}
	if o.Now == nil {
		o.Now = s.clock.Now
	}
	s.log, o.Logger = newLog(tb)
	d, err := OpenDisk(dir, o)
	if err != nil {
		tb.Fatal(err)
	}
	s.Disk = d
	tb.Cleanup(func() { d.Close() })
	return s
}

// add appends the next batch, one sample taken now with procs processes.
func (s *spoolT) add(procs int) uint64 {
	s.tb.Helper()
	seq := s.LastSeq() + 1
	if err := s.Append(seq, testPayload(s.tb, seq, s.clock.Now(), procs)); err != nil {
		s.tb.Fatal(err)
	}
	return seq
}

func (s *spoolT) pending(after uint64) []Record {
	s.tb.Helper()
	recs, err := s.Pending(after, 1<<20)
	if err != nil {
		s.tb.Fatal(err)
	}
	return recs
}

// crash drops the spool without Close's final state write.
func (s *spoolT) crash() {
	s.mu.Lock()
	s.closed = true
	s.closeFiles()
	s.mu.Unlock()
}

func seqs(recs []Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func segFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestDiskRestartKeepsIdentityLastSeqAndUnacked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := openT(t, dir, DiskOptions{})
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool dir mode: %v %v", fi.Mode(), err)
	}
	id := s.SpoolID()
	if len(id) != 32 {
		t.Fatalf("spool id %q", id)
	}
	want := map[uint64][]byte{}
	for range 10 {
		seq := s.add(5)
		r := s.pending(seq - 1)
		want[seq] = r[0].Payload
	}
	if err := s.Ack(4); err != nil {
		t.Fatal(err)
	}
	s.crash() // no Close: what was appended must be there anyway

	s = openT(t, dir, DiskOptions{})
	if s.SpoolID() != id {
		t.Fatalf("spool id changed across restart: %q, want %q", s.SpoolID(), id)
	}
	if s.LastSeq() != 10 {
		t.Fatalf("LastSeq after restart = %d, want 10", s.LastSeq())
	}
	recs := s.pending(0)
	// The ack point may lag after a crash (resends are deduped downstream),
	// but nothing unacknowledged may be missing.
	if got := seqs(recs); len(got) < 6 || got[len(got)-1] != 10 || got[len(got)-6] != 5 {
		t.Fatalf("pending after crash = %v, want ...5..10", got)
	}
	for _, r := range recs {
		if !bytes.Equal(r.Payload, want[r.Seq]) {
			t.Fatalf("payload of seq %d changed across restart", r.Seq)
		}
		if !r.Time.Equal(t0) {
			t.Fatalf("time of seq %d = %v", r.Seq, r.Time)
		}
	}
	if err := s.Ack(10); err != nil {
		t.Fatal(err)
	}
	if f := segFiles(t, dir); len(f) != 0 {
		t.Fatalf("segments left after everything was acknowledged: %v", f)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir, DiskOptions{})
	if s.LastSeq() != 10 || s.SpoolID() != id {
		t.Fatalf("after full ack and restart: LastSeq %d id %q", s.LastSeq(), s.SpoolID())
	}
	if recs := s.pending(0); len(recs) != 0 {
		t.Fatalf("pending after full ack: %v", seqs(recs))
	}
	if seq := s.add(1); seq != 11 {
		t.Fatalf("next seq %d", seq)
	}
	if err := s.Append(13, testPayload(t, 13, t0, 0)); err == nil {
		t.Fatal("append with a gap succeeded")
	}
}

func TestDiskOneProducerPerSpool(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, DiskOptions{})
	_, err := OpenDisk(dir, DiskOptions{})
	if err == nil || !strings.Contains(err.Error(), "in use by another producer") || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
		t.Fatalf("second OpenDisk: %v", err)
	}
}

func TestDiskAckDeletesSegments(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, DiskOptions{})
	s.segMax = 8 << 10
	for range 60 {
		s.add(10)
	}
	n := len(segFiles(t, dir))
	if n < 5 {
		t.Fatalf("%d segments, want several", n)
	}
	st := s.Stats()
	if st.Records != 60 || st.Segments != n || st.Bytes == 0 || !st.Oldest.Equal(t0) {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Ack(30); err != nil {
		t.Fatal(err)
	}
	files := segFiles(t, dir)
	if len(files) >= n || len(files) == 0 {
		t.Fatalf("after ack 30: %d of %d segments left", len(files), n)
	}
	if got := seqs(s.pending(0)); fmt.Sprint(got) != fmt.Sprint(span(31, 60)) {
		t.Fatalf("pending after ack 30 = %v", got)
	}
	if got := seqs(s.pending(40)); len(got) != 20 || got[0] != 41 {
		t.Fatalf("pending after 40 = %v", got)
	}
	if got, _ := s.Pending(0, 3); fmt.Sprint(seqs(got)) != "[31 32 33]" {
		t.Fatalf("pending max 3 = %v", seqs(got))
	}
	if err := s.Ack(60); err != nil {
		t.Fatal(err)
	}
	if f := segFiles(t, dir); len(f) != 0 {
		t.Fatalf("segments after full ack: %v", f)
	}
	s.add(1) // appending after the active segment was deleted starts a new one
	if got := seqs(s.pending(0)); fmt.Sprint(got) != "[61]" {
		t.Fatalf("pending = %v", got)
	}
}

// TestDiskAckBeyondLastSeq: a consumer holding more than the spool (batches
// sent from memory before a crash) moves LastSeq on, so no seq is reused.
func TestDiskAckBeyondLastSeq(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, DiskOptions{})
	s.add(1)
	if err := s.Ack(7); err != nil {
		t.Fatal(err)
	}
	if s.LastSeq() != 7 {
		t.Fatalf("LastSeq %d", s.LastSeq())
	}
	seq, err := s.AppendNext(func(seq uint64) ([]byte, error) { return testPayload(t, seq, t0, 1), nil })
	if err != nil || seq != 8 {
		t.Fatalf("AppendNext = %d, %v", seq, err)
	}
	s.Close()
	s = openT(t, dir, DiskOptions{})
	if s.LastSeq() != 8 {
		t.Fatalf("LastSeq after restart %d", s.LastSeq())
	}
}

func TestDiskTornTail(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, DiskOptions{})
	for range 5 {
		s.add(3)
	}
	s.crash()
	files := segFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("segments %v", files)
	}
	fi, _ := os.Stat(files[0])
	// Cut the last record in the middle, as a crash during write does.
	if err := os.Truncate(files[0], fi.Size()-40); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, DiskOptions{})
	if got := seqs(s.pending(0)); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("pending after torn tail = %v", got)
	}
	log := s.log.String()
	if !strings.Contains(log, "damaged") || !strings.Contains(log, filepath.Base(files[0])) || !strings.Contains(log, "tail=true") {
		t.Fatalf("torn tail not reported with file and offset:\n%s", log)
	}
	if !strings.Contains(log, "offset=") {
		t.Fatalf("no offset in report:\n%s", log)
	}
	// The appended seq 5 is gone, but its number is not reused: the
	// consumer may hold it.
	if s.LastSeq() != 5 {
		t.Fatalf("LastSeq = %d, want 5", s.LastSeq())
	}
	s.add(1)
	s.Close()
	s = openT(t, dir, DiskOptions{})
	if got := seqs(s.pending(0)); fmt.Sprint(got) != "[1 2 3 4 6]" {
		t.Fatalf("pending after append past a torn tail = %v", got)
	}
	if strings.Contains(s.log.String(), "damaged") {
		t.Fatalf("torn tail reported again after it was cut:\n%s", s.log.String())
	}
}

func TestDiskCorruptRecordInTheMiddle(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, DiskOptions{})
	var offs []int64
	for range 6 {
		s.add(3)
	}
	for _, e := range s.segs[0].ents {
		offs = append(offs, e.off)
	}
	s.Close()
	path := segFiles(t, dir)[0]
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// One flipped payload byte in record 3, one destroyed length in record 5.
	data[offs[2]+recHeaderLen+7] ^= 0x20
	data[offs[4]+5] = 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, DiskOptions{})
	if got := seqs(s.pending(0)); fmt.Sprint(got) != "[1 2 4 6]" {
		t.Fatalf("pending = %v, want [1 2 4 6]", got)
	}
	log := s.log.String()
	for _, want := range []string{fmt.Sprintf("offset=%d", offs[2]), fmt.Sprintf("offset=%d", offs[4]), "checksum mismatch", "tail=false"} {
		if !strings.Contains(log, want) {
			t.Fatalf("report lacks %q:\n%s", want, log)
		}
	}
	if s.LastSeq() != 6 {
		t.Fatalf("LastSeq %d", s.LastSeq())
	}
}

func TestDiskUnreadableSegmentMovedAside(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, DiskOptions{})
	s.add(1)
	s.Close()
	path := segFiles(t, dir)[0]
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, DiskOptions{})
	if len(s.pending(0)) != 0 || s.LastSeq() != 1 {
		t.Fatalf("pending %v last %d", seqs(s.pending(0)), s.LastSeq())
	}
	if _, err := os.Stat(path + ".corrupt"); err != nil {
		t.Fatalf("unreadable segment not kept aside: %v", err)
	}
}

var (
	shedProcsRE = regexp.MustCompile(`^shed per-process detail of (\d+) samples from (\S+) to (\S+) \((.*)\)$`)
	droppedRE   = regexp.MustCompile(`^dropped (\d+) batches from (\S+) to (\S+) \((.*)\)$`)
)

// shedEvents returns the spool_shed events of recs by subject.
func shedEvents(tb testing.TB, recs []Record) map[string][]wire.Event {
	out := map[string][]wire.Event{}
	for _, r := range recs {
		b := decodeBatch(tb, r.Payload)
		if b.Seq != r.Seq {
			tb.Fatalf("record %d holds batch %d", r.Seq, b.Seq)
		}
		for _, s := range b.Samples {
			for _, e := range s.Events {
				if e.Kind == EventKindShed {
					out[e.Subject] = append(out[e.Subject], e)
				}
			}
		}
	}
	return out
}

func TestDiskBoundByAgeShedsDetailKeepsHost(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, DiskOptions{MaxAge: time.Hour})
	for range 10 {
		s.add(20)
		s.clock.Add(time.Minute)
	}
	s.clock.Add(time.Hour) // the first 10 are now over an hour old
	for range 3 {
		s.add(20)
	}
	recs := s.pending(0)
	if fmt.Sprint(seqs(recs)) != fmt.Sprint(span(1, 13)) {
		t.Fatalf("pending %v", seqs(recs))
	}
	for _, r := range recs {
		b := decodeBatch(t, r.Payload)
		sm := b.Samples[0]
		if sm.Host == nil || sm.Host.ProcsTotal != 321 || sm.Memory == nil || sm.Memory.Total != 16<<30 || sm.Status == nil {
			t.Fatalf("seq %d lost host-level data: %+v", r.Seq, sm)
		}
		if sm.Events[0].Kind != "suspect_rss" {
			t.Fatalf("seq %d lost its own events: %+v", r.Seq, sm.Events)
		}
		old := r.Seq <= 10
		if old != (len(sm.Procs) == 0 && len(sm.Apps) == 0 && len(sm.Funs) == 0) {
			t.Fatalf("seq %d: %d procs %d apps %d funs", r.Seq, len(sm.Procs), len(sm.Apps), len(sm.Funs))
		}
	}
	ev := shedEvents(t, recs)
	if len(ev[ShedSubjectProcs]) != 1 || len(ev[ShedSubjectBatch]) != 0 {
		t.Fatalf("shed events %+v", ev)
	}
	m := shedProcsRE.FindStringSubmatch(ev[ShedSubjectProcs][0].Detail)
	if m == nil || m[1] != "10" || m[2] != stamp(t0) || m[3] != stamp(t0.Add(9*time.Minute)) || m[4] != "spool older than MaxAge 1h0m0s" {
		t.Fatalf("shed event detail %q", ev[ShedSubjectProcs][0].Detail)
	}
	if st := s.Stats(); st.ShedSamples != 10 || st.DroppedBatches != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Shedding is not repeated on later appends.
	s.add(20)
	if ev := shedEvents(t, s.pending(0)); len(ev[ShedSubjectProcs]) != 1 {
		t.Fatalf("shed again: %+v", ev)
	}
}

func TestDiskBoundByBytesShedsThenDrops(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 48 << 10
	s := openT(t, dir, DiskOptions{MaxBytes: maxBytes})
	if s.segMax != 4<<10 {
		t.Fatalf("segMax %d", s.segMax)
	}
	full := len(testPayload(t, 1, t0, 20))
	hostOnly := len(testPayload(t, 1, t0, 0))
	t.Logf("batch %d bytes, %d without per-process detail", full, hostOnly)

	// Phase 1: over the bound, detail goes; nothing is dropped.
	n := int(maxBytes/uint64(full)) + 10
	for range n {
		s.add(20)
		s.clock.Add(2 * time.Second)
	}
	st := s.Stats()
	t.Logf("after %d batches: %+v", n, st)
	if st.Bytes > maxBytes || st.ShedSamples == 0 || st.DroppedBatches != 0 || st.Records != n {
		t.Fatalf("phase 1 stats %+v", st)
	}
	recs := s.pending(0)
	ev := shedEvents(t, recs)
	if len(ev[ShedSubjectProcs]) == 0 || len(ev[ShedSubjectBatch]) != 0 {
		t.Fatalf("phase 1 events %+v", ev)
	}
	var shedTotal int
	for _, e := range ev[ShedSubjectProcs] {
		m := shedProcsRE.FindStringSubmatch(e.Detail)
		if m == nil || m[4] != "spool over MaxBytes 49152" {
			t.Fatalf("shed event detail %q", e.Detail)
		}
		var k int
		fmt.Sscan(m[1], &k)
		shedTotal += k
	}
	if uint64(shedTotal) != st.ShedSamples {
		t.Fatalf("events account for %d shed samples, stats %d", shedTotal, st.ShedSamples)
	}
	if b := decodeBatch(t, recs[0].Payload); len(b.Samples[0].Procs) != 0 || b.Samples[0].Host == nil {
		t.Fatalf("oldest batch kept detail or lost host: %+v", b.Samples[0])
	}
	if b := decodeBatch(t, recs[len(recs)-1].Payload); len(b.Samples[0].Procs) != 20 {
		t.Fatalf("newest batch lost its detail (%d procs) while older ones could go first", len(b.Samples[0].Procs))
	}

	// Phase 2: host-only batches alone fill the bound: whole oldest batches go.
	m := int(maxBytes/uint64(hostOnly)) + 100
	for range m {
		s.add(20)
		s.clock.Add(2 * time.Second)
	}
	st = s.Stats()
	t.Logf("after %d more: %+v", m, st)
	if st.Bytes > maxBytes || st.DroppedBatches == 0 {
		t.Fatalf("phase 2 stats %+v", st)
	}
	recs = s.pending(0)
	if uint64(len(recs))+st.DroppedBatches != uint64(n+m) || recs[len(recs)-1].Seq != uint64(n+m) {
		t.Fatalf("%d pending + %d dropped != %d appended", len(recs), st.DroppedBatches, n+m)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq != recs[i-1].Seq+1 {
			t.Fatalf("gap inside the remaining batches at %d", recs[i].Seq)
		}
	}
	ev = shedEvents(t, recs)
	drops := ev[ShedSubjectBatch]
	if len(drops) == 0 {
		t.Fatal("no event for the dropped batches")
	}
	// Every drop is accounted for, carried into the oldest remaining batch.
	first := shedEvents(t, recs[:1])[ShedSubjectBatch]
	var dropTotal uint64
	for _, e := range first {
		mm := droppedRE.FindStringSubmatch(e.Detail)
		if mm == nil || mm[4] != "spool over MaxBytes 49152" {
			t.Fatalf("drop event detail %q", e.Detail)
		}
		var k uint64
		fmt.Sscan(mm[1], &k)
		dropTotal += k
	}
	if dropTotal != st.DroppedBatches {
		t.Fatalf("drop events in the oldest batch account for %d, stats %d: %+v", dropTotal, st.DroppedBatches, first)
	}
	if mm := droppedRE.FindStringSubmatch(first[0].Detail); mm[2] != stamp(t0) {
		t.Fatalf("first drop does not start at the first batch: %q", first[0].Detail)
	}
	if !strings.Contains(s.log.String(), "dropped the oldest batches") {
		t.Fatal("drop not logged")
	}
	// Restart: bounds hold and the remaining stream is intact.
	s.Close()
	s = openT(t, dir, DiskOptions{MaxBytes: maxBytes})
	if got := seqs(s.pending(0)); fmt.Sprint(got) != fmt.Sprint(seqs(recs)) {
		t.Fatalf("after restart pending %d records, want %d", len(got), len(recs))
	}
}

func TestDiskStateAndIDDamage(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, DiskOptions{})
	for range 5 {
		s.add(1)
	}
	s.Ack(2)
	id := s.SpoolID()
	s.Close()

	// A torn state slot: the other slot (or the segments) still give LastSeq.
	state := filepath.Join(dir, stateFile)
	if err := os.WriteFile(state, bytes.Repeat([]byte{0xa5}, 2*stateSlotLen), 0o600); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, DiskOptions{})
	if s.LastSeq() != 5 || s.SpoolID() != id {
		t.Fatalf("after state damage: LastSeq %d id %q", s.LastSeq(), s.SpoolID())
	}
	// The ack point is lost: batches 1 and 2 are offered again, and the
	// consumer skips them as duplicates.
	if got := seqs(s.pending(0)); fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("pending %v", got)
	}
	s.Close()

	if err := os.WriteFile(filepath.Join(dir, idFile), []byte("not an id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenDisk(dir, DiskOptions{})
	if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), "move the spool directory aside") {
		t.Fatalf("corrupt spool id: %v", err)
	}
	// The failed open released the lock.
	os.Remove(filepath.Join(dir, idFile))
	s = openT(t, dir, DiskOptions{})
	if s.SpoolID() == id {
		t.Fatal("a missing id was not replaced by a new stream identity")
	}

	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o600)
	if _, err := OpenDisk(notDir, DiskOptions{}); err == nil || !strings.Contains(err.Error(), notDir) {
		t.Fatalf("spool on a file: %v", err)
	}
}

// TestDiskSmallerBoundOnRestart: lowering PRODUCER_SPOOL_MAX_BYTES applies
// at open, and the earlier drop events travel with the stream.
func TestDiskSmallerBoundOnRestart(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, DiskOptions{MaxBytes: 32 << 10})
	for range 250 {
		s.add(20)
		s.clock.Add(2 * time.Second)
	}
	before := s.Stats()
	if before.DroppedBatches == 0 {
		t.Fatalf("nothing dropped: %+v", before)
	}
	s.Close()
	s = openT(t, dir, DiskOptions{MaxBytes: 8 << 10})
	after := s.Stats()
	if after.Bytes > 8<<10 || after.DroppedBatches == 0 || after.LastSeq != 250 {
		t.Fatalf("after reopening with a smaller bound: %+v", after)
	}
	recs := s.pending(0)
	var total uint64
	drops := shedEvents(t, recs[:1])[ShedSubjectBatch]
	if len(drops) != 2 {
		// One merged event per cause (the two bounds), not one per round.
		t.Fatalf("%d drop events in the oldest batch: %+v", len(drops), drops)
	}
	for _, e := range drops {
		m := droppedRE.FindStringSubmatch(e.Detail)
		var k uint64
		fmt.Sscan(m[1], &k)
		total += k
	}
	if total != before.DroppedBatches+after.DroppedBatches || uint64(len(recs))+total != 250 {
		t.Fatalf("drop events account for %d batches, dropped %d+%d, %d left", total, before.DroppedBatches, after.DroppedBatches, len(recs))
	}
}

// TestDiskDamageWhileRunning: records damaged or removed behind the spool's
// back are reported once and skipped; the sender is never stalled.
func TestDiskDamageWhileRunning(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, DiskOptions{})
	s.segMax = 4 << 10
	for range 12 {
		s.add(10)
	}
	files := segFiles(t, dir)
	if len(files) < 3 {
		t.Fatalf("segments %v", files)
	}
	// Flip a payload byte of the second record of the first segment.
	e := s.segs[0].ents[1]
	f, err := os.OpenFile(files[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, e.off+recHeaderLen+3)
	b[0] ^= 0x40
	f.WriteAt(b, e.off+recHeaderLen+3)
	f.Close()
	// Remove the second segment.
	lost := s.segs[1].ents
	os.Remove(files[1])

	want := []uint64{}
	for seq := uint64(1); seq <= 12; seq++ {
		gone := seq == e.seq
		for _, l := range lost {
			gone = gone || l.seq == seq
		}
		if !gone {
			want = append(want, seq)
		}
	}
	for range 2 {
		if got := seqs(s.pending(0)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("pending %v, want %v", got, want)
		}
	}
	if n := s.log.count("damaged since it was written"); n != 1 {
		t.Fatalf("damaged record reported %d times", n)
	}
	if n := s.log.count("gone or truncated"); n != 1 {
		t.Fatalf("missing segment reported %d times", n)
	}
	if err := s.Ack(12); err != nil {
		t.Fatal(err)
	}
	if f := segFiles(t, dir); len(f) != 0 {
		t.Fatalf("segments left %v", f)
	}
}
