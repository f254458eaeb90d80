package collect

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/sysmon/sysmon/pkg/wire"
)

// Collector turns scans of a /proc tree into samples. Rates are computed
// between consecutive Sample calls, which are serialized; Close may be
// called from any goroutine.
type Collector struct {
	opts      Options
	fs        procfs.FS
	dir       *procDir
	log       *slog.Logger
	statusRun *statusRunner

	mu sync.Mutex // guards dir against Close during Sample

	pageSize uint64
	scanGen  uint32
	procs    map[int32]*proc
	seen     []*proc // processes of the current scan, reused
	top      []*proc // union of the top sets, reused
	best     []*proc // one category's top, reused
	pids     []int32
	tids     []int32
	taskPath []byte
	users    map[uint32]string
	passwd   map[uint32]string // the host's /etc/passwd when ProcRoot is not /proc
	strs     map[string]string // interned wait channels and app names
	appAgg   map[appKey]appAgg
	funCmd   map[string]uint32
	funWchan map[string]uint32

	// Scratch buffers reused by every scan.
	statBuf  []byte
	smallBuf []byte
	bigBuf   []byte

	prevTime    time.Time
	uptimeTicks uint64 // time since boot at this scan, clock ticks
	prevUptime  uint64 // and at the previous scan (0: none)
	prevCPU     *procfs.CPUStat
	hostBusy    float64 // host CPU busy over the interval, % of one CPU (0: unknown)
	prevOOM     uint64
	haveOOM     bool
	overMax     bool
	schedstat   bool // kernel has /proc/PID/schedstat (CONFIG_SCHED_INFO)
	procfs      bool // the root is a procfs mount, not a fixture tree
	held        int  // stat descriptors held open
	maxHeld     int
	lastStats   ScanStats
	hostname    string
	kernel      string
}

// New checks that opts.ProcRoot is a readable /proc and returns a
// Collector. It fails when the root cannot be opened or has no stat file.
func New(opts Options) (*Collector, error) {
	if opts.ProcRoot == "" {
		opts.ProcRoot = DefaultProcRoot
	}
	if opts.TopN <= 0 {
		opts.TopN = DefaultTopN
	}
	// The union of the five categories plus the roll-up must fit the
	// wire's per-sample limit, or the consumer would refuse the batch.
	opts.TopN = min(opts.TopN, (wire.MaxProcsPerSample-1)/len(categories))
	if opts.SuspectRSS == 0 {
		opts.SuspectRSS = DefaultSuspectRSS
	}
	if opts.MaxProcs <= 0 {
		opts.MaxProcs = DefaultMaxProcs
	}
	if opts.StatusTimeout <= 0 {
		opts.StatusTimeout = DefaultStatusTimeout
	}
	if opts.FunThreshold <= 0 {
		opts.FunThreshold = DefaultFunThreshold
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	fs, err := procfs.NewFS(opts.ProcRoot)
	if err != nil {
		return nil, fmt.Errorf("proc root %s: %w", opts.ProcRoot, err)
	}
	if _, err := os.Stat(filepath.Join(opts.ProcRoot, "stat")); err != nil {
		return nil, fmt.Errorf("proc root %s is not a /proc mount: %w", opts.ProcRoot, err)
	}
	dir, err := openProcDir(opts.ProcRoot)
	if err != nil {
		return nil, err
	}
	c := &Collector{
		opts:     opts,
		fs:       fs,
		dir:      dir,
		log:      opts.Logger,
		pageSize: uint64(os.Getpagesize()),
		procs:    make(map[int32]*proc),
		users:    make(map[uint32]string),
		strs:     make(map[string]string),
		appAgg:   make(map[appKey]appAgg),
		funCmd:   make(map[string]uint32),
		funWchan: make(map[string]uint32),
		statBuf:  make([]byte, 2048),
		smallBuf: make([]byte, 512),
		bigBuf:   make([]byte, 8192),
		hostname: HostName(opts.ProcRoot),
		kernel:   readTrim(filepath.Join(opts.ProcRoot, "sys/kernel/osrelease")),
	}
	_, err = os.Stat(filepath.Join(opts.ProcRoot, "self/schedstat"))
	if err != nil {
		// A fixture tree has no "self": look at pid 1 instead.
		_, err = os.Stat(filepath.Join(opts.ProcRoot, "1/schedstat"))
	}
	c.schedstat = err == nil
	// Holding a file open and reading it again only shows fresh content
	// on procfs; a fixture tree (or a copy of /proc) is read by path.
	var sfs unix.Statfs_t
	if err := unix.Statfs(opts.ProcRoot, &sfs); err == nil && sfs.Type == unix.PROC_SUPER_MAGIC {
		c.procfs = true
		c.maxHeld = maxHeldFDs()
	}
	if filepath.Clean(opts.ProcRoot) != DefaultProcRoot {
		c.passwd = readPasswd(filepath.Join(opts.ProcRoot, "1/root/etc/passwd"))
	}
	if opts.StatusCmd != "" {
		c.statusRun = newStatusRunner(opts.StatusCmd, opts.StatusTimeout, opts.Logger)
	}
	return c, nil
}

// Close stops a running status command and releases the /proc descriptor.
func (c *Collector) Close() error {
	if c.statusRun != nil {
		c.statusRun.close()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forget()
	return c.dir.close()
}

// maxHeldFDs bounds the descriptors held open: a quarter of the
// descriptor limit, at most 16384. Each costs the kernel about 5 KiB (the
// file and its seq_file page), charged to the producer's cgroup; past the
// bound, processes are read by path as usual.
func maxHeldFDs() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int(min(rl.Cur/4, 16384))
}

// Stats returns the counters of the last scan.
func (c *Collector) Stats() ScanStats { return c.lastStats }

// Sample scans once and returns a sample. Rates (cpu%, d_rss, IO bytes/s,
// run-queue wait, host CPU modes) are over the time since the previous
// call; on the first call they are zero. Parts that cannot be read are left
// nil and logged; Sample fails only when the process list itself cannot be
// read or ctx is done.
func (c *Collector) Sample(ctx context.Context) (*wire.Sample, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir.fd < 0 {
		return nil, fmt.Errorf("sample: collector closed")
	}
	now := c.opts.Now()
	s := &wire.Sample{Time: now.UTC()}
	var dt time.Duration
	if !c.prevTime.IsZero() {
		dt = now.Sub(c.prevTime)
	}

	host, err := c.readHost()
	if err != nil {
		c.log.Warn("read host figures", "err", err)
	}
	s.Host = host
	if s.Memory, err = c.readMemory(); err != nil {
		c.log.Warn("read meminfo", "err", err)
	}

	if err := c.scan(ctx, now, dt, s); err != nil {
		return nil, err
	}
	if s.Host != nil {
		s.Host.ProcsTotal = uint32(c.lastStats.Listed - c.lastStats.Vanished)
	}
	c.oomEvents(now, s)
	s.Status = c.status(s)
	c.prevTime = now
	return s, nil
}

// HostName returns the kernel's host name read under procRoot
// (sys/kernel/hostname), falling back to os.Hostname. The kernel answers
// for the reader's UTS namespace, so a producer in a container reports the
// host's name only when it shares the host's (docker --uts=host); otherwise
// set PRODUCER_NODE.
func HostName(procRoot string) string {
	if h := readTrim(filepath.Join(procRoot, "sys/kernel/hostname")); h != "" {
		return h
	}
	h, _ := os.Hostname()
	return h
}

// BootID returns sys/kernel/random/boot_id under procRoot, or "" when it
// cannot be read.
func BootID(procRoot string) string {
	return readTrim(filepath.Join(procRoot, "sys/kernel/random/boot_id"))
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return cleanText([]byte(strings.TrimSpace(string(b))))
}
