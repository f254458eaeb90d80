//go:build linux

package collect

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// procDir reads files under a /proc root without allocating: paths are
// built in a reused buffer and passed to openat(2) relative to a directory
// descriptor held for the collector's life, and contents land in
// caller-owned buffers. os.ReadFile costs an allocation for the path, one
// for the *os.File and two fstat calls per file; at a few thousand processes
// per scan that is most of the budget.
type procDir struct {
	fd    int
	path  []byte
	dents []byte
}

func openProcDir(root string) (*procDir, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open proc root %s: %w", root, err)
	}
	return &procDir{fd: fd, path: make([]byte, 0, 64), dents: make([]byte, 32<<10)}, nil
}

func (d *procDir) close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// setPath stores "pid/name" (or just name when pid < 0) NUL-terminated in
// d.path.
func (d *procDir) setPath(pid int32, name string) {
	p := d.path[:0]
	if pid >= 0 {
		p = appendInt(p, int64(pid))
		if name != "" {
			p = append(p, '/')
		}
	}
	p = append(p, name...)
	p = append(p, 0)
	d.path = p
}

// openat opens d.path relative to the root with the raw system call so the
// NUL-terminated path needs no conversion (and no allocation).
func (d *procDir) openat(flags int) (int, error) {
	for {
		r, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(d.fd),
			uintptr(unsafe.Pointer(&d.path[0])), uintptr(flags|unix.O_CLOEXEC), 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return -1, errno
		}
		return int(r), nil
	}
}

// readFile reads pid/name into buf and returns the filled prefix. A file
// larger than buf is truncated to len(buf) bytes: callers size buf for the
// part they need.
func (d *procDir) readFile(pid int32, name string, buf []byte) ([]byte, error) {
	fd, err := d.open(pid, name)
	if err != nil {
		return nil, err
	}
	b, err := preadAll(fd, buf)
	unix.Close(fd)
	return b, err
}

// open opens pid/name for reading.
func (d *procDir) open(pid int32, name string) (int, error) {
	d.setPath(pid, name)
	return d.openat(unix.O_RDONLY)
}

// preadAll reads the file behind fd from offset 0 into buf. A /proc file
// produces its whole content on each read from offset 0, which is what
// lets the collector keep a process's stat open and read it again every
// scan instead of paying the path lookup each time. A read that returns
// less than asked for is taken as the end: /proc files (and the regular
// files of fixture trees) return all they have in one read, which saves
// the extra read that would only return 0.
func preadAll(fd int, buf []byte) ([]byte, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		n += m
		if m == 0 || n < len(buf) {
			break
		}
	}
	return buf[:n], nil
}

// readDir calls fn with each entry name of pid/name (or the root itself
// when pid < 0 and name is "."). The name slice is only valid during the
// call. "." and ".." are skipped.
func (d *procDir) readDir(pid int32, name string, fn func(name []byte, typ byte)) error {
	d.setPath(pid, name)
	fd, err := d.openat(unix.O_RDONLY | unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Getdents(fd, d.dents)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		parseDirents(d.dents[:n], fn)
	}
}

// parseDirents walks linux_dirent64 records: ino u64, off i64, reclen u16,
// type u8, then the NUL-terminated name.
func parseDirents(b []byte, fn func(name []byte, typ byte)) {
	for len(b) >= 19 {
		reclen := int(b[16]) | int(b[17])<<8
		if reclen < 19 || reclen > len(b) {
			return
		}
		typ := b[18]
		name := b[19:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		b = b[reclen:]
		if len(name) == 1 && name[0] == '.' || len(name) == 2 && name[0] == '.' && name[1] == '.' {
			continue
		}
		fn(name, typ)
	}
}

// fdCount returns the number of open descriptors of pid. Since Linux 6.2
// stat(2) of /proc/PID/fd reports it as the size, which costs the same for
// a process with 100,000 sockets as for one with three; where the size is
// 0 (older kernels, or truly no descriptors) the directory is counted.
// statSize is false for fixture trees, whose directories have a block size.
func (d *procDir) fdCount(pid int32, statSize bool) (int, error) {
	if statSize {
		d.setPath(pid, "fd")
		var st unix.Stat_t
		_, _, errno := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(d.fd),
			uintptr(unsafe.Pointer(&d.path[0])), uintptr(unsafe.Pointer(&st)), 0, 0, 0)
		if errno != 0 {
			return 0, errno
		}
		if st.Size > 0 {
			return int(st.Size), nil
		}
	}
	return d.countDir(pid, "fd")
}

// countDir returns the number of entries of pid/name.
func (d *procDir) countDir(pid int32, name string) (int, error) {
	n := 0
	err := d.readDir(pid, name, func(name []byte, _ byte) {
		// /proc has no dot files; fixture trees use them to keep
		// otherwise empty directories in git.
		if name[0] != '.' {
			n++
		}
	})
	return n, err
}

// gone reports whether err means the process exited (or the pid directory
// never existed) as opposed to a permission or other failure.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}
