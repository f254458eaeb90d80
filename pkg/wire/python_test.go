package wire

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
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
