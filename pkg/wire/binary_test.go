package wire

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// synthBatch builds a batch that exercises every field: processes that stay,
// move, appear and vanish between samples, reused pids, the "other" roll-up,
// negative deltas, large values and floats that need the IEEE 754 form.
func synthBatch(seed uint64, nsamples, nprocs int) *Batch {
	rng := rand.New(rand.NewPCG(seed, 7))
	t0 := time.Date(2026, 12, 3, 16, 0, 0, 123456789, time.UTC)
	b := &Batch{Seq: 42}
	type ident struct {
		pid   int32
		start uint64
		cmd   string
	}
	var live []ident
	for i := range nprocs {
		live = append(live, ident{int32(100 + i*37 + rng.IntN(30)), uint64(1000 + rng.IntN(1e6)), "cmd" + string(rune('a'+i%26))})
	}
	for s := range nsamples {
		smp := Sample{Time: t0.Add(time.Duration(s) * 2 * time.Second), ProcsSeen: uint32(300 + s)}
		if s%3 != 2 {
			smp.Host = &Host{Load1: 0.52, Load5: 1.25, Load15: 3, CPUUser: 12.345, CPUIdle: 80.001,
				ProcsRunning: 3, ProcsTotal: 412, CPUSteal: 1e300}
			if s%2 == 0 {
				smp.Host.Pressure = &Pressure{CPUSome: 0.12, IOFull: 0.5}
			}
			smp.Memory = &Memory{Total: 16 << 30, Free: uint64(s) << 20, Available: 8 << 30, SwapTotal: 0}
		}
		// churn: swap two, replace one
		if s > 0 && len(live) > 3 {
			j := rng.IntN(len(live) - 1)
			live[j], live[j+1] = live[j+1], live[j]
			k := rng.IntN(len(live))
			live[k] = ident{int32(rng.IntN(1 << 22)), uint64(rng.IntN(1 << 30)), "new"}
		}
		for i, id := range live {
			p := Proc{PID: id.pid, StartTime: id.start, Comm: id.cmd, Cmdline: "/usr/bin/" + id.cmd + " --flag",
				State: "S", PPID: 1, User: "root", App: "system.slice/x.service",
				CPUPct: float64(rng.IntN(200000)) / 1000, CPUTimeMs: uint64(s*10 + i), RSS: uint64(rng.IntN(1 << 30)),
				DRSS: int64(rng.IntN(1<<20)) - 1<<19, VSZ: 1 << 40, Threads: uint32(1 + i%5), FDs: int32(i%7) - 1,
				ReadBps: float64(rng.IntN(1 << 20)), WriteBps: 2.5, RunqWaitPct: 0.001, Wchan: []string{"", "ep_poll", "do_wait"}[i%3]}
			if i == 3 {
				p.Cmdline = "bad\xffutf8\xfe" // encoders replace invalid bytes as encoding/json does
			}
			smp.Procs = append(smp.Procs, p)
		}
		if s%4 != 3 {
			smp.Procs = append(smp.Procs, Proc{PID: OtherPID, Comm: "other", CPUPct: 1.5, RSS: 1 << 20})
		} else {
			smp.Procs = nil // a sample without processes breaks the prediction chain
		}
		smp.Apps = []AppTop{{Group: "cgroup", Application: "nginx.service", Unit: "cpu", Value: 12.5},
			{Group: "cgroup", Application: "nginx.service", Unit: "memory", Value: 1 << 52},
			{Group: "user", Application: "root", Unit: "processes", Value: 77}}
		smp.Funs = []FunTop{{Fun: "bash", FunType: "command", NumProcesses: 3}, {Fun: "ep_poll", FunType: "wchan", NumProcesses: 0}}
		if s == 1 {
			smp.Status = &NodeStatus{Data: "ok\nkernel 6.1"}
			smp.Events = []Event{{Time: smp.Time.Add(-time.Second), Kind: "oom_kill", Subject: "1234", Detail: "java"},
				{Time: smp.Time, Kind: "max_procs"}}
		}
		if s == 2 {
			smp.Status = &NodeStatus{}
		}
		b.Samples = append(b.Samples, smp)
	}
	return b
}

// quantize returns what a binary round trip yields: floats to the nearest
// thousandth where the fixed-point form applies, invalid UTF-8 replaced.
func quantize(m Message) Message {
	q := func(x *float64) {
		if n, ok := realMilli(*x); ok {
			*x = realFromMilli(n)
		}
	}
	u := func(s *string) { *s, _ = encString(*s) }
	if h, ok := m.(*Hello); ok && len(h.Capabilities) == 0 {
		c := *h
		c.Capabilities = nil
		return &c
	}
	b, ok := m.(*Batch)
	if !ok {
		return m
	}
	c := *b
	c.Samples = append([]Sample(nil), b.Samples...)
	for i := range c.Samples {
		s := &c.Samples[i]
		s.Time = s.Time.UTC()
		if s.Host != nil {
			h := *s.Host
			for _, x := range []*float64{&h.Load1, &h.Load5, &h.Load15, &h.CPUUser, &h.CPUSystem, &h.CPUIOWait, &h.CPUIdle, &h.CPUSteal} {
				q(x)
			}
			if h.Pressure != nil {
				p := *h.Pressure
				for _, x := range []*float64{&p.CPUSome, &p.MemorySome, &p.MemoryFull, &p.IOSome, &p.IOFull} {
					q(x)
				}
				h.Pressure = &p
			}
			s.Host = &h
		}
		s.Procs = append([]Proc(nil), s.Procs...)
		for j := range s.Procs {
			p := &s.Procs[j]
			for _, x := range []*float64{&p.CPUPct, &p.ReadBps, &p.WriteBps, &p.RunqWaitPct} {
				q(x)
			}
			for _, x := range []*string{&p.Comm, &p.Cmdline, &p.State, &p.User, &p.App, &p.Wchan} {
				u(x)
			}
		}
		s.Apps = append([]AppTop(nil), s.Apps...)
		for j := range s.Apps {
			q(&s.Apps[j].Value)
		}
		s.Events = append([]Event(nil), s.Events...)
		for j := range s.Events {
			s.Events[j].Time = s.Events[j].Time.UTC()
		}
		if len(s.Procs) == 0 {
			s.Procs = nil
		}
		if len(s.Apps) == 0 {
			s.Apps = nil
		}
		if len(s.Events) == 0 {
			s.Events = nil
		}
		if len(s.Funs) == 0 {
			s.Funs = nil
		}
	}
	if len(c.Samples) == 0 {
		c.Samples = nil
	}
	return &c
}

func TestBinaryRoundTrip(t *testing.T) {
	msgs := []Message{
		&Hello{Node: "web-1", AgentVersion: "v0.1.0", BootID: "b", SpoolID: "s", Capabilities: []string{"deflate", ""}},
		&Hello{Node: "n"},
		&Welcome{ConsumerVersion: "v1", LastSeq: 1 << 40},
		&Welcome{},
		&Ack{Seq: 7},
		&Ack{},
		&Batch{Seq: 1},
		&Batch{Seq: math.MaxUint64, Samples: []Sample{{Time: time.Unix(0, math.MinInt64+1).UTC()}, {Time: time.Unix(0, math.MaxInt64).UTC()}}},
		synthBatch(1, 1, 30),
		synthBatch(2, 8, 30),
		synthBatch(3, 5, 200),
	}
	var buf []byte
	for i, m := range msgs {
		var err error
		buf, err = Binary.Append(buf[:0], m)
		if err != nil {
			t.Fatalf("message %d: encode: %v", i, err)
		}
		got, err := Binary.Decode(buf)
		if err != nil {
			t.Fatalf("message %d: decode: %v", i, err)
		}
		if want := quantize(m); !reflect.DeepEqual(got, want) {
			t.Fatalf("message %d: round trip differs:\n got %+v\nwant %+v", i, got, want)
		}
		// Re-encoding what was decoded gives the same bytes.
		again, err := Binary.Append(nil, got)
		if err != nil {
			t.Fatalf("message %d: re-encode: %v", i, err)
		}
		if string(again) != string(buf) {
			t.Fatalf("message %d: re-encoding differs", i)
		}
	}
}

func TestBinaryAppendKeepsPrefix(t *testing.T) {
	prefix := []byte("prefix")
	out, err := Binary.Append(prefix, &Ack{Seq: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "prefix") {
		t.Fatalf("prefix lost: %q", out)
	}
	m, err := Binary.Decode(out[len(prefix):])
	if err != nil || m.(*Ack).Seq != 3 {
		t.Fatalf("decode: %v %v", m, err)
	}
	// On error the buffer comes back as it was.
	out2, err := Binary.Append(out, &Batch{})
	if !errors.Is(err, ErrMalformed) || len(out2) != len(out) {
		t.Fatalf("bad batch: err %v, len %d want %d", err, len(out2), len(out))
	}
}

// TestAppendRejects: both codecs refuse, before writing anything, what a
// consumer would refuse, so a producer never spools a poison batch.
func TestAppendRejects(t *testing.T) {
	at := func(procs int) *Batch {
		return &Batch{Seq: 1, Samples: []Sample{{Time: t0, Procs: make([]Proc, procs)}}}
	}
	long := &Batch{Seq: 1, Samples: []Sample{{Time: t0, Status: &NodeStatus{Data: strings.Repeat("x", MaxStringBytes+1)}}}}
	nan := &Batch{Seq: 1, Samples: []Sample{{Time: t0, Procs: []Proc{{CPUPct: math.NaN()}}}}}
	inf := &Batch{Seq: 1, Samples: []Sample{{Time: t0, Host: &Host{Load1: math.Inf(1)}}}}
	noTime := &Batch{Seq: 1, Samples: []Sample{{}}}
	eventNoTime := &Batch{Seq: 1, Samples: []Sample{{Time: t0, Events: []Event{{Kind: "k"}}}}}
	farFuture := &Batch{Seq: 1, Samples: []Sample{{Time: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}}}
	many := &Batch{Seq: 1, Samples: make([]Sample, MaxSamplesPerBatch+1)}
	rows := &Batch{Seq: 1}
	for range MaxRowsPerMessage/MaxProcsPerSample + 1 {
		rows.Samples = append(rows.Samples, Sample{Time: t0, Procs: make([]Proc, MaxProcsPerSample)})
	}
	for _, tc := range []struct {
		name  string
		m     Message
		class string
	}{
		{"hello without node", &Hello{}, "malformed"},
		{"nil", nil, "malformed"},
		{"nil batch", (*Batch)(nil), "malformed"},
		{"nil ack", (*Ack)(nil), "malformed"},
		{"batch seq 0", &Batch{}, "malformed"},
		{"string too long", long, "too_big"},
		{"NaN", nan, "malformed"},
		{"infinity", inf, "malformed"},
		{"sample without time", noTime, "malformed"},
		{"event without time", eventNoTime, "malformed"},
		{"time past 2262", farFuture, "malformed"},
		{"too many samples", many, "too_big"},
		{"too many processes", at(MaxProcsPerSample + 1), "too_big"},
		{"too many rows", rows, "too_big"},
	} {
		for _, c := range []Codec{Binary, JSON} {
			out, err := c.Append([]byte("keep"), tc.m)
			if got := errClass(err); got != tc.class {
				t.Errorf("%s %s: got %s (%v), want %s", c.Subprotocol(), tc.name, got, err, tc.class)
			}
			if string(out) != "keep" {
				t.Errorf("%s %s: buffer changed on error", c.Subprotocol(), tc.name)
			}
		}
	}
}

func TestBinaryHeaderLen(t *testing.T) {
	var stream []byte
	msgs := []Message{&Ack{Seq: 1}, synthBatch(9, 3, 40), &Welcome{LastSeq: 3}}
	for _, m := range msgs {
		var err error
		if stream, err = Binary.Append(stream, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range msgs {
		n, err := BinaryHeaderLen(stream)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if _, err := Binary.Decode(stream[:n]); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		stream = stream[n:]
	}
	if len(stream) != 0 {
		t.Fatalf("%d bytes left", len(stream))
	}
}

func TestJSONUnknownType(t *testing.T) {
	_, err := JSON.Decode([]byte(`{"type":"future","x":1}`))
	if !errors.Is(err, ErrUnknownType) {
		t.Fatalf("got %v, want ErrUnknownType", err)
	}
	m, err := JSON.Decode([]byte(`{"seq":3,"type":"ack","future":{"a":[1]}}`))
	if err != nil || m.(*Ack).Seq != 3 {
		t.Fatalf("unknown field not ignored: %v %v", m, err)
	}
}

// TestBinaryConcurrent: the pooled encoder and decoder state is never shared
// between goroutines (run with -race).
func TestBinaryConcurrent(t *testing.T) {
	var want [][]byte
	var msgs []*Batch
	for i := range 4 {
		m := synthBatch(uint64(i), 2+i, 10+5*i)
		b, err := Binary.Append(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		msgs, want = append(msgs, m), append(want, b)
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			var buf []byte
			for n := range 50 {
				i := (g + n) % len(msgs)
				var err error
				if buf, err = Binary.Append(buf[:0], msgs[i]); err != nil {
					errs <- err
					return
				}
				if string(buf) != string(want[i]) {
					errs <- fmt.Errorf("goroutine %d: encoding of batch %d differs", g, i)
					return
				}
				m, err := Binary.Decode(buf)
				if err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(m, quantize(msgs[i])) {
					errs <- fmt.Errorf("goroutine %d: decoding of batch %d differs", g, i)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
