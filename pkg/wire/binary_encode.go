package wire

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// encoder holds the scratch state of one Append of a batch. It is pooled and
// its maps and slices keep their capacity, so that encoding the next batch
// into a reused buffer allocates nothing.
type encoder struct {
	ids  map[string]uint32 // interned string -> id (1-based; 0 is "")
	strs []string          // strs[id-1], as written to the string table

	refs    []int32           // per row of the current sample: row in the previous sample or -1
	prevIdx map[procKey]int32 // (pid, start time) -> row of the previous sample, built on demand
	// String ids of the process table's string columns for the current and
	// the previous sample: the predictions of the next sample's ids.
	cur, prev [numProcStrCols][]uint32
}

type procKey struct {
	pid   int32
	start uint64
}

func newEncoder() *encoder {
	return &encoder{ids: make(map[string]uint32), prevIdx: make(map[procKey]int32)}
}

// release drops references to the caller's strings before pooling.
func (e *encoder) release() {
	clear(e.ids)
	clear(e.strs)
	e.strs = e.strs[:0]
	clear(e.prevIdx)
}

// encString returns s as it is put on the wire: invalid UTF-8 replaced by
// U+FFFD byte by byte, as encoding/json does, so both codecs carry the same
// text; over MaxStringBytes is an error.
func encString(s string) (string, error) {
	if !utf8.ValidString(s) {
		b := make([]byte, 0, len(s)+8)
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, s[i:i+n]...)
			}
			i += n
		}
		s = string(b)
	}
	if len(s) > MaxStringBytes {
		return "", fmt.Errorf("string of %d bytes: %w", len(s), ErrTooBig)
	}
	return s, nil
}

func (e *encoder) intern(s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	if id, ok := e.ids[s]; ok {
		return id, nil
	}
	w, err := encString(s)
	if err != nil {
		return 0, err
	}
	e.strs = append(e.strs, w)
	id := uint32(len(e.strs))
	e.ids[s] = id
	return id, nil
}

func (e *encoder) appendBatch(dst []byte, m *Batch) ([]byte, error) {
	dst = appendVarintField(dst, batchSeq, m.Seq)
	var prevT uint64
	var prevProcs []Proc
	start := len(dst)
	for i := range m.Samples {
		s := &m.Samples[i]
		dst = appendKey(dst, batchSample, wtBytes)
		at := len(dst)
		var err error
		dst, err = e.appendSample(dst, s, prevT, prevProcs)
		if err != nil {
			return dst, fmt.Errorf("sample %d: %w", i, err)
		}
		dst = finishLen(dst, at)
		// Stop early rather than build a huge buffer the peer will refuse.
		if len(dst)-start > MaxMessageBytes {
			return dst, fmt.Errorf("over %d bytes at sample %d: %w", MaxMessageBytes, i, ErrTooBig)
		}
		prevT = uint64(s.Time.UnixNano())
		prevProcs = s.Procs
		e.cur, e.prev = e.prev, e.cur
	}
	if len(e.strs) > 0 {
		dst = appendKey(dst, batchStrings, wtBytes)
		at := len(dst)
		dst = binary.AppendUvarint(dst, uint64(len(e.strs)))
		for _, s := range e.strs {
			dst = binary.AppendUvarint(dst, uint64(len(s)))
			dst = append(dst, s...)
		}
		dst = finishLen(dst, at)
	}
	return dst, nil
}

func (e *encoder) appendSample(dst []byte, s *Sample, prevT uint64, prevProcs []Proc) ([]byte, error) {
	t := uint64(s.Time.UnixNano())
	dst = appendVarintField(dst, sampleTime, zigzag(int64(t-prevT)))
	if h := s.Host; h != nil {
		dst = appendKey(dst, sampleHost, wtBytes)
		at := len(dst)
		dst = appendHost(dst, h)
		dst = finishLen(dst, at)
	}
	if mem := s.Memory; mem != nil {
		dst = appendKey(dst, sampleMemory, wtBytes)
		at := len(dst)
		dst = appendVarintField(dst, memTotal, mem.Total)
		dst = appendVarintField(dst, memFree, mem.Free)
		dst = appendVarintField(dst, memAvailable, mem.Available)
		dst = appendVarintField(dst, memBuffers, mem.Buffers)
		dst = appendVarintField(dst, memCached, mem.Cached)
		dst = appendVarintField(dst, memSwapTotal, mem.SwapTotal)
		dst = appendVarintField(dst, memSwapFree, mem.SwapFree)
		dst = finishLen(dst, at)
	}
	var err error
	if len(s.Procs) > 0 {
		dst = appendKey(dst, sampleProcs, wtBytes)
		at := len(dst)
		if dst, err = e.appendProcs(dst, s.Procs, prevProcs); err != nil {
			return dst, err
		}
		dst = finishLen(dst, at)
	} else {
		// Nothing to predict the next sample's rows from.
		for c := range e.cur {
			e.cur[c] = e.cur[c][:0]
		}
	}
	dst = appendVarintField(dst, sampleProcsSeen, uint64(s.ProcsSeen))
	if len(s.Apps) > 0 {
		dst = appendKey(dst, sampleApps, wtBytes)
		at := len(dst)
		if dst, err = e.appendApps(dst, s.Apps); err != nil {
			return dst, err
		}
		dst = finishLen(dst, at)
	}
	if len(s.Funs) > 0 {
		dst = appendKey(dst, sampleFuns, wtBytes)
		at := len(dst)
		if dst, err = e.appendFuns(dst, s.Funs); err != nil {
			return dst, err
		}
		dst = finishLen(dst, at)
	}
	if st := s.Status; st != nil {
		id, err := e.intern(st.Data)
		if err != nil {
			return dst, err
		}
		dst = appendKey(dst, sampleStatus, wtBytes)
		at := len(dst)
		dst = appendVarintField(dst, statusData, uint64(id))
		dst = finishLen(dst, at)
	}
	if len(s.Events) > 0 {
		dst = appendKey(dst, sampleEvents, wtBytes)
		at := len(dst)
		if dst, err = e.appendEvents(dst, s.Events, t); err != nil {
			return dst, err
		}
		dst = finishLen(dst, at)
	}
	return dst, nil
}

func appendHost(dst []byte, h *Host) []byte {
	dst = appendRealField(dst, hostLoad1, h.Load1)
	dst = appendRealField(dst, hostLoad5, h.Load5)
	dst = appendRealField(dst, hostLoad15, h.Load15)
	dst = appendRealField(dst, hostCPUUser, h.CPUUser)
	dst = appendRealField(dst, hostCPUSystem, h.CPUSystem)
	dst = appendRealField(dst, hostCPUIOWait, h.CPUIOWait)
	dst = appendRealField(dst, hostCPUIdle, h.CPUIdle)
	dst = appendRealField(dst, hostCPUSteal, h.CPUSteal)
	dst = appendVarintField(dst, hostProcsRunning, uint64(h.ProcsRunning))
	dst = appendVarintField(dst, hostProcsBlocked, uint64(h.ProcsBlocked))
	dst = appendVarintField(dst, hostProcsTotal, uint64(h.ProcsTotal))
	if p := h.Pressure; p != nil {
		dst = appendKey(dst, hostPressure, wtBytes)
		at := len(dst)
		dst = appendRealField(dst, pressureCPUSome, p.CPUSome)
		dst = appendRealField(dst, pressureMemorySome, p.MemorySome)
		dst = appendRealField(dst, pressureMemoryFull, p.MemoryFull)
		dst = appendRealField(dst, pressureIOSome, p.IOSome)
		dst = appendRealField(dst, pressureIOFull, p.IOFull)
		dst = finishLen(dst, at)
	}
	return dst
}

// beginCol starts column num; endCol finishes it, or removes it when every
// value was zero and the column is not the table's mandatory first one (an
// absent column reads as all zeros).
func beginCol(dst []byte, num uint64) ([]byte, int, int) {
	keyAt := len(dst)
	dst = appendKey(dst, num, wtBytes)
	return dst, keyAt, len(dst)
}

func endCol(dst []byte, keyAt, at int, allZero, always bool) []byte {
	if allZero && !always {
		return dst[:keyAt]
	}
	return finishLen(dst, at)
}

// findRefs sets e.refs[i] to the row of prev with the same (pid, start time)
// as cur[i], or -1. Rows usually keep their order from one sample to the next,
// with a few entering or leaving the top set, so the rows just after the last
// match and the same index are tried before a map.
func (e *encoder) findRefs(cur, prev []Proc) {
	e.refs = e.refs[:0]
	mapped := false
	last := int32(-1)
	same := func(j int32, p *Proc) bool {
		return j >= 0 && int(j) < len(prev) && prev[j].PID == p.PID && prev[j].StartTime == p.StartTime
	}
	for i := range cur {
		p := &cur[i]
		ref := int32(-1)
		for j := last + 1; j <= last+4; j++ {
			if same(j, p) {
				ref = j
				break
			}
		}
		if ref < 0 && same(int32(i), p) {
			ref = int32(i)
		}
		if ref < 0 && len(prev) > 0 {
			if !mapped {
				clear(e.prevIdx)
				for j := range prev {
					e.prevIdx[procKey{prev[j].PID, prev[j].StartTime}] = int32(j)
				}
				mapped = true
			}
			if j, ok := e.prevIdx[procKey{p.PID, p.StartTime}]; ok {
				ref = j
			}
		}
		if ref >= 0 {
			last = ref
		}
		e.refs = append(e.refs, ref)
	}
}

func (e *encoder) appendProcs(dst []byte, cur, prev []Proc) ([]byte, error) {
	dst = appendVarintField(dst, tableCount, uint64(len(cur)))
	e.findRefs(cur, prev)
	refs := e.refs

	dst, keyAt, at := beginCol(dst, procRef)
	allZero := true
	for i, r := range refs {
		var u uint64
		if r >= 0 {
			u = zigzag(int64(r)-int64(i)) + 1
			allZero = false
		}
		dst = binary.AppendUvarint(dst, u)
	}
	dst = endCol(dst, keyAt, at, allZero, false)

	for ci := range procCols {
		c := &procCols[ci]
		dst, keyAt, at = beginCol(dst, c.num)
		allZero = true
		switch c.kind {
		case colInt:
			var last uint64 // the previous row's value: the prediction without a reference
			for i := range cur {
				v, pred := c.get(&cur[i]), last
				if r := refs[i]; r >= 0 {
					pred = c.get(&prev[r])
				}
				z := zigzag(int64(v - pred))
				allZero = allZero && z == 0
				dst = binary.AppendUvarint(dst, z)
				last = v
			}
		case colStr:
			ids := e.cur[c.sidx][:0]
			prevIDs := e.prev[c.sidx]
			for i := range cur {
				s := *c.str(&cur[i])
				var pred, id uint32
				r := refs[i]
				if r >= 0 {
					pred = prevIDs[r]
				} else if i > 0 {
					pred = ids[i-1]
				}
				if r >= 0 && *c.str(&prev[r]) == s {
					id = pred // same text as the row it continues: skip the map
				} else {
					var err error
					if id, err = e.intern(s); err != nil {
						return dst, err
					}
				}
				ids = append(ids, id)
				z := zigzag(int64(id) - int64(pred))
				allZero = allZero && z == 0
				dst = binary.AppendUvarint(dst, z)
			}
			e.cur[c.sidx] = ids
		case colReal:
			for i := range cur {
				var zero bool
				dst, zero = appendRealValue(dst, *c.real(&cur[i]))
				allZero = allZero && zero
			}
		}
		dst = endCol(dst, keyAt, at, allZero, ci == 0)
	}
	return dst, nil
}

// appendStrCol writes a string column of a small table, predicted by the
// previous row's id.
func (e *encoder) appendStrCol(dst []byte, num uint64, n int, always bool, str func(i int) string) ([]byte, error) {
	dst, keyAt, at := beginCol(dst, num)
	allZero := true
	var pred uint32
	var prevS string
	for i := range n {
		s := str(i)
		id := pred
		if i == 0 || s != prevS { // runs of one group, unit or type skip the map
			var err error
			if id, err = e.intern(s); err != nil {
				return dst, err
			}
		}
		prevS = s
		z := zigzag(int64(id) - int64(pred))
		allZero = allZero && z == 0
		dst = binary.AppendUvarint(dst, z)
		pred = id
	}
	return endCol(dst, keyAt, at, allZero, always), nil
}

func (e *encoder) appendApps(dst []byte, rows []AppTop) ([]byte, error) {
	dst = appendVarintField(dst, tableCount, uint64(len(rows)))
	var err error
	if dst, err = e.appendStrCol(dst, appGroup, len(rows), true, func(i int) string { return rows[i].Group }); err != nil {
		return dst, err
	}
	if dst, err = e.appendStrCol(dst, appApplication, len(rows), false, func(i int) string { return rows[i].Application }); err != nil {
		return dst, err
	}
	if dst, err = e.appendStrCol(dst, appUnit, len(rows), false, func(i int) string { return rows[i].Unit }); err != nil {
		return dst, err
	}
	dst, keyAt, at := beginCol(dst, appValue)
	allZero := true
	for i := range rows {
		var zero bool
		dst, zero = appendRealValue(dst, rows[i].Value)
		allZero = allZero && zero
	}
	return endCol(dst, keyAt, at, allZero, false), nil
}

func (e *encoder) appendFuns(dst []byte, rows []FunTop) ([]byte, error) {
	dst = appendVarintField(dst, tableCount, uint64(len(rows)))
	var err error
	if dst, err = e.appendStrCol(dst, funFun, len(rows), true, func(i int) string { return rows[i].Fun }); err != nil {
		return dst, err
	}
	if dst, err = e.appendStrCol(dst, funFunType, len(rows), false, func(i int) string { return rows[i].FunType }); err != nil {
		return dst, err
	}
	dst, keyAt, at := beginCol(dst, funNumProcesses)
	allZero := true
	var pred uint64
	for i := range rows {
		v := uint64(rows[i].NumProcesses)
		z := zigzag(int64(v - pred))
		allZero = allZero && z == 0
		dst = binary.AppendUvarint(dst, z)
		pred = v
	}
	return endCol(dst, keyAt, at, allZero, false), nil
}

func (e *encoder) appendEvents(dst []byte, rows []Event, sampleT uint64) ([]byte, error) {
	dst = appendVarintField(dst, tableCount, uint64(len(rows)))
	dst, keyAt, at := beginCol(dst, eventTime)
	pred := sampleT
	for i := range rows {
		t := uint64(rows[i].Time.UnixNano())
		dst = binary.AppendUvarint(dst, zigzag(int64(t-pred)))
		pred = t
	}
	dst = endCol(dst, keyAt, at, false, true)
	var err error
	if dst, err = e.appendStrCol(dst, eventKind, len(rows), false, func(i int) string { return rows[i].Kind }); err != nil {
		return dst, err
	}
	if dst, err = e.appendStrCol(dst, eventSubject, len(rows), false, func(i int) string { return rows[i].Subject }); err != nil {
		return dst, err
	}
	if dst, err = e.appendStrCol(dst, eventDetail, len(rows), false, func(i int) string { return rows[i].Detail }); err != nil {
		return dst, err
	}
	return dst, nil
}
