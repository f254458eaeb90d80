package collect

import (
	"log/slog"
	"time"
)

// Defaults of Options; the config package documents the matching
// PRODUCER_* keys.
const (
	DefaultProcRoot      = "/proc"
	DefaultTopN          = 10
	DefaultSuspectRSS    = 524288000 // the original's suspect_procs_max_memory
	DefaultMaxProcs      = 15000     // the original's top_max_procs
	DefaultStatusTimeout = 2 * time.Second
	DefaultFunThreshold  = 0.01
)

// Options configure a Collector. Zero fields take the defaults above.
type Options struct {
	ProcRoot      string        // a /proc mount, default "/proc" (PRODUCER_PROC_ROOT)
	TopN          int           // processes per top category, default 10
	SuspectRSS    uint64        // RSS in bytes above which a suspect_rss event is raised
	MaxProcs      int           // process count above which per-process collection stops
	StatusCmd     string        // optional sh -c command whose output joins the node status
	StatusTimeout time.Duration // limit of one StatusCmd run
	// FunThreshold is the share of all processes (0..1) a command or wchan
	// must reach to get a fun_top row, like the original's
	// top_significance_threshold. Default 0.01.
	FunThreshold float64
	Now          func() time.Time
	Logger       *slog.Logger
}

// ScanStats counts what the last scan could and could not read.
type ScanStats struct {
	Listed     int // pid directories listed
	Vanished   int // exited between listing and reading
	Unreadable int // present but not readable (hidepid, permissions)
	IODenied   int // processes whose /proc/PID/io could not be read
}
