package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestPythonDecoder runs testdata/wire/sysmon_wire.py, a decoder written
// from SPEC.md alone in another language, over every binary vector and
// compares it with this package: the same message for valid vectors, the
// same error class for invalid ones. It is the evidence that the
// specification is enough to write a consumer.
func TestPythonDecoder(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 is required under CI: %v", err)
		}
		t.Skipf("python3 not installed: %v", err)
	}
	bins, err := filepath.Glob(filepath.Join(vectorDir, "*.bin"))
	if err != nil || len(bins) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	cmd := exec.Command(py, append([]string{filepath.Join(vectorDir, "sysmon_wire.py")}, bins...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sysmon_wire.py: %v\n%s", err, stderr.String())
	}
	results := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 3)
		if len(f) < 3 {
			t.Fatalf("bad output line %q", sc.Text())
		}
		results[f[0]] = f[1:]
	}
	for _, path := range bins {
		name := strings.TrimSuffix(filepath.Base(path), ".bin")
		t.Run(name, func(t *testing.T) {
			res, ok := results[name]
			if !ok {
				t.Fatalf("no python result")
			}
			bin, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Binary.Decode(bin)
			if err != nil {
				if res[0] != "error" || !strings.HasPrefix(res[1], errClass(err)+"\t") {
					t.Fatalf("go: %s (%v); python: %v", errClass(err), err, res)
				}
				return
			}
			if res[0] != "ok" {
				t.Fatalf("go decodes; python: %v", res)
			}
			pm, err := JSON.Decode([]byte(res[1]))
			if err != nil {
				t.Fatalf("python's JSON does not decode: %v\n%s", err, res[1])
			}
			if !reflect.DeepEqual(m, pm) {
				t.Fatalf("python decodes differently:\n go     %+v\n python %+v", m, pm)
			}
		})
	}
}

// TestPythonDecoderMutations is a small differential fuzz: random
// corruptions of the vectors must get the same verdict from both decoders.
func TestPythonDecoderMutations(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 is required under CI: %v", err)
		}
		t.Skipf("python3 not installed: %v", err)
	}
	var seeds [][]byte
	for _, name := range []string{"hello", "welcome", "ack", "batch_tiny", "batch_small", "batch_floats", "compat_unknown_fields", "compat_float_forms"} {
		b, err := os.ReadFile(filepath.Join(vectorDir, name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	var paths []string
	inputs := map[string][]byte{}
	for i := range 600 {
		b := bytes.Clone(seeds[rng.IntN(len(seeds))])
		for range 1 + rng.IntN(3) {
			switch p := rng.IntN(len(b)); rng.IntN(4) {
			case 0:
				b[p] ^= byte(1 << rng.IntN(8))
			case 1:
				b[p] = byte(rng.IntN(256))
			case 2:
				b = append(b[:p:p], b[p+1:]...)
			case 3:
				b = slices.Insert(b, p, byte(rng.IntN(256)))
			}
		}
		// Keep the header's length right half of the time, so bodies get tested.
		if i%2 == 0 && len(b) > 6 {
			if _, hdr, _, err := parseHeader(b); err == nil {
				body := b[hdr:]
				b = append(binary.AppendUvarint(bytes.Clone(b[:4]), uint64(len(body))), body...)
			}
		}
		name := fmt.Sprintf("m%03d", i)
		path := filepath.Join(dir, name+".bin")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
		inputs[name] = b
	}
	out, err := exec.Command(py, append([]string{filepath.Join(vectorDir, "sysmon_wire.py")}, paths...)...).Output()
	if err != nil {
		t.Fatalf("sysmon_wire.py: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	accepted := 0
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 4)
		m, err := Binary.Decode(inputs[f[0]])
		if err != nil {
			if f[1] != "error" || f[2] != errClass(err) {
				t.Errorf("%s %x: go %s (%v), python %v", f[0], inputs[f[0]], errClass(err), err, f[1:])
			}
			continue
		}
		accepted++
		if f[1] != "ok" {
			t.Errorf("%s %x: go accepts, python %v", f[0], inputs[f[0]], f[1:])
			continue
		}
		pm, err := JSON.Decode([]byte(f[2]))
		if err != nil || !reflect.DeepEqual(m, pm) {
			t.Errorf("%s %x: decoded differently (%v):\n go     %+v\n python %+v", f[0], inputs[f[0]], err, m, pm)
		}
	}
	t.Logf("%d of %d mutations decode", accepted, len(paths))
}
