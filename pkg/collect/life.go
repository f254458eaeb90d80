//go:build linux

package collect

import (
	"bytes"
	"os"
	"os/user"
	"strconv"
	"unsafe"
)

// readLife reads what stays fixed for a process's life (or until it
// execs): its user, from /proc/PID/status, and its application, from
// /proc/PID/cgroup. Every process needs both because app_top groups all of
// them; caching per (pid, start time) makes the cost one read per new
// process instead of one per process per scan.
func (c *Collector) readLife(p *proc) {
	p.lifeDone = true
	p.user, p.app = "", ""
	if b, err := c.dir.readFile(p.pid, "status", c.bigBuf); err == nil {
		if uid, err := parseStatusUID(b); err == nil {
			p.user = c.userName(uid)
		}
	}
	if p.kthread {
		p.app = "kernel"
		return
	}
	if b, err := c.dir.readFile(p.pid, "cgroup", c.bigBuf); err == nil {
		p.app = c.internApp(cgroupApp(b))
	}
}

// userName resolves uid, caching the answer; an unknown uid is shown as its
// number. With the default /proc the producer's own user database answers
// (os/user, NSS included). With /proc mounted from a host elsewhere
// (PRODUCER_PROC_ROOT in a container), the container's database would name
// the host's users wrongly, so the host's /etc/passwd is read through its
// init process (ROOT/1/root/etc/passwd) instead, when readable.
func (c *Collector) userName(uid uint32) string {
	if n, ok := c.users[uid]; ok {
		return n
	}
	id := strconv.FormatUint(uint64(uid), 10)
	n := id
	if c.passwd != nil {
		if name, ok := c.passwd[uid]; ok {
			n = name
		}
	} else if u, err := user.LookupId(id); err == nil && u.Username != "" {
		n = cleanText([]byte(u.Username))
	}
	c.users[uid] = n
	return n
}

// readPasswd parses an /etc/passwd file into uid -> name; nil when it
// cannot be read.
func readPasswd(path string) map[uint32]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	m := make(map[uint32]string)
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		f := bytes.SplitN(line, []byte(":"), 4)
		if len(f) < 3 || len(f[0]) == 0 || f[0][0] == '#' {
			continue
		}
		if uid, err := parseUint(f[2]); err == nil && uid <= 1<<32-1 {
			if _, dup := m[uint32(uid)]; !dup {
				m[uint32(uid)] = cleanText(f[0])
			}
		}
	}
	return m
}

// intern returns a string equal to b, sharing one copy per distinct value so
// that wait channels and app names do not allocate per process per scan.
func (c *Collector) intern(b []byte) string {
	b = bytes.TrimSpace(b)
	if s, ok := c.strs[string(b)]; ok {
		return s
	}
	s := cleanText(b)
	if len(c.strs) < 1<<16 { // bound the table against odd input
		c.strs[s] = s
	}
	return s
}

func (c *Collector) internApp(b []byte) string { return c.intern(b) }

// cgroupApp derives the application of a process from /proc/PID/cgroup on
// cgroup v2 ("0::/path"), v1 ("N:controllers:/path") and hybrid hosts. The
// unified line wins when it places the process anywhere but the root
// (systemd's tracking hierarchy on v2 and hybrid); otherwise the
// name=systemd hierarchy, then the cpu, memory and pids controllers of v1.
// The application is the deepest ".service" or ".scope" component of the
// path (a systemd unit, a container scope, a session); a path without one
// is named by its last components, e.g. "docker/0123456789ab". A process
// in the root cgroup belongs to "/".
func cgroupApp(b []byte) []byte {
	var best []byte
	bestRank := 99
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		j := bytes.IndexByte(line[i+1:], ':')
		if j < 0 {
			continue
		}
		ctrls, path := line[i+1:i+1+j], line[i+2+j:]
		if _, err := parseUint(line[:i]); err != nil || len(path) < 2 || path[0] != '/' {
			continue // not a hierarchy line, or the root cgroup
		}
		rank := 99
		switch {
		case len(ctrls) == 0:
			rank = 0
		case bytes.Equal(ctrls, []byte("name=systemd")):
			rank = 1
		case hasController(ctrls, "cpu"):
			rank = 2
		case hasController(ctrls, "memory"):
			rank = 3
		case hasController(ctrls, "pids"):
			rank = 4
		default:
			rank = 5
		}
		if rank < bestRank {
			best, bestRank = path, rank
		}
	}
	if best == nil {
		return []byte("/")
	}
	return appFromPath(best)
}

func hasController(list []byte, name string) bool {
	for len(list) > 0 {
		item := list
		if i := bytes.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			list = nil
		}
		if string(item) == name {
			return true
		}
	}
	return false
}

// appFromPath picks the application name out of a cgroup path.
func appFromPath(path []byte) []byte {
	// A cgroup v1 path of a deleted cgroup ends in " (deleted)".
	path = bytes.TrimSuffix(path, []byte(" (deleted)"))
	path = bytes.TrimRight(path, "/")
	if len(path) == 0 {
		return []byte("/")
	}
	rest := path
	for len(rest) > 0 {
		i := bytes.LastIndexByte(rest, '/')
		comp := rest[i+1:]
		if bytes.HasSuffix(comp, []byte(".service")) || bytes.HasSuffix(comp, []byte(".scope")) {
			return shortenIDs(comp)
		}
		if i < 0 {
			break
		}
		rest = rest[:i]
	}
	// No unit: name it by the last two components ("docker/<id>",
	// "lxc/web1"), container ids cut to 12 hex digits as docker shows them.
	last := path
	if i := bytes.LastIndexByte(path, '/'); i >= 0 {
		last = path[i+1:]
		if j := bytes.LastIndexByte(path[:i], '/'); j >= 0 || i > 0 {
			last = path[j+1:]
		}
	}
	return shortenIDs(last)
}

// shortenIDs cuts a run of 64 hex digits (a container id) to its first 12.
func shortenIDs(b []byte) []byte {
	run := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'f' {
			run++
			if run == 64 && (i+1 == len(b) || !isHex(b[i+1])) {
				start := i + 1 - 64
				out := make([]byte, 0, len(b)-52)
				out = append(out, b[:start+12]...)
				return append(out, b[i+1:]...)
			}
			continue
		}
		run = 0
	}
	return b
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// unsafeString views b as a string without copying; b must not change while
// the string is in use.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
