// Package collect owns the reading of a Linux /proc tree into wire.Sample
// values: host CPU, load, pressure and memory, the process top with its
// "other" roll-up, application top (per cgroup application and per user),
// function top (per command and per kernel wait channel), the node status
// report and threshold events.
//
// # Cost model
//
// A scan's cost is the agent's cost, and on Linux most of it is the
// kernel's: opening a /proc file (path lookup, pid lookup, dentry) costs
// about as much as generating its content. So every read is justified by
// what it can change:
//
//   - For every process, every scan, one file read through a descriptor
//     held open across scans and re-read with pread(2) from offset 0,
//     which skips the path lookup (measured here: 6.8 us against 14.6 us
//     for open+read+close of stat). For a multi-threaded process it is
//     /proc/PID/stat (CPU time, RSS, state, threads, start time). For a
//     single-threaded process (and kernel threads) it is the one-line
//     /proc/PID/schedstat (2.4 us): when its run time and run-queue wait
//     did not move, the task did not run, so nothing in its stat can have
//     changed but RSS shrinking under reclaim and the ppid after its parent
//     exits, and stat is read (by path) only when it ran, was runnable or
//     in disk sleep, or every 16th scan (a task left waiting on a run
//     queue for the whole interval without getting the CPU moves neither
//     figure; it too waits for that refresh). The descriptor is bound to the
//     process, not the pid number: once the process exits it fails with
//     ESRCH, so a reused pid is never read through it. At most a quarter of
//     RLIMIT_NOFILE (capped at 16384) descriptors are held; each costs the
//     kernel about 5 KiB (file plus seq_file page) charged to the
//     producer's cgroup, about 10 MiB at 2,000 processes. Fixture trees
//     (not procfs) are read by path.
//   - Only for an active process (new, CPU ticks moved, state changed, or
//     in state R or D): /proc/PID/schedstat (or each thread's, for a
//     multi-threaded process), /proc/PID/io and /proc/PID/wchan. A process
//     that did not run cannot have done IO, and run-queue wait is only
//     accounted when a thread gets the CPU. Rates divide by the time since
//     the figure was last read, so activity too short to move the tick
//     counter (10 ms) is reported late, spread over a longer interval,
//     never lost. Idle processes also get their wchan re-read every 16th
//     scan, since a short wake-up can move them to another wait channel.
//   - Once per process life, keyed by (pid, start time), and again after an
//     exec (a comm change): /proc/PID/status (user) and /proc/PID/cgroup
//     (application). Every process needs both, because app_top groups all
//     processes; a process moved to another cgroup after exec keeps its
//     first application.
//   - Only for the top set, every sample: the fd count (stat(2) of
//     /proc/PID/fd, whose size is the count since Linux 6.2; the directory
//     is counted on older kernels); once per life: the cmdline.
//
// Steady-state allocations are O(top set + applications): file names are
// built in a reused buffer and passed to openat(2) directly, contents land
// in reused buffers, comm and wchan strings are kept or interned.
//
// On a kernel without schedstat (CONFIG_SCHED_INFO off) run-queue wait is
// zero.
//
// # Semantics
//
// Rates are per interval between Sample calls. A process first seen is
// zero, except one born during the interval (start time after the previous
// scan): its counters started at zero within the interval, so it is
// charged them whole and short-lived work shows. A pid whose start time
// changed is a new process: nothing carries over. A counter that went
// backwards restarts its series at zero instead of producing a negative
// rate. CPU percentages of processes are of one CPU (a process may exceed
// 100); host CPU modes are of all CPUs, with nice in user and irq/softirq
// in system so the five modes add up to 100. Host.ProcsTotal is the number
// of processes listed (not threads).
//
// The "other" row (PID wire.OtherPID) sums the processes outside the top
// set. Its cpu_pct is the larger of that sum and the host's busy CPU (user,
// nice, system, irq, softirq, in % of one CPU) minus the top set, so that it
// also holds processes that exited during the interval and the rows add up
// to the host figure.
//
// Processes whose files cannot be read (hidepid=1, or an unreadable
// /proc/PID/io without CAP_SYS_PTRACE) are counted in Stats and in the node
// status, never fatal; with hidepid=2 they are invisible and cannot be
// counted. Cmdlines have NULs and control characters turned into spaces,
// invalid UTF-8 replaced by U+FFFD and are cut to wire.MaxCmdlineBytes at a
// character boundary. Kernel threads have an empty cmdline and the
// application "kernel".
//
// The node status is in every sample (a few hundred bytes); the optional
// status command runs in the background, at most one run at a time, each
// bounded by Options.StatusTimeout, and a sample carries the output of the
// last finished run, so a hung command never delays sampling.
//
// Events are raised once per crossing, from the second sample on (the
// first primes the rates and is commonly dropped, and its crossings must
// not be lost with it): suspect_rss when a process's RSS rises above
// Options.SuspectRSS (re-armed below 90% of it), max_procs when the
// process count rises above Options.MaxProcs (per-process collection then
// pauses, as the original's top_max_procs), oom_kill when the oom_kill
// counter of /proc/vmstat rises.
package collect
