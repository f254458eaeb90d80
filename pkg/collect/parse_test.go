//go:build linux

package collect

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sysmon/sysmon/pkg/wire"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		comm     string
		state    byte
		ppid     int32
		ticks    uint64
		start    uint64
		ok       bool
	}{
		{"plain", "42 (bash) S 1 42 42 0 -1 4194560 1 2 3 4 7 3 0 0 20 0 1 0 900 1000 5 18446744073709551615\n", "bash", 'S', 1, 10, 900, true},
		{"hostile comm", "42 (x) (y z) R 1 42 42 0 -1 4194560 1 2 3 4 7 3 0 0 20 0 1 0 900 1000 5 1\n", "x) (y z", 'R', 1, 10, 900, true},
		{"empty comm", "42 () S 0 42 42 0 -1 0 1 2 3 4 0 0 0 0 20 0 1 0 1 0 0 1", "", 'S', 0, 0, 1, true},
		{"comm with newline", "42 (a\nb) S 1 42 42 0 -1 0 1 2 3 4 0 0 0 0 20 0 1 0 1 0 0 1", "a\nb", 'S', 1, 0, 1, true},
		{"truncated", "42 (bash) S 1 42 42 0 -1 4194560 1 2 3 4 7 3", "", 0, 0, 0, 0, false},
		{"no parens", "42 bash S 1", "", 0, 0, 0, 0, false},
		{"empty", "", "", 0, 0, 0, 0, false},
		{"overflow", "42 (b) S 1 42 42 0 -1 0 1 2 3 4 99999999999999999999999 3 0 0 20 0 1 0 9 1 5 1", "", 0, 0, 0, 0, false},
		{"letters", "42 (b) S x 42 42 0 -1 0 1 2 3 4 7 3 0 0 20 0 1 0 9 1 5 1", "", 0, 0, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s statFields
			err := parseStat([]byte(tc.in), &s)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if string(s.comm) != tc.comm || s.state != tc.state || s.ppid != tc.ppid ||
				s.utime+s.stime != tc.ticks || s.starttime != tc.start {
				t.Errorf("got comm %q state %c ppid %d ticks %d start %d", s.comm, s.state, s.ppid, s.utime+s.stime, s.starttime)
			}
		})
	}
}

// FuzzParseStat feeds arbitrary bytes (seeded with the fixture stat files)
// to the parser: it must never panic, and what it accepts must have its
// comm between the first '(' and the last ')'.
func FuzzParseStat(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "proc", "scan", "*", "*", "stat"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s statFields
		if err := parseStat(b, &s); err != nil {
			return
		}
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if !bytes.Equal(s.comm, b[open+1:end]) {
			t.Fatalf("comm %q not between the first ( and the last )", s.comm)
		}
	})
}

// FuzzStatRoundTrip writes a stat line the way the kernel does, with any
// comm, and checks every field the collector uses comes back.
func FuzzStatRoundTrip(f *testing.F) {
	f.Add([]byte("x) (y z"), uint64(7), uint64(3), uint64(900), uint64(1<<40), int64(5), int32(1))
	f.Add([]byte(")))"), uint64(0), uint64(0), uint64(0), uint64(0), int64(0), int32(0))
	f.Fuzz(func(t *testing.T, comm []byte, ut, st, start, vsz uint64, rss int64, ppid int32) {
		if rss < 0 {
			rss = -rss
		}
		line := fmt.Sprintf("42 (%s) D %d 42 42 0 -1 4194560 1 2 3 4 %d %d 0 0 20 0 3 0 %d %d %d 18446744073709551615 1 1\n",
			comm, ppid, ut, st, start, vsz, rss)
		var s statFields
		if err := parseStat([]byte(line), &s); err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		if !bytes.Equal(s.comm, comm) || s.state != 'D' || s.ppid != ppid || s.utime != ut || s.stime != st ||
			s.threads != 3 || s.starttime != start || s.vsize != vsz || s.rssPages != uint64(rss) {
			t.Fatalf("round trip of %q: %+v", line, s)
		}
	})
}

func TestParseSchedstatIO(t *testing.T) {
	e, w, err := parseSchedstat([]byte("969448 1234 1\n"))
	if err != nil || e != 969448 || w != 1234 {
		t.Errorf("schedstat = %d %d %v", e, w, err)
	}
	if _, _, err := parseSchedstat([]byte("12\n")); err == nil {
		t.Error("one-field schedstat accepted")
	}
	r, wr, err := parseIO([]byte("rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n"))
	if err != nil || r != 4096 || wr != 8192 {
		t.Errorf("io = %d %d %v", r, wr, err)
	}
	if _, _, err := parseIO([]byte("rchar: 1\n")); err == nil {
		t.Error("io without read_bytes accepted")
	}
	uid, err := parseStatusUID([]byte("Name:\tx\nUid:\t1000\t1001\t1000\t1000\nGid:\t0\n"))
	if err != nil || uid != 1001 {
		t.Errorf("uid = %d %v, want the effective 1001", uid, err)
	}
}

func TestCleanCmdline(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"\x00\x00", ""},
		{"/bin/sleep\x0010\x00", "/bin/sleep 10"},
		{"a\x00\x00b\x00", "a  b"},
		{"nginx: worker process\x00\x00\x00\x00", "nginx: worker process"}, // setproctitle padding
		{"x\xffy\x00", "x\uFFFDy"},
		{"line\nbreak", "line break"},
		{"caf\xc3\xa9", "café"},
	} {
		if got := cleanCmdline([]byte(tc.in)); got != tc.want {
			t.Errorf("cleanCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Truncation lands on a character boundary within the limit.
	long := strings.Repeat("é", wire.MaxCmdlineBytes)
	got := cleanCmdline([]byte(long))
	if len(got) != wire.MaxCmdlineBytes || !utf8.ValidString(got) {
		t.Errorf("long cmdline: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	bad := strings.Repeat("\xff", wire.MaxCmdlineBytes)
	got = cleanCmdline([]byte(bad))
	if len(got) > wire.MaxCmdlineBytes || !utf8.ValidString(got) {
		t.Errorf("invalid bytes: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

func FuzzCleanCmdline(f *testing.F) {
	f.Add([]byte("python3\x00-c\x00print('\xff\xfe')\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := cleanCmdline(b)
		if len(s) > wire.MaxCmdlineBytes || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			t.Fatalf("cleanCmdline(%q) = %q", b, s)
		}
	})
}

func TestCgroupApp(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct{ name, in, want string }{
		{"v2 service", "0::/system.slice/nginx.service\n", "nginx.service"},
		{"v2 root", "0::/\n", "/"},
		{"v2 session", "0::/user.slice/user-1000.slice/session-3.scope\n", "session-3.scope"},
		{"v2 user app", "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-123.scope\n", "app-firefox-123.scope"},
		{"v2 delegated subtree", "0::/system.slice/build.service/worker/7\n", "build.service"},
		{"v2 docker scope", "0::/system.slice/docker-" + id + ".scope\n", "docker-0123456789ab.scope"},
		{"v2 kubernetes", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-" + id + ".scope\n", "cri-containerd-0123456789ab.scope"},
		{"v1 docker", "12:pids:/docker/" + id + "\n4:cpu,cpuacct:/docker/" + id + "\n1:name=systemd:/docker/" + id + "\n", "docker/0123456789ab"},
		{"v1 systemd", "11:memory:/system.slice/cron.service\n1:name=systemd:/system.slice/cron.service\n", "cron.service"},
		{"v1 only memory", "4:memory:/process_api/25ee7499\n1:cpu:/\n", "process_api/25ee7499"},
		{"hybrid", "9:name=systemd:/system.slice/ssh.service\n0::/system.slice/ssh.service\n", "ssh.service"},
		{"hybrid unified root", "9:name=systemd:/system.slice/ssh.service\n4:memory:/\n0::/\n", "ssh.service"},
		{"lxc", "0::/lxc/web1\n", "lxc/web1"},
		{"deleted", "4:memory:/gone (deleted)\n", "gone"},
		{"garbage", "nonsense\n::::\n", "/"},
		{"empty", "", "/"},
	} {
		if got := string(cgroupApp([]byte(tc.in))); got != tc.want {
			t.Errorf("%s: cgroupApp = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func FuzzCgroupApp(f *testing.F) {
	f.Add([]byte("0::/system.slice/nginx.service\n"))
	f.Add([]byte("12:pids:/docker/" + strings.Repeat("ab", 32) + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(cgroupApp(b)) == 0 {
			t.Fatalf("cgroupApp(%q) is empty", b)
		}
	})
}

func TestParseDirents(t *testing.T) {
	// Two records: "." (skipped) and "1234".
	rec := func(name string) []byte {
		n := 19 + len(name) + 1
		n = (n + 7) &^ 7
		b := make([]byte, n)
		b[16], b[17] = byte(n), byte(n>>8)
		b[18] = 4
		copy(b[19:], name)
		return b
	}
	buf := append(rec("."), rec("1234")...)
	buf = append(buf, 1, 2, 3) // a torn record at the end is ignored
	var got []string
	parseDirents(buf, func(name []byte, _ byte) { got = append(got, string(name)) })
	if len(got) != 1 || got[0] != "1234" {
		t.Errorf("names = %q", got)
	}
}

func TestParseUptimeTicks(t *testing.T) {
	for in, want := range map[string]uint64{"93784.12 180000.00\n": 9378412, "5.1 1": 510, "7\n": 700} {
		if got, err := parseUptimeTicks([]byte(in)); err != nil || got != want {
			t.Errorf("parseUptimeTicks(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x.1", "1.x", "-1.0"} {
		if _, err := parseUptimeTicks([]byte(in)); err == nil {
			t.Errorf("parseUptimeTicks(%q) accepted", in)
		}
	}
}

// FuzzSmallParsers: the parsers of schedstat, io, status, uptime, cgroup
// lines and directory records never panic on any input.
func FuzzSmallParsers(f *testing.F) {
	f.Add([]byte("969448 1234 1\n"))
	f.Add([]byte("read_bytes: 4096\nwrite_bytes: 8192\n"))
	f.Add([]byte("Name:\tx\nUid:\t1000\t1001\t1000\t1000\n"))
	f.Add([]byte("93784.12 180000.00\n"))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24, 0, 4, '1', '2', 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = parseSchedstat(b)
		_, _, _ = parseIO(b)
		_, _ = parseStatusUID(b)
		_, _ = parseUptimeTicks(b)
		parseDirents(b, func(name []byte, _ byte) {
			if bytes.IndexByte(name, 0) >= 0 {
				t.Fatalf("name with NUL: %q", name)
			}
		})
	})
}
