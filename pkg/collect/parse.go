//go:build linux

package collect

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/sysmon/sysmon/pkg/wire"
)

// errMalformed reports a /proc file that does not have the expected shape.
var errMalformed = errors.New("malformed")

// statFields holds the fields of /proc/PID/stat the collector uses. Comm
// aliases the input buffer.
type statFields struct {
	comm      []byte
	state     byte
	ppid      int32
	flags     uint32
	utime     uint64 // clock ticks, whole thread group
	stime     uint64
	threads   uint32
	starttime uint64 // clock ticks after boot
	vsize     uint64 // bytes
	rssPages  uint64
}

// pfKthread is PF_KTHREAD in the stat flags field.
const pfKthread = 0x00200000

// parseStat parses /proc/PID/stat (proc(5)). The comm field may hold any
// bytes, spaces and parentheses included, so it runs from the first '(' to
// the last ')'; the numeric fields follow that last ')'.
func parseStat(b []byte, s *statFields) error {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 >= len(b) {
		return errMalformed
	}
	s.comm = b[open+1 : end]
	rest := b[end+2:]
	// Field numbers as in proc(5): 3 is state.
	field := 3
	for len(rest) > 0 && field <= 24 {
		i := bytes.IndexByte(rest, ' ')
		var f []byte
		if i < 0 {
			f = bytes.TrimRight(rest, "\n")
			rest = nil
		} else {
			f, rest = rest[:i], rest[i+1:]
		}
		var err error
		switch field {
		case 3:
			if len(f) != 1 {
				return errMalformed
			}
			s.state = f[0]
		case 4:
			var v int64
			v, err = parseInt(f)
			s.ppid = int32(v)
		case 9:
			var v uint64
			v, err = parseUint(f)
			s.flags = uint32(v)
		case 14:
			s.utime, err = parseUint(f)
		case 15:
			s.stime, err = parseUint(f)
		case 20:
			var v uint64
			v, err = parseUint(f)
			s.threads = uint32(v)
		case 22:
			s.starttime, err = parseUint(f)
		case 23:
			s.vsize, err = parseUint(f)
		case 24:
			// rss is a signed long in the kernel; a negative value has
			// never been seen but must not wrap to a huge size.
			var v int64
			v, err = parseInt(f)
			if v < 0 {
				v = 0
			}
			s.rssPages = uint64(v)
		}
		if err != nil {
			return err
		}
		field++
	}
	if field <= 24 {
		return errMalformed
	}
	return nil
}

func parseUint(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 20 {
		return 0, errMalformed
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errMalformed
		}
		n := v*10 + uint64(c-'0')
		if n/10 != v { // overflow
			return 0, errMalformed
		}
		v = n
	}
	return v, nil
}

func parseInt(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, err := parseUint(b)
	if err != nil || u > 1<<63-1 {
		return 0, errMalformed
	}
	if neg {
		return -int64(u), nil
	}
	return int64(u), nil
}

// parseSchedstat parses /proc/PID/schedstat: time on CPU (ns), time waiting
// on a run queue (ns), number of timeslices. The figures are those of the
// thread-group leader only.
func parseSchedstat(b []byte) (exec, wait uint64, err error) {
	b = bytes.TrimRight(b, "\n")
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		return 0, 0, errMalformed
	}
	if exec, err = parseUint(b[:i]); err != nil {
		return 0, 0, err
	}
	b = b[i+1:]
	if j := bytes.IndexByte(b, ' '); j >= 0 {
		b = b[:j]
	}
	wait, err = parseUint(b)
	return exec, wait, err
}

// parseIO returns read_bytes and write_bytes of /proc/PID/io: bytes the
// process caused to be fetched from or sent to storage.
func parseIO(b []byte) (read, write uint64, err error) {
	var haveR, haveW bool
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if v, ok := bytes.CutPrefix(line, []byte("read_bytes: ")); ok {
			read, err = parseUint(v)
			haveR = err == nil
		} else if v, ok := bytes.CutPrefix(line, []byte("write_bytes: ")); ok {
			write, err = parseUint(v)
			haveW = err == nil
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if !haveR || !haveW {
		return 0, 0, errMalformed
	}
	return read, write, nil
}

// parseStatusUID returns the effective uid from /proc/PID/status ("Uid:"
// real, effective, saved, filesystem), the one ps(1) shows as USER.
func parseStatusUID(b []byte) (uint32, error) {
	i := bytes.Index(b, []byte("\nUid:"))
	if i < 0 {
		return 0, errMalformed
	}
	line := b[i+5:]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) < 2 {
		return 0, errMalformed
	}
	v, err := parseUint(f[1])
	if err != nil || v > 1<<32-1 {
		return 0, errMalformed
	}
	return uint32(v), nil
}

// cleanCmdline turns the NUL-separated argument vector of /proc/PID/cmdline
// into one line: NULs become spaces (trailing ones are dropped), bytes that
// are not UTF-8 become U+FFFD, and the result is cut at a character
// boundary to at most wire.MaxCmdlineBytes bytes so that it is always valid
// text downstream.
func cleanCmdline(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.Grow(min(len(b), wire.MaxCmdlineBytes))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == 0:
			r = ' '
		case r < 0x20 || r == 0x7f:
			// Control characters (a newline in an argument) would break
			// one-line displays; show them as spaces too.
			r = ' '
		}
		if sb.Len()+utf8.RuneLen(r) > wire.MaxCmdlineBytes {
			break
		}
		sb.WriteRune(r) // utf8.RuneError for an invalid byte
		b = b[size:]
	}
	return sb.String()
}

// cleanText makes arbitrary kernel-provided bytes (comm, wchan, command
// output) valid UTF-8.
func cleanText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// parseUptimeTicks returns the first figure of /proc/uptime ("93784.12
// 180000.00"), seconds since boot, in clock ticks: the unit of a process's
// start time.
func parseUptimeTicks(b []byte) (uint64, error) {
	if i := bytes.IndexAny(b, " \n"); i >= 0 {
		b = b[:i]
	}
	whole, frac, _ := bytes.Cut(b, []byte("."))
	secs, err := parseUint(whole)
	if err != nil {
		return 0, err
	}
	var cs uint64
	for i := range 2 {
		cs *= 10
		if i < len(frac) {
			if frac[i] < '0' || frac[i] > '9' {
				return 0, errMalformed
			}
			cs += uint64(frac[i] - '0')
		}
	}
	if secs > 1<<50 {
		return 0, errMalformed
	}
	return secs*clockTicks + cs*clockTicks/100, nil
}
