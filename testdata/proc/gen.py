#!/usr/bin/env python3
"""Writes the fixture /proc trees testdata/proc/scan/t1 and t2: two scans of
one small host two seconds apart, holding the awkward cases the collector
must get right. pkg/collect/fixture_test.go asserts values derived by hand
from the numbers below; change both together. Run from this directory."""
import os, shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "scan")

def w(path, data, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)

def stat_line(pid, comm, state, ppid, flags, utime, stime, threads, start, vsize, rss):
    # 52 fields as in proc(5); unused ones are plausible constants.
    f = [str(pid), "(" + comm + ")", state, str(ppid), str(pid), str(pid), "0", "-1",
         str(flags), "100", "0", "0", "0", str(utime), str(stime), "0", "0", "20", "0",
         str(threads), "0", str(start), str(vsize), str(rss)]
    f += ["18446744073709551615", "1", "1", "0", "0", "0", "0", "0", "0", "0", "0", "0",
          "0", "17", "1", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0"]
    assert len(f) == 52
    return " ".join(f) + "\n"

V2 = "0::{}\n"
V1 = ("12:pids:/docker/{id}\n11:memory:/docker/{id}\n4:cpu,cpuacct:/docker/{id}\n"
      "1:name=systemd:/docker/{id}\n")
HYBRID = ("9:name=systemd:/system.slice/postgresql@15-main.service\n"
          "4:memory:/system.slice/postgresql@15-main.service\n"
          "0::/system.slice/postgresql@15-main.service\n")
DOCKER_ID = "0123456789abcdef" * 4

def proc(root, pid, comm, *, state="S", ppid=1, flags=4194560, ticks=(0, 0), threads=1,
         start=100, vsize=10 << 20, rss=256, sched=(0, 0), io=(0, 0), uid=0,
         cgroup="0::/\n", cmdline=b"", wchan="do_sys_poll", fds=3, tasks=None,
         io_dir=False, stat_dir=False):
    d = os.path.join(root, str(pid))
    os.makedirs(d, exist_ok=True)
    if stat_dir:
        # Root reads through any mode, so an unreadable file is stood in
        # for by a directory: reading it fails with EISDIR, like EACCES a
        # failure other than "gone".
        w(os.path.join(d, "stat", ".keep"), "")
    else:
        w(os.path.join(d, "stat"), stat_line(pid, comm, state, ppid, flags, ticks[0], ticks[1],
                                             threads, start, vsize, rss))
    w(os.path.join(d, "schedstat"), "%d %d 10\n" % sched)
    if io_dir:
        w(os.path.join(d, "io", ".keep"), "")
    else:
        w(os.path.join(d, "io"), "rchar: 0\nwchar: 0\nsyscr: 0\nsyscw: 0\nread_bytes: %d\n"
          "write_bytes: %d\ncancelled_write_bytes: 0\n" % io)
    w(os.path.join(d, "status"), "Name:\t%s\nUmask:\t0022\nState:\t%s\nTgid:\t%d\nPid:\t%d\n"
      "PPid:\t%d\nUid:\t%d\t%d\t%d\t%d\nGid:\t0\t0\t0\t0\n" % (comm, state, pid, pid, ppid, uid, uid, uid, uid))
    w(os.path.join(d, "cgroup"), cgroup)
    w(os.path.join(d, "cmdline"), cmdline, "wb")
    w(os.path.join(d, "wchan"), wchan)
    for i in range(fds):
        w(os.path.join(d, "fd", str(i)), "")
    if fds == 0:
        # git keeps no empty directory; the collector skips dot files.
        w(os.path.join(d, "fd", ".keep"), "")
    for tid, s in (tasks or {}).items():
        w(os.path.join(d, "task", str(tid), "schedstat"), "%d %d 5\n" % s)

def host(root, *, cpu, oom, running, uptime):
    w(os.path.join(root, "stat"),
      "cpu  %d %d %d %d %d %d %d %d 0 0\n" % cpu +
      "cpu0 0 0 0 0 0 0 0 0 0 0\nintr 0\nctxt 100\nbtime 1764720000\nprocesses 5000\n"
      "procs_running %d\nprocs_blocked 1\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n" % running)
    w(os.path.join(root, "meminfo"),
      "MemTotal:        8000000 kB\nMemFree:         1000000 kB\nMemAvailable:    4000000 kB\n"
      "Buffers:          100000 kB\nCached:          2000000 kB\nSwapCached:            0 kB\n"
      "SwapTotal:       1000000 kB\nSwapFree:         900000 kB\n")
    w(os.path.join(root, "loadavg"), "1.50 0.75 0.25 3/140 9999\n")
    w(os.path.join(root, "uptime"), "%.2f 180000.00\n" % uptime)
    w(os.path.join(root, "vmstat"), "nr_free_pages 250000\noom_kill %d\npgfault 100\n" % oom)
    w(os.path.join(root, "sys/kernel/hostname"), "fixture-host\n")
    w(os.path.join(root, "sys/kernel/osrelease"), "6.1.0-fixture\n")
    w(os.path.join(root, "sys/kernel/random/boot_id"), "4a2f7c1e-0d1b-4c55-9a9e-5d3c2b1a0f99\n")
    # No pressure/ directory: PSI is absent on this host.

LONG = b"java\0" + b"-Dx=" + b"a" * 10000 + b"\0"
NONUTF8 = b"python3\0-c\0print('\xff\xfe')\0\0"

def tree(name, t):
    root = os.path.join(ROOT, name)
    host(root,
         cpu=(10000 + 300 * t, 500 + 20 * t, 3000 + 100 * t, 80000 + 500 * t, 200 + 40 * t,
              50 + 10 * t, 50 + 10 * t, 0 + 20 * t),
         oom=3 + 2 * t, running=3, uptime=93784.12 + 2 * t)
    # The host's user database as seen through its init process.
    w(os.path.join(root, "1", "root", "etc", "passwd"),
      "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    proc(root, 1, "systemd", ppid=0, ticks=(500, 300), start=1, cgroup=V2.format("/init.scope"),
         cmdline=b"/sbin/init\0splash\0", wchan="ep_poll", sched=(8 * 10**9, 10**8))
    proc(root, 2, "kthreadd", ppid=0, flags=0x00208040, start=2, rss=0, vsize=0,
         cgroup="0::/\n", wchan="kthreadd", fds=0)
    # Busy process with a hostile comm: 90% CPU and 10% run-queue wait.
    proc(root, 100, "x) (y z", state="R", ticks=(1000 + 160 * t, 100 + 20 * t), start=5000,
         sched=(50 * 10**9 + 18 * 10**8 * t, 10**9 + 2 * 10**8 * t), uid=65534,
         cgroup=V2.format("/system.slice/weird.service"), cmdline=b"./x) (y z\0--spin\0", wchan="0")
    proc(root, 200, "defunct-child", state="Z", ppid=100, start=6000, rss=0, vsize=0,
         cgroup=V2.format("/system.slice/weird.service"), wchan="0", fds=0)
    # Reused pid: t2 holds another process (new start time, fewer ticks).
    if t == 0:
        proc(root, 300, "old-worker", ticks=(400, 100), start=7000, rss=1000, sched=(5 * 10**9, 10**8),
             io=(10**9, 10**9), cgroup=V2.format("/system.slice/worker.service"), cmdline=b"old-worker\0")
    else:
        proc(root, 300, "new-worker", ticks=(10, 10), start=9000, rss=100, sched=(2 * 10**8, 10**6),
             io=(1000, 0), cgroup=V2.format("/system.slice/worker.service"), cmdline=b"new-worker\0")
    # Counters that go backwards (same start time).
    proc(root, 400, "backwards", ticks=(800 - 100 * t, 0), start=7100, rss=500,
         sched=(9 * 10**9 - 10**9 * t, 5 * 10**8 - 10**8 * t), io=(5000 - 4000 * t, 5000 - 4000 * t),
         uid=4242, cgroup=V2.format("/user.slice/user-4242.slice/session-7.scope"), cmdline=b"backwards\0")
    # Vanished: listed, but its files are gone by the time they are read.
    if t == 1:
        w(os.path.join(root, "500", ".keep"), "")
    else:
        proc(root, 500, "short-lived", start=7200, cmdline=b"short-lived\0")
    # NUL-separated cmdline with bytes that are not UTF-8; reads 4 MB in 2 s.
    proc(root, 600, "python3", ticks=(100 + 10 * t, 0), start=7300, sched=(10**9 + 10**8 * t, 0),
         io=(4 * 10**6 * t, 0), cgroup=V1.format(id=DOCKER_ID), cmdline=NONUTF8)
    # Very long cmdline, and RSS above the suspect limit (600 MB).
    proc(root, 700, "java", start=7400, rss=153600,
         vsize=4 << 30, cgroup=HYBRID, cmdline=LONG, threads=1)
    # Unreadable stat (hidepid=1 style).
    proc(root, 800, "secret", start=7500, stat_dir=True)
    # Unreadable /proc/PID/io; runs, so the collector tries it.
    proc(root, 900, "noio", ticks=(10 + 10 * t, 0), start=7600, sched=(10**8 + 10**8 * t, 0),
         io_dir=True, cgroup=V2.format("/system.slice/noio.service"), cmdline=b"noio\0")
    # Two threads: run-queue wait is the sum over task/*/schedstat.
    proc(root, 1300, "threaded", ticks=(100 + 40 * t, 0), threads=2, start=7700,
         sched=(10**9 + 2 * 10**8 * t, 10**8),
         tasks={1300: (10**9 + 2 * 10**8 * t, 10**8 + 10**8 * t),
                1301: (10**9 + 2 * 10**8 * t, 10**8 + 3 * 10**8 * t)},
         cgroup=V2.format("/system.slice/threaded.service"), cmdline=b"threaded\0")
    # Born between the scans (start time after the first scan's uptime,
    # 9378412 ticks): charged its whole counters, 0.6 s of CPU in 2 s.
    if t == 1:
        proc(root, 1500, "cc1", state="S", ticks=(50, 10), start=9378500, sched=(6 * 10**8, 2 * 10**8),
             io=(0, 10**6), cgroup=V2.format("/system.slice/build.service"), cmdline=b"cc1\0-O2\0")
    # A second python3, so that fun_top has a command row.
    proc(root, 1400, "python3", start=7800, cmdline=b"python3\0-m\0http.server\0",
         cgroup=V2.format("/system.slice/noio.service"))

if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    tree("t1", 0)
    tree("t2", 1)
