package wire

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The worked examples in SPEC.md are annotated hex dumps of test vectors,
// written by dumpBinary; TestSpecExamples checks their bytes against the
// vectors so the document cannot drift from the code. To print a dump:
//
//	go test ./pkg/wire -run TestSpecExamples -dump batch_tiny
var dumpName = flag.String("dump", "", "print the annotated dump of testdata/wire/NAME.bin")

type dumpField struct {
	name string
	kind string // varint, zigzag, real, string, record:CTX, table:CTX, strtab, repeated string
}

var dumpSchema = map[string]map[uint64]dumpField{
	"hello":   {1: {"node", "string"}, 2: {"agent_version", "string"}, 3: {"boot_id", "string"}, 4: {"spool_id", "string"}, 5: {"capability", "string"}},
	"welcome": {1: {"consumer_version", "string"}, 2: {"last_seq", "varint"}},
	"ack":     {1: {"seq", "varint"}},
	"batch":   {1: {"seq", "varint"}, 2: {"strings", "strtab"}, 3: {"sample", "record:sample"}},
	"sample": {1: {"time", "zigzag"}, 2: {"host", "record:host"}, 3: {"memory", "record:memory"}, 4: {"procs", "table:procs"},
		5: {"procs_seen", "varint"}, 6: {"app_top", "table:apps"}, 7: {"fun_top", "table:funs"}, 8: {"status", "record:status"}, 9: {"events", "table:events"}},
	"host": {1: {"load1", "real"}, 2: {"load5", "real"}, 3: {"load15", "real"}, 4: {"cpu_user", "real"}, 5: {"cpu_system", "real"},
		6: {"cpu_iowait", "real"}, 7: {"cpu_idle", "real"}, 8: {"cpu_steal", "real"}, 9: {"procs_running", "varint"},
		10: {"procs_blocked", "varint"}, 11: {"procs_total", "varint"}, 12: {"pressure", "record:pressure"}},
	"pressure": {1: {"cpu_some", "real"}, 2: {"memory_some", "real"}, 3: {"memory_full", "real"}, 4: {"io_some", "real"}, 5: {"io_full", "real"}},
	"memory":   {1: {"total", "varint"}, 2: {"free", "varint"}, 3: {"available", "varint"}, 4: {"buffers", "varint"}, 5: {"cached", "varint"}, 6: {"swap_total", "varint"}, 7: {"swap_free", "varint"}},
	"status":   {1: {"data", "varint"}},
	"procs": {1: {"row count", "varint"}, 2: {"ref", "col:ref"}, 3: {"pid", "col:int"}, 4: {"start_time", "col:int"}, 5: {"comm", "col:str"},
		6: {"cmdline", "col:str"}, 7: {"state", "col:str"}, 8: {"ppid", "col:int"}, 9: {"user", "col:str"}, 10: {"app", "col:str"},
		11: {"cpu_pct", "col:real"}, 12: {"cpu_time_ms", "col:int"}, 13: {"rss", "col:int"}, 14: {"d_rss", "col:int"}, 15: {"vsz", "col:int"},
		16: {"threads", "col:int"}, 17: {"fds", "col:int"}, 18: {"read_bps", "col:real"}, 19: {"write_bps", "col:real"},
		20: {"runq_wait_pct", "col:real"}, 21: {"wchan", "col:str"}},
	"apps":   {1: {"row count", "varint"}, 2: {"group", "col:str"}, 3: {"application", "col:str"}, 4: {"unit", "col:str"}, 5: {"value", "col:real"}},
	"funs":   {1: {"row count", "varint"}, 2: {"fun", "col:str"}, 3: {"fun_type", "col:str"}, 4: {"num_processes", "col:int"}},
	"events": {1: {"row count", "varint"}, 2: {"ts", "col:int"}, 3: {"kind", "col:str"}, 4: {"subject", "col:str"}, 5: {"detail", "col:str"}},
}

type dumper struct {
	out bytes.Buffer
}

func (d *dumper) line(depth int, b []byte, note string) {
	for len(b) > 0 {
		n := min(len(b), 12)
		hex := fmt.Sprintf("% x", b[:n])
		fmt.Fprintf(&d.out, "%-*s%-*s# %s%s\n", depth*2, "", 38-depth*2, hex, strings.Repeat("  ", depth), note)
		b, note = b[n:], "..."
	}
}

// dumpBinary annotates a valid binary message.
func dumpBinary(msg []byte) string {
	var d dumper
	t, hdr, n, err := parseHeader(msg)
	if err != nil {
		return err.Error()
	}
	names := map[MessageType]string{TypeHello: "hello", TypeWelcome: "welcome", TypeBatch: "batch", TypeAck: "ack"}
	d.line(0, msg[:4], fmt.Sprintf("magic \"SM\", version 1, type %d (%s)", t, names[t]))
	d.line(0, msg[4:hdr], fmt.Sprintf("body length %d", n))
	d.record(0, msg[hdr:], names[t])
	return d.out.String()
}

func (d *dumper) record(depth int, b []byte, ctx string) {
	r := reader{b: b}
	for !r.done() {
		start := r.off
		f, wt, err := r.key()
		if err != nil {
			d.line(depth, b[start:], "?? "+err.Error())
			return
		}
		fd, known := dumpSchema[ctx][f]
		name := fd.name
		if !known {
			name = "unknown, skipped"
		}
		wts := []string{"varint", "fixed64", "bytes"}[wt]
		switch {
		case wt == wtVarint:
			v, _ := r.uvarint()
			val := fmt.Sprint(v)
			switch fd.kind {
			case "zigzag":
				val = fmt.Sprintf("delta %+d ns", unzigzag(v))
			case "real":
				val = fmt.Sprintf("%g (zigzag %d thousandths)", realFromMilli(unzigzag(v)), unzigzag(v))
			case "varint":
				if ctx == "status" {
					val = fmt.Sprintf("string id %d", v)
				}
			}
			d.line(depth, b[start:r.off], fmt.Sprintf("%d:%s %s = %s", f, wts, name, val))
		case wt == wtFixed64:
			v, _ := r.fixed64()
			d.line(depth, b[start:r.off], fmt.Sprintf("%d:%s %s = %g", f, wts, name, math.Float64frombits(v)))
		default:
			body, _ := r.bytes()
			head := b[start : r.off-len(body)]
			note := fmt.Sprintf("%d:%s %s, %d bytes", f, wts, name, len(body))
			switch {
			case strings.HasPrefix(fd.kind, "record:"):
				d.line(depth, head, note)
				d.record(depth+1, body, strings.TrimPrefix(fd.kind, "record:"))
			case strings.HasPrefix(fd.kind, "table:"):
				d.line(depth, head, note+" (table)")
				d.record(depth+1, body, strings.TrimPrefix(fd.kind, "table:"))
			case strings.HasPrefix(fd.kind, "col:"):
				d.line(depth, head, note+" (column)")
				d.column(depth+1, body, strings.TrimPrefix(fd.kind, "col:"))
			case fd.kind == "strtab":
				d.line(depth, head, note+" (string table)")
				d.strtab(depth+1, body)
			case fd.kind == "string":
				d.line(depth, b[start:r.off], fmt.Sprintf("%s = %q", note, body))
			default:
				d.line(depth, b[start:r.off], note)
			}
		}
	}
}

func (d *dumper) column(depth int, b []byte, kind string) {
	r := reader{b: b}
	for !r.done() {
		start := r.off
		var note string
		switch kind {
		case "real":
			v, err := r.realValue()
			if err != nil {
				d.line(depth, b[start:], "?? "+err.Error())
				return
			}
			note = fmt.Sprintf("%g", v)
		default:
			u, err := r.uvarint()
			if err != nil {
				d.line(depth, b[start:], "?? "+err.Error())
				return
			}
			switch kind {
			case "ref":
				if u == 0 {
					note = "no reference"
				} else {
					note = fmt.Sprintf("same as row %+d of the previous sample", unzigzag(u-1))
				}
			case "str":
				note = fmt.Sprintf("id delta %+d", unzigzag(u))
			default:
				note = fmt.Sprintf("delta %+d", unzigzag(u))
			}
		}
		d.line(depth, b[start:r.off], note)
	}
}

func (d *dumper) strtab(depth int, b []byte) {
	r := reader{b: b}
	n, _ := r.uvarint()
	d.line(depth, b[:r.off], fmt.Sprintf("%d strings", n))
	for i := uint64(1); !r.done(); i++ {
		start := r.off
		s, err := r.bytes()
		if err != nil {
			d.line(depth, b[start:], "?? "+err.Error())
			return
		}
		d.line(depth, b[start:r.off], fmt.Sprintf("id %d = %q", i, s))
	}
}

var specBlock = regexp.MustCompile("(?s)<!-- vector: ([a-z_]+) -->\\s*```text\\n(.*?)```")

// TestSpecExamples checks every annotated dump in SPEC.md against its vector.
func TestSpecExamples(t *testing.T) {
	if *dumpName != "" {
		b, err := os.ReadFile(filepath.Join(vectorDir, *dumpName+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Print(dumpBinary(b))
	}
	spec, err := os.ReadFile("SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := specBlock.FindAllSubmatch(spec, -1)
	if len(blocks) < 3 {
		t.Fatalf("SPEC.md has %d vector dumps, want at least 3", len(blocks))
	}
	for _, m := range blocks {
		name := string(m[1])
		var got []byte
		for _, ln := range strings.Split(string(m[2]), "\n") {
			ln, _, _ = strings.Cut(ln, "#")
			for _, tok := range strings.Fields(ln) {
				var v byte
				if _, err := fmt.Sscanf(tok, "%02x", &v); err != nil || len(tok) != 2 {
					t.Fatalf("%s: bad hex %q", name, tok)
				}
				got = append(got, v)
			}
		}
		want, err := os.ReadFile(filepath.Join(vectorDir, name+".bin"))
		if err != nil {
			t.Fatalf("SPEC.md dumps %s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("SPEC.md dump of %s differs from %s.bin; regenerate with -dump %s:\n%s", name, name, name, dumpBinary(want))
		}
	}
}
