package wire

import "time"

// Subprotocols negotiated on the WebSocket handshake. The producer offers
// both, binary first; the consumer picks the first it supports.
const (
	SubprotocolBinary = "sysmon.v1"
	SubprotocolJSON   = "sysmon.v1+json"
)

// WebSocket close codes used by the protocol (RFC 6455 section 7.4.1).
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002 // malformed frame or message
	ClosePolicyViolation = 1008 // node not allowed for this certificate, revoked certificate
	CloseMessageTooBig   = 1009 // frame over MaxMessageBytes
	CloseInternalError   = 1011
)

// Limits every decoder enforces before allocating. A consumer may lower them.
const (
	MaxMessageBytes    = 4 << 20 // one WebSocket message
	MaxSamplesPerBatch = 512
	MaxProcsPerSample  = 4096
	MaxRowsPerTable    = 8192    // app_top, fun_top and events rows in one sample
	MaxRowsPerMessage  = 1 << 17 // rows of all tables of all samples of one batch: bounds decoder memory
	MaxStringBytes     = 64 << 10
	MaxCmdlineBytes    = 4096 // collectors truncate cmdlines to this many bytes
)

// Message is one protocol message: *Hello, *Batch, *Ack or *Welcome.
type Message interface{ messageType() MessageType }

// MessageType identifies a message on the wire.
type MessageType uint8

const (
	TypeHello   MessageType = 1 // producer -> consumer, first message
	TypeWelcome MessageType = 2 // consumer -> producer, reply to hello
	TypeBatch   MessageType = 3 // producer -> consumer
	TypeAck     MessageType = 4 // consumer -> producer
)

// Hello opens a stream. A stream is one producer spool: the consumer dedupes
// batches by (Node, SpoolID, Seq), so a spool replayed after a crash or a
// reconnect is never stored twice.
type Hello struct {
	Node         string   `json:"node"`
	AgentVersion string   `json:"agent_version"`
	BootID       string   `json:"boot_id"`  // /proc/sys/kernel/random/boot_id
	SpoolID      string   `json:"spool_id"` // random id of the producer's spool, survives restarts
	Capabilities []string `json:"capabilities,omitempty"`
}

// Welcome answers a Hello. LastSeq is the highest sequence of this stream
// already durable at the consumer (0 if none), so the producer can drop what
// it still holds up to there without resending it.
type Welcome struct {
	ConsumerVersion string `json:"consumer_version"`
	LastSeq         uint64 `json:"last_seq"`
}

// Batch carries samples of one stream in time order. Seq numbers increase by
// one per batch over the life of the stream.
type Batch struct {
	Seq     uint64   `json:"seq"`
	Samples []Sample `json:"samples"`
}

// Ack tells the producer that every batch up to and including Seq is durable.
type Ack struct {
	Seq uint64 `json:"seq"`
}

func (*Hello) messageType() MessageType   { return TypeHello }
func (*Welcome) messageType() MessageType { return TypeWelcome }
func (*Batch) messageType() MessageType   { return TypeBatch }
func (*Ack) messageType() MessageType     { return TypeAck }

// TypeOf reports the wire type of m.
func TypeOf(m Message) MessageType { return m.messageType() }

// Sample is everything one scan of a host produced at one instant. Optional
// parts are nil when the collector could not or did not read them: absent is
// not zero.
type Sample struct {
	Time      time.Time   `json:"ts"`
	Host      *Host       `json:"host,omitempty"`
	Memory    *Memory     `json:"memory,omitempty"`
	Procs     []Proc      `json:"procs,omitempty"` // union of the top sets; an "other" roll-up last
	ProcsSeen uint32      `json:"procs_seen"`      // processes visible to the scan
	Apps      []AppTop    `json:"app_top,omitempty"`
	Funs      []FunTop    `json:"fun_top,omitempty"`
	Status    *NodeStatus `json:"status,omitempty"`
	Events    []Event     `json:"events,omitempty"`
}

// Host is CPU, load and scheduler state over the sample interval. CPU figures
// are percentages of all CPUs' time over the interval (0..100).
type Host struct {
	Load1        float64   `json:"load1"`
	Load5        float64   `json:"load5"`
	Load15       float64   `json:"load15"`
	CPUUser      float64   `json:"cpu_user"`
	CPUSystem    float64   `json:"cpu_system"`
	CPUIOWait    float64   `json:"cpu_iowait"`
	CPUIdle      float64   `json:"cpu_idle"`
	CPUSteal     float64   `json:"cpu_steal"`
	ProcsRunning uint32    `json:"procs_running"`
	ProcsBlocked uint32    `json:"procs_blocked"`
	ProcsTotal   uint32    `json:"procs_total"`
	Pressure     *Pressure `json:"pressure,omitempty"` // nil where the kernel has no PSI
}

// Pressure is Linux pressure stall information, avg10 percentages.
type Pressure struct {
	CPUSome    float64 `json:"cpu_some"`
	MemorySome float64 `json:"memory_some"`
	MemoryFull float64 `json:"memory_full"`
	IOSome     float64 `json:"io_some"`
	IOFull     float64 `json:"io_full"`
}

// Memory is host memory from /proc/meminfo, in bytes.
type Memory struct {
	Total     uint64 `json:"total"`
	Free      uint64 `json:"free"`
	Available uint64 `json:"available"`
	Buffers   uint64 `json:"buffers"`
	Cached    uint64 `json:"cached"`
	SwapTotal uint64 `json:"swap_total"`
	SwapFree  uint64 `json:"swap_free"`
}

// OtherPID marks the roll-up row that sums every process outside the top set,
// so that per-process totals reconcile with the host figures.
const OtherPID = -1

// Proc is one process in a sample's top set. A process is identified by
// (PID, StartTime); rates are computed against the previous sample of the
// same identity. A process first seen that started during the interval is
// charged its whole counters (so short-lived work shows); one first seen
// that is older starts at zero.
type Proc struct {
	PID         int32   `json:"pid"`
	StartTime   uint64  `json:"start_time"` // clock ticks after boot, /proc/PID/stat field 22
	Comm        string  `json:"comm"`
	Cmdline     string  `json:"cmdline"` // arguments joined by spaces, valid UTF-8, at most MaxCmdlineBytes
	State       string  `json:"state"`   // one letter: R S D Z T t X I
	PPID        int32   `json:"ppid"`
	User        string  `json:"user"`
	App         string  `json:"app"`           // cgroup application, e.g. "nginx.service"
	CPUPct      float64 `json:"cpu_pct"`       // of one CPU over the interval (may exceed 100)
	CPUTimeMs   uint64  `json:"cpu_time_ms"`   // user+system, cumulative
	RSS         uint64  `json:"rss"`           // bytes
	DRSS        int64   `json:"d_rss"`         // change of RSS over the interval, bytes
	VSZ         uint64  `json:"vsz"`           // bytes
	Threads     uint32  `json:"threads"`       //
	FDs         int32   `json:"fds"`           // -1 when unreadable
	ReadBps     float64 `json:"read_bps"`      // bytes/s from storage, /proc/PID/io read_bytes
	WriteBps    float64 `json:"write_bps"`     // bytes/s to storage, /proc/PID/io write_bytes
	RunqWaitPct float64 `json:"runq_wait_pct"` // time waiting on a run queue, % of the interval
	Wchan       string  `json:"wchan"`         // kernel function the task sleeps in, "" when running
}

// AppTop is one figure for one application. Group says how processes were
// grouped: "cgroup" or "user". Unit is "cpu" (percent of one CPU), "memory"
// (RSS bytes), "processes" (count) or "io" (bytes/s).
type AppTop struct {
	Group       string  `json:"group"`
	Application string  `json:"application"`
	Unit        string  `json:"unit"`
	Value       float64 `json:"value"`
}

// FunTop counts processes per command (FunType "command") or per kernel
// wait channel (FunType "wchan").
type FunTop struct {
	Fun          string `json:"fun"`
	FunType      string `json:"fun_type"`
	NumProcesses uint32 `json:"num_processes"`
}

// NodeStatus is the node status report stored in node_role.
type NodeStatus struct {
	Data string `json:"data"`
}

// Event is a threshold crossing or incident: kind is e.g. "suspect_rss",
// "max_procs", "oom_kill", "spool_shed".
type Event struct {
	Time    time.Time `json:"ts"`
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	Detail  string    `json:"detail"`
}
