package wire

// Field and column numbers of a batch (SPEC.md, "Batch"). Numbers are never
// reused; a new field takes a new number and old readers skip it.
const (
	batchSeq     = 1
	batchStrings = 2
	batchSample  = 3 // repeated, in time order

	sampleTime      = 1
	sampleHost      = 2
	sampleMemory    = 3
	sampleProcs     = 4
	sampleProcsSeen = 5
	sampleApps      = 6
	sampleFuns      = 7
	sampleStatus    = 8
	sampleEvents    = 9
	sampleMaxField  = 9

	hostLoad1        = 1
	hostLoad5        = 2
	hostLoad15       = 3
	hostCPUUser      = 4
	hostCPUSystem    = 5
	hostCPUIOWait    = 6
	hostCPUIdle      = 7
	hostCPUSteal     = 8
	hostProcsRunning = 9
	hostProcsBlocked = 10
	hostProcsTotal   = 11
	hostPressure     = 12

	pressureCPUSome    = 1
	pressureMemorySome = 2
	pressureMemoryFull = 3
	pressureIOSome     = 4
	pressureIOFull     = 5

	memTotal     = 1
	memFree      = 2
	memAvailable = 3
	memBuffers   = 4
	memCached    = 5
	memSwapTotal = 6
	memSwapFree  = 7

	statusData = 1

	// Every table: field 1 is the row count, the others are columns.
	tableCount = 1

	procRef = 2 // row of the previous sample's process table this row continues
)

// colKind says how a column's values are coded.
type colKind uint8

const (
	colInt  colKind = iota // zigzag(value - prediction) as uvarint
	colStr                 // zigzag(string id - predicted id) as uvarint
	colReal                // fixed-point or IEEE 754, no prediction
)

// procCol describes one column of the process table. Exactly one accessor
// group is set, according to kind.
type procCol struct {
	num  uint64
	kind colKind
	get  func(*Proc) uint64
	set  func(*Proc, uint64) bool // false when the value is out of the field's range
	str  func(*Proc) *string
	sidx int // index of the column's string ids in encoder/decoder scratch
	real func(*Proc) *float64
}

const numProcStrCols = 6

// procCols lists the process table's columns in the order they are written.
// The pid column comes first among data columns and is always written, so a
// table carries at least one byte per row (the decoder's allocation bound).
var procCols = [...]procCol{
	{num: 3, kind: colInt, get: func(p *Proc) uint64 { return uint64(int64(p.PID)) }, set: setInt32(func(p *Proc) *int32 { return &p.PID })},
	{num: 4, kind: colInt, get: func(p *Proc) uint64 { return p.StartTime }, set: func(p *Proc, v uint64) bool { p.StartTime = v; return true }},
	{num: 5, kind: colStr, str: func(p *Proc) *string { return &p.Comm }, sidx: 0},
	{num: 6, kind: colStr, str: func(p *Proc) *string { return &p.Cmdline }, sidx: 1},
	{num: 7, kind: colStr, str: func(p *Proc) *string { return &p.State }, sidx: 2},
	{num: 8, kind: colInt, get: func(p *Proc) uint64 { return uint64(int64(p.PPID)) }, set: setInt32(func(p *Proc) *int32 { return &p.PPID })},
	{num: 9, kind: colStr, str: func(p *Proc) *string { return &p.User }, sidx: 3},
	{num: 10, kind: colStr, str: func(p *Proc) *string { return &p.App }, sidx: 4},
	{num: 11, kind: colReal, real: func(p *Proc) *float64 { return &p.CPUPct }},
	{num: 12, kind: colInt, get: func(p *Proc) uint64 { return p.CPUTimeMs }, set: func(p *Proc, v uint64) bool { p.CPUTimeMs = v; return true }},
	{num: 13, kind: colInt, get: func(p *Proc) uint64 { return p.RSS }, set: func(p *Proc, v uint64) bool { p.RSS = v; return true }},
	{num: 14, kind: colInt, get: func(p *Proc) uint64 { return uint64(p.DRSS) }, set: func(p *Proc, v uint64) bool { p.DRSS = int64(v); return true }},
	{num: 15, kind: colInt, get: func(p *Proc) uint64 { return p.VSZ }, set: func(p *Proc, v uint64) bool { p.VSZ = v; return true }},
	{num: 16, kind: colInt, get: func(p *Proc) uint64 { return uint64(p.Threads) }, set: func(p *Proc, v uint64) bool {
		if v > 1<<32-1 {
			return false
		}
		p.Threads = uint32(v)
		return true
	}},
	{num: 17, kind: colInt, get: func(p *Proc) uint64 { return uint64(int64(p.FDs)) }, set: setInt32(func(p *Proc) *int32 { return &p.FDs })},
	{num: 18, kind: colReal, real: func(p *Proc) *float64 { return &p.ReadBps }},
	{num: 19, kind: colReal, real: func(p *Proc) *float64 { return &p.WriteBps }},
	{num: 20, kind: colReal, real: func(p *Proc) *float64 { return &p.RunqWaitPct }},
	{num: 21, kind: colStr, str: func(p *Proc) *string { return &p.Wchan }, sidx: 5},
}

// procMaxCol is the highest process column number this version knows.
const procMaxCol = 21

func setInt32(f func(*Proc) *int32) func(*Proc, uint64) bool {
	return func(p *Proc, v uint64) bool {
		s := int64(v)
		if s < -1<<31 || s > 1<<31-1 {
			return false
		}
		*f(p) = int32(s)
		return true
	}
}

// Columns of the small tables. The first column of each is always written.
const (
	appGroup       = 2
	appApplication = 3
	appUnit        = 4
	appValue       = 5
	appMaxCol      = 5

	funFun          = 2
	funFunType      = 3
	funNumProcesses = 4
	funMaxCol       = 4

	eventTime    = 2 // nanoseconds, predicted by the previous event (the sample's time for the first)
	eventKind    = 3
	eventSubject = 4
	eventDetail  = 5
	eventMaxCol  = 5
)
