// Package collect owns the reading of a Linux /proc tree into wire.Sample
// values: host CPU, load, pressure and memory, the process top with its
// "other" roll-up, application top (per cgroup application and per user),
// function top (per command and per kernel wait channel), the node status
// report and threshold events.
//
// # Cost model
//
// A scan's cost is the agent's cost, so every file read is justified by
// what it can change:
//
//   - For every process, every scan: /proc/PID/stat (CPU time, RSS, state,
//     threads, start time) and /proc/PID/schedstat (one short line). They
//     are read with openat(2) relative to a held directory descriptor into
//     reused buffers and parsed without allocation.
//   - Only when the process ran since the last scan (its CPU ticks or its
//     leader's schedstat run time moved, or it is new): /proc/PID/io, and
//     for a multi-threaded process the schedstat of each thread. A process
//     that did not run cannot have done IO or waited on a run queue (run
//     delay is accounted when a thread gets the CPU). Rates divide by the
//     time since the last actual read, so a short run hidden below the
//     clock-tick resolution delays bytes into a later sample, it never
//     loses them.
//   - Only when the leader ran or changed state: /proc/PID/wchan, since a
//     task that did not run still sleeps where it slept.
//   - Once per process life, keyed by (pid, start time), and again after an
//     exec (a comm change): /proc/PID/status (user) and /proc/PID/cgroup
//     (application). Every process needs them, because app_top groups all
//     processes.
//   - Only for the top set, every sample: the fd count; once per life: the
//     cmdline.
//
// On a kernel without schedstat (CONFIG_SCHED_INFO off) io and wchan are
// read for every process on every scan and run-queue wait is zero.
//
// # Semantics
//
// Rates are per interval between Sample calls and zero for a process first
// seen. A pid whose start time changed is a new process: nothing carries
// over. A counter that went backwards restarts its series at zero instead
// of producing a negative rate. CPU percentages of processes are of one CPU
// (a process may exceed 100); host CPU modes are of all CPUs, with nice in
// user and irq/softirq in system so the five modes add up to 100.
// Host.ProcsTotal is the number of processes listed (not threads).
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
// Events are raised once per crossing: suspect_rss when a process's RSS
// rises above Options.SuspectRSS (re-armed below 90% of it), max_procs
// when the process count rises above Options.MaxProcs (per-process
// collection then pauses, as the original's top_max_procs), oom_kill when
// the oom_kill counter of /proc/vmstat rises.
package collect
