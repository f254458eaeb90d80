package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The test vectors under testdata/wire are the contract between SPEC.md and
// this code (see testdata/wire/README.md):
//
//	NAME.bin + NAME.json   decode(bin) == json and encode(json) == bin
//	compat_NAME.bin + .json decode only: bytes another encoder may write
//	NAME.bin + NAME.err    decoding fails with the error class in .err
//
// `go test ./pkg/wire -run TestVectors -update` rewrites them from the Go
// definitions below (and samples.bin from the captured samples.json).
var update = flag.Bool("update", false, "rewrite testdata/wire from the definitions in vectors_test.go")

const vectorDir = "../../testdata/wire"

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// smallBatch is the worked example of SPEC.md.
func smallBatch() *Batch {
	nginx := Proc{PID: 812, StartTime: 1520, Comm: "nginx", Cmdline: "nginx: worker process", State: "S", PPID: 811,
		User: "www-data", App: "nginx.service", CPUPct: 12.5, CPUTimeMs: 48210, RSS: 10 << 20, DRSS: 4096, VSZ: 50 << 20,
		Threads: 1, FDs: 24, WriteBps: 4096, RunqWaitPct: 0.25, Wchan: "ep_poll"}
	systemd := Proc{PID: 1, StartTime: 2, Comm: "systemd", Cmdline: "/sbin/init", State: "S", User: "root",
		App: "init.scope", CPUPct: 0.5, CPUTimeMs: 9000, RSS: 12 << 20, VSZ: 164 << 20, Threads: 1, FDs: 120, Wchan: "ep_poll"}
	other := Proc{PID: OtherPID, Comm: "other", CPUPct: 3.25, CPUTimeMs: 123456, RSS: 512 << 20, Threads: 180, FDs: 900}
	s1 := Sample{
		Time:   t0,
		Host:   &Host{Load1: 0.5, Load5: 0.25, Load15: 0.125, CPUUser: 12.5, CPUSystem: 2.25, CPUIdle: 85.25, ProcsRunning: 2, ProcsTotal: 151, Pressure: &Pressure{CPUSome: 1.5}},
		Memory: &Memory{Total: 8 << 30, Free: 1 << 30, Available: 4 << 30, Buffers: 64 << 20, Cached: 2 << 30},
		Procs:  []Proc{nginx, systemd, other}, ProcsSeen: 151,
		Apps:   []AppTop{{Group: "cgroup", Application: "nginx.service", Unit: "cpu", Value: 12.5}, {Group: "user", Application: "www-data", Unit: "memory", Value: 10 << 20}},
		Funs:   []FunTop{{Fun: "nginx", FunType: "command", NumProcesses: 4}, {Fun: "ep_poll", FunType: "wchan", NumProcesses: 37}},
		Status: &NodeStatus{Data: "role: web"},
	}
	nginx2, systemd2, other2 := nginx, systemd, other
	nginx2.CPUTimeMs += 250
	nginx2.RSS += 4096
	systemd2.CPUTimeMs += 10
	systemd2.CPUPct = 0.25
	other2.CPUTimeMs += 70
	sshd := Proc{PID: 4242, StartTime: 99000, Comm: "sshd", Cmdline: "sshd: alice [priv]", State: "R", PPID: 811,
		User: "root", App: "ssh.service", CPUPct: 1, CPUTimeMs: 20, RSS: 8 << 20, DRSS: 0, VSZ: 16 << 20, Threads: 1, FDs: 9}
	s2 := Sample{
		Time:   t0.Add(2 * time.Second),
		Host:   &Host{Load1: 0.5, Load5: 0.25, Load15: 0.125, CPUUser: 13, CPUSystem: 2, CPUIdle: 85, ProcsRunning: 1, ProcsTotal: 152},
		Memory: &Memory{Total: 8 << 30, Free: 1<<30 - 8<<20, Available: 4<<30 - 8<<20, Buffers: 64 << 20, Cached: 2 << 30},
		Procs:  []Proc{systemd2, nginx2, sshd, other2}, ProcsSeen: 152,
		Events: []Event{{Time: t0.Add(1500 * time.Millisecond), Kind: "oom_kill", Subject: "4100", Detail: "java"}},
	}
	return &Batch{Seq: 7, Samples: []Sample{s1, s2}}
}

// vectors are encoded both ways.
func vectors() []struct {
	name string
	msg  Message
} {
	return []struct {
		name string
		msg  Message
	}{
		{"hello", &Hello{Node: "web-1", AgentVersion: "0.1.0", BootID: "0b5c8a2e-3f61-4d2a-9c7e-1a2b3c4d5e6f", SpoolID: "9f86d081884c7d65", Capabilities: []string{"deflate"}}},
		{"welcome", &Welcome{ConsumerVersion: "0.1.0", LastSeq: 41}},
		{"ack", &Ack{Seq: 42}},
		{"batch_empty", &Batch{Seq: 1}},
		{"batch_tiny", &Batch{Seq: 5, Samples: []Sample{
			{Time: t0, ProcsSeen: 151, Procs: []Proc{
				{PID: 812, StartTime: 1520, Comm: "nginx", State: "S", CPUPct: 12.5, RSS: 10 << 20},
				{PID: OtherPID, Comm: "other", State: "S", RSS: 512 << 20}}},
			{Time: t0.Add(2 * time.Second), ProcsSeen: 151, Procs: []Proc{
				{PID: 812, StartTime: 1520, Comm: "nginx", State: "R", CPUPct: 0.25, RSS: 10<<20 + 4096},
				{PID: OtherPID, Comm: "other", State: "S", RSS: 512 << 20}}},
		}}},
		{"batch_small", smallBatch()},
		{"batch_floats", &Batch{Seq: 300, Samples: []Sample{{
			Time: time.Date(1970, 1, 1, 0, 0, 0, 1, time.UTC),
			Host: &Host{Load1: 1e300, CPUUser: -12.5, CPUIdle: 0.001},
			Procs: []Proc{{PID: math.MaxInt32, StartTime: math.MaxUint64, Comm: "é😀", PPID: math.MinInt32,
				CPUPct: 1 << 60, CPUTimeMs: math.MaxUint64, DRSS: math.MinInt64, RSS: math.MaxUint64, Threads: math.MaxUint32, FDs: -1, ReadBps: 123456789.123}},
			Apps:   []AppTop{{Group: "cgroup", Application: "big", Unit: "memory", Value: 3 << 50}},
			Events: []Event{{Time: time.Date(2262, 4, 11, 23, 47, 16, 854775807, time.UTC), Kind: "k"}},
		}}}},
	}
}

// --- hand-built bytes -------------------------------------------------------

func kv(field, v uint64) []byte { return binary.AppendUvarint(binary.AppendUvarint(nil, field<<3), v) }
func kf(field, v uint64) []byte {
	return binary.LittleEndian.AppendUint64(binary.AppendUvarint(nil, field<<3|1), v)
}
func kb(field uint64, parts ...[]byte) []byte {
	c := slices.Concat(parts...)
	return append(binary.AppendUvarint(binary.AppendUvarint(nil, field<<3|2), uint64(len(c))), c...)
}
func msgBytes(t MessageType, parts ...[]byte) []byte {
	body := slices.Concat(parts...)
	return append(binary.AppendUvarint([]byte{'S', 'M', 1, byte(t)}, uint64(len(body))), body...)
}
func uv(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}
func strtab(ss ...string) []byte {
	b := uv(uint64(len(ss)))
	for _, s := range ss {
		b = append(b, uv(uint64(len(s)))...)
		b = append(b, s...)
	}
	return kb(batchStrings, b)
}

// sampleAt is a sample field with the given time delta and more fields.
func sampleAt(ns int64, parts ...[]byte) []byte {
	return kb(batchSample, append([][]byte{kv(sampleTime, zigzag(ns))}, parts...)...)
}

var t0ns = uint64(t0.UnixNano())

// compatVectors decode to the given message but are not what this encoder
// writes: readers must accept them.
func compatVectors() []struct {
	name string
	bin  []byte
	msg  Message
} {
	return []struct {
		name string
		bin  []byte
		msg  Message
	}{
		{"compat_unknown_fields", msgBytes(TypeBatch,
			strtab("bash"), // the string table may come first
			kv(99, 5), kf(100, 7), kb(101, []byte("future")),
			kv(batchSeq, 9),
			kb(batchSample, kv(sampleTime, zigzag(int64(t0ns))), kv(42, 1),
				kb(sampleHost, kv(hostLoad1, zigzag(1500)), kb(50, kv(1, 1)), kv(hostProcsTotal, 3)),
				kb(sampleProcs, kv(tableCount, 2), kb(40, uv(1, 2)), kb(3, uv(zigzag(10), zigzag(5))), kb(5, uv(2, 0)))),
		), &Batch{Seq: 9, Samples: []Sample{{Time: t0, Host: &Host{Load1: 1.5, ProcsTotal: 3},
			Procs: []Proc{{PID: 10, Comm: "bash"}, {PID: 15, Comm: "bash"}}}}}},
		{"compat_float_forms", msgBytes(TypeBatch, kv(batchSeq, 1),
			// A float record field may use IEEE 754 bits even when fixed-point
			// would do; a column value likewise (tag 1 + 8 bytes).
			kb(batchSample, kv(sampleTime, zigzag(int64(t0ns))),
				kb(sampleHost, kf(hostLoad1, math.Float64bits(0.5))),
				kb(sampleProcs, kv(tableCount, 1), kb(3, uv(zigzag(7))), kb(11, []byte{1}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(2.5)))))),
			&Batch{Seq: 1, Samples: []Sample{{Time: t0, Host: &Host{Load1: 0.5}, Procs: []Proc{{PID: 7, CPUPct: 2.5}}}}}},
		{"compat_hello_unknown", msgBytes(TypeHello, kb(helloNode, []byte("n")), kv(77, 1), kb(helloCapability, []byte("x"))),
			&Hello{Node: "n", Capabilities: []string{"x"}}},
	}
}

func badVectors() []struct {
	name  string
	bin   []byte
	class string
} {
	seq := kv(batchSeq, 1)
	smp := func(parts ...[]byte) []byte { return msgBytes(TypeBatch, seq, sampleAt(int64(t0ns), parts...)) }
	procs := func(n uint64, cols ...[]byte) []byte {
		return smp(kb(sampleProcs, append([][]byte{kv(tableCount, n)}, cols...)...))
	}
	many := make([][]byte, 0, MaxSamplesPerBatch+2)
	many = append(many, seq)
	for range MaxSamplesPerBatch + 1 {
		many = append(many, kb(batchSample))
	}
	return []struct {
		name  string
		bin   []byte
		class string
	}{
		{"bad_magic", []byte("XM\x01\x04\x02\x08\x01"), "malformed"},
		{"bad_version", []byte("SM\x02\x04\x02\x08\x01"), "malformed"},
		{"bad_short_header", []byte("SM\x01"), "malformed"},
		{"bad_trailing_bytes", append(msgBytes(TypeAck, kv(ackSeq, 1)), 0), "malformed"},
		{"bad_body_length_overrun", []byte("SM\x01\x04\x05\x08\x01"), "malformed"},
		{"bad_truncated_varint", msgBytes(TypeAck, []byte{ackSeq << 3, 0x80}), "malformed"},
		{"bad_varint_overflow", msgBytes(TypeAck, []byte{ackSeq << 3}, bytes.Repeat([]byte{0xff}, 10), []byte{1}), "malformed"},
		{"bad_wire_type", msgBytes(TypeAck, []byte{ackSeq<<3 | 5, 1}), "malformed"},
		{"bad_field_zero", msgBytes(TypeAck, []byte{0, 1}), "malformed"},
		{"bad_field_repeated", msgBytes(TypeAck, kv(ackSeq, 1), kv(ackSeq, 2)), "malformed"},
		{"bad_known_field_wrong_type", msgBytes(TypeAck, kb(ackSeq, []byte{1})), "malformed"},
		{"bad_bytes_overrun", msgBytes(TypeHello, []byte{helloNode<<3 | 2, 50}, []byte("abc")), "malformed"},
		{"bad_hello_no_node", msgBytes(TypeHello, kb(helloAgentVersion, []byte("1"))), "malformed"},
		{"bad_batch_seq_zero", msgBytes(TypeBatch, sampleAt(int64(t0ns))), "malformed"},
		{"bad_string_id", procs(1, kb(3, uv(2)), kb(5, uv(zigzag(1)))), "malformed"},
		{"bad_string_invalid_utf8", msgBytes(TypeBatch, seq, strtab("a\xffb"), sampleAt(int64(t0ns), kb(sampleStatus, kv(statusData, 1)))), "malformed"},
		{"bad_string_empty_in_table", msgBytes(TypeBatch, seq, kb(batchStrings, uv(1, 0))), "malformed"},
		{"bad_string_table_count", msgBytes(TypeBatch, seq, kb(batchStrings, uv(1000, 1), []byte("a"))), "malformed"},
		{"bad_string_table_repeated", msgBytes(TypeBatch, seq, strtab("a"), strtab("b")), "malformed"},
		{"bad_string_too_long", msgBytes(TypeBatch, seq, kb(batchStrings, uv(1, MaxStringBytes+1), []byte("abc"))), "too_big"},
		{"bad_ref_first_sample", procs(1, kb(procRef, uv(1)), kb(3, uv(2))), "malformed"},
		{"bad_rows_exceed_bytes", procs(200, kb(3, uv(2))), "malformed"},
		{"bad_procs_over_limit", procs(MaxProcsPerSample+1, kb(3, uv(2))), "too_big"},
		{"bad_column_short", procs(3, kb(3, uv(2, 2))), "malformed"},
		{"bad_column_extra", procs(1, kb(3, uv(2, 2))), "malformed"},
		{"bad_column_wire_type", procs(1, kv(3, 2)), "malformed"},
		{"bad_pid_overflow", procs(1, kb(3, uv(zigzag(1<<31)))), "malformed"},
		{"bad_float_tag", procs(1, kb(3, uv(2)), kb(11, uv(3))), "malformed"},
		{"bad_float_nan", smp(kb(sampleHost, kf(hostLoad1, math.Float64bits(math.NaN())))), "malformed"},
		{"bad_float_truncated", procs(1, kb(3, uv(2)), kb(11, []byte{1, 0, 0})), "malformed"},
		{"bad_string_unused_invalid_utf8", msgBytes(TypeBatch, seq, strtab("ok", "\xc0\x80")), "malformed"},
		{"bad_ref_past_previous", msgBytes(TypeBatch, seq,
			sampleAt(int64(t0ns), kb(sampleProcs, kv(tableCount, 1), kb(3, uv(2)))),
			sampleAt(0, kb(sampleProcs, kv(tableCount, 1), kb(procRef, uv(zigzag(1)+1)), kb(3, uv(0))))), "malformed"},
		{"bad_threads_overflow", procs(1, kb(3, uv(2)), kb(16, uv(zigzag(1<<32)))), "malformed"},
		{"bad_fixed_point_range", smp(kb(sampleHost, kv(hostLoad1, zigzag(1<<50)))), "malformed"},
		{"bad_float_inf_column", procs(1, kb(3, uv(2)), kb(18, []byte{1}, binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.Inf(-1))))), "malformed"},
		{"bad_status_wire_type", smp(kv(sampleStatus, 1)), "malformed"},
		{"bad_procs_seen_overflow", smp(kv(sampleProcsSeen, 1<<32)), "malformed"},
		{"bad_too_many_rows", func() []byte {
			parts := [][]byte{seq}
			col := make([]byte, MaxProcsPerSample)
			for range MaxRowsPerMessage/MaxProcsPerSample + 1 {
				parts = append(parts, sampleAt(0, kb(sampleProcs, kv(tableCount, MaxProcsPerSample), kb(3, col))))
			}
			return msgBytes(TypeBatch, parts...)
		}(), "too_big"},
		{"bad_too_many_samples", msgBytes(TypeBatch, many...), "too_big"},
		{"bad_message_too_big", append([]byte("SM\x01\x04"), uv(MaxMessageBytes+1)...), "too_big"},
		{"unknown_type", msgBytes(99, kv(1, 1)), "unknown_type"},
	}
}

// --- the test ---------------------------------------------------------------

func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrUnknownType):
		return "unknown_type"
	case errors.Is(err, ErrTooBig):
		return "too_big"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	}
	return "other: " + err.Error()
}

// renderJSON is the canonical .json form: the JSON codec's output indented.
func renderJSON(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := JSON.Append(nil, m)
	if err != nil {
		t.Fatalf("encode json: %v", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", " "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func writeVector(t *testing.T, name string, bin []byte, other string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(vectorDir, name+".bin"), bin, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vectorDir, name+other), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func updateVectors(t *testing.T) {
	for _, v := range vectors() {
		bin, err := Binary.Append(nil, v.msg)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		writeVector(t, v.name, bin, ".json", renderJSON(t, v.msg))
	}
	raw, err := os.ReadFile(filepath.Join(vectorDir, "samples.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := JSON.Decode(raw)
	if err != nil {
		t.Fatalf("samples.json: %v", err)
	}
	bin, err := Binary.Append(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	writeVector(t, "samples", bin, ".json", renderJSON(t, m))
	for _, v := range compatVectors() {
		writeVector(t, v.name, v.bin, ".json", renderJSON(t, v.msg))
	}
	for _, v := range badVectors() {
		writeVector(t, v.name, v.bin, ".err", []byte(v.class+"\n"))
	}
}

func TestVectors(t *testing.T) {
	if *update {
		updateVectors(t)
	}
	bins, err := filepath.Glob(filepath.Join(vectorDir, "*.bin"))
	if err != nil || len(bins) == 0 {
		t.Fatalf("no vectors in %s: %v", vectorDir, err)
	}
	want := map[string]bool{"samples": true}
	for _, v := range vectors() {
		want[v.name] = true
	}
	for _, v := range compatVectors() {
		want[v.name] = true
	}
	for _, v := range badVectors() {
		want[v.name] = true
	}
	for _, path := range bins {
		name := strings.TrimSuffix(filepath.Base(path), ".bin")
		delete(want, name)
		t.Run(name, func(t *testing.T) {
			bin, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			base := strings.TrimSuffix(path, ".bin")
			if class, err := os.ReadFile(base + ".err"); err == nil {
				_, derr := Binary.Decode(bin)
				if got, want := errClass(derr), strings.TrimSpace(string(class)); got != want {
					t.Fatalf("decode: got %s (%v), want %s", got, derr, want)
				}
				return
			}
			js, err := os.ReadFile(base + ".json")
			if err != nil {
				t.Fatalf("vector without .json or .err: %v", err)
			}
			fromBin, err := Binary.Decode(bin)
			if err != nil {
				t.Fatalf("decode binary: %v", err)
			}
			fromJSON, err := JSON.Decode(js)
			if err != nil {
				t.Fatalf("decode json: %v", err)
			}
			if !reflect.DeepEqual(fromBin, fromJSON) {
				t.Fatalf("binary and json differ:\n bin  %+v\n json %+v", fromBin, fromJSON)
			}
			if got := renderJSON(t, fromBin); !bytes.Equal(got, js) {
				t.Errorf("json rendering of the decoded binary differs from %s.json:\n%s", name, got)
			}
			if strings.HasPrefix(name, "compat_") {
				return
			}
			enc, err := Binary.Append(nil, fromJSON)
			if err != nil {
				t.Fatalf("encode binary: %v", err)
			}
			if !bytes.Equal(enc, bin) {
				t.Fatalf("encode(json) differs from %s.bin:\n got %x\nwant %x", name, enc, bin)
			}
		})
	}
	for name := range want {
		t.Errorf("vector %s defined in vectors_test.go but missing from %s (run with -update)", name, vectorDir)
	}
}
