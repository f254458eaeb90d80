package wire

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// decoder holds the scratch state of one Decode of a batch; pooled like the
// encoder. Decoded strings are substrings of one copy of the string table.
type decoder struct {
	strs      []string
	refs      []int32
	cur, prev [numProcStrCols][]uint32
	rows      int // table rows allocated so far in this message
}

func (d *decoder) release() {
	clear(d.strs)
	d.strs = d.strs[:0]
	d.rows = 0
}

// field is one known field's raw value, kept while a record is scanned so
// that fields can be decoded in dependency order whatever order they came in.
type field struct {
	wt  uint64
	val []byte // wtBytes: the content; other wire types: the encoded value
	ok  bool
}

// scanFields reads a record, keeping fields 1..len(out)-1 in out and
// skipping the others. A known field that repeats is malformed.
func scanFields(body []byte, out []field) error {
	r := reader{b: body}
	for !r.done() {
		f, wt, err := r.key()
		if err != nil {
			return err
		}
		start := r.off
		if f >= uint64(len(out)) {
			if err := r.skip(wt); err != nil {
				return err
			}
			continue
		}
		if out[f].ok {
			return fmt.Errorf("field %d repeated: %w", f, ErrMalformed)
		}
		if wt == wtBytes {
			b, err := r.bytes()
			if err != nil {
				return err
			}
			out[f] = field{wt: wt, val: b, ok: true}
			continue
		}
		if err := r.skip(wt); err != nil {
			return err
		}
		out[f] = field{wt: wt, val: body[start:r.off], ok: true}
	}
	return nil
}

func (f *field) uvarint(num uint64) (uint64, error) {
	if !f.ok {
		return 0, nil
	}
	if err := wantWT(num, f.wt, wtVarint); err != nil {
		return 0, err
	}
	r := reader{b: f.val}
	return r.uvarint()
}

func (f *field) uint32(num uint64) (uint32, error) {
	v, err := f.uvarint(num)
	if err != nil {
		return 0, err
	}
	if v > 1<<32-1 {
		return 0, fmt.Errorf("field %d: %d overflows 32 bits: %w", num, v, ErrMalformed)
	}
	return uint32(v), nil
}

func (f *field) real(num uint64) (float64, error) {
	if !f.ok {
		return 0, nil
	}
	r := reader{b: f.val}
	v, err := r.real(f.wt)
	if err != nil {
		return 0, fmt.Errorf("field %d: %w", num, err)
	}
	return v, nil
}

func (f *field) bytes(num uint64) ([]byte, error) {
	if err := wantWT(num, f.wt, wtBytes); err != nil {
		return nil, err
	}
	return f.val, nil
}

func (d *decoder) decodeBatch(body []byte) (*Batch, error) {
	// First pass: the seq, the string table and how many samples follow, so
	// the samples are allocated once and only after their count is checked.
	m := new(Batch)
	var table []byte
	var seenSeq, seenTable bool
	nsamples := 0
	r := reader{b: body}
	for !r.done() {
		f, wt, err := r.key()
		if err != nil {
			return nil, err
		}
		switch f {
		case batchSeq:
			if err := wantWT(f, wt, wtVarint); err != nil {
				return nil, err
			}
			if seenSeq {
				return nil, fmt.Errorf("seq repeated: %w", ErrMalformed)
			}
			seenSeq = true
			if m.Seq, err = r.uvarint(); err != nil {
				return nil, err
			}
		case batchStrings:
			if err := wantWT(f, wt, wtBytes); err != nil {
				return nil, err
			}
			if seenTable {
				return nil, fmt.Errorf("string table repeated: %w", ErrMalformed)
			}
			seenTable = true
			if table, err = r.bytes(); err != nil {
				return nil, err
			}
		case batchSample:
			if err := wantWT(f, wt, wtBytes); err != nil {
				return nil, err
			}
			if _, err := r.bytes(); err != nil {
				return nil, err
			}
			nsamples++
			if nsamples > MaxSamplesPerBatch {
				return nil, fmt.Errorf("more than %d samples: %w", MaxSamplesPerBatch, ErrTooBig)
			}
		default:
			if err := r.skip(wt); err != nil {
				return nil, err
			}
		}
	}
	if err := d.readStrings(table); err != nil {
		return nil, fmt.Errorf("string table: %w", err)
	}
	if nsamples == 0 {
		return m, nil
	}
	m.Samples = make([]Sample, 0, nsamples)
	var prevT uint64
	var prevProcs []Proc
	r = reader{b: body}
	for !r.done() {
		f, wt, _ := r.key() // checked by the first pass
		if f != batchSample {
			_ = r.skip(wt)
			continue
		}
		b, _ := r.bytes()
		m.Samples = append(m.Samples, Sample{})
		s := &m.Samples[len(m.Samples)-1]
		if err := d.decodeSample(b, s, prevT, prevProcs); err != nil {
			return nil, fmt.Errorf("sample %d: %w", len(m.Samples)-1, err)
		}
		prevT = uint64(s.Time.UnixNano())
		prevProcs = s.Procs
		d.cur, d.prev = d.prev, d.cur
	}
	return m, nil
}

// readStrings parses the string table: a uvarint count, then count non-empty
// strings each as a uvarint length and bytes. Id 0 is "", id i the i-th.
func (d *decoder) readStrings(table []byte) error {
	d.strs = d.strs[:0]
	if table == nil {
		return nil
	}
	r := reader{b: table}
	n, err := r.uvarint()
	if err != nil {
		return err
	}
	// Every entry takes at least two bytes: check before allocating.
	if n > uint64(len(table)-r.off)/2 {
		return fmt.Errorf("%d strings in %d bytes: %w", n, len(table)-r.off, ErrMalformed)
	}
	all := string(table[r.off:]) // one copy; every string is a substring of it
	base := r.off
	if cap(d.strs) < int(n) {
		d.strs = make([]string, 0, n)
	}
	for range n {
		l, err := r.uvarint()
		if err != nil {
			return err
		}
		if l == 0 {
			return fmt.Errorf("empty string at offset %d: %w", r.off, ErrMalformed)
		}
		if l > MaxStringBytes {
			return fmt.Errorf("string of %d bytes: %w", l, ErrTooBig)
		}
		if l > uint64(len(table)-r.off) {
			return fmt.Errorf("string of %d bytes, %d left: %w", l, len(table)-r.off, ErrMalformed)
		}
		str := all[r.off-base : r.off-base+int(l)]
		if !utf8.ValidString(str) {
			return fmt.Errorf("string %d not valid UTF-8: %w", len(d.strs)+1, ErrMalformed)
		}
		d.strs = append(d.strs, str)
		r.off += int(l)
	}
	if !r.done() {
		return fmt.Errorf("%d bytes after the last string: %w", len(table)-r.off, ErrMalformed)
	}
	return nil
}

func (d *decoder) str(id uint64) (string, error) {
	if id == 0 {
		return "", nil
	}
	if id > uint64(len(d.strs)) {
		return "", fmt.Errorf("string id %d, table has %d: %w", id, len(d.strs), ErrMalformed)
	}
	return d.strs[id-1], nil
}

// table checks a table's row count against the limits and the bytes that
// carry it before the rows are allocated: a row takes at least one byte.
func (d *decoder) table(body []byte, cols []field, limit int) (int, error) {
	if err := scanFields(body, cols); err != nil {
		return 0, err
	}
	n64, err := cols[tableCount].uvarint(tableCount)
	if err != nil {
		return 0, err
	}
	if n64 > uint64(limit) {
		return 0, fmt.Errorf("%d rows, limit %d: %w", n64, limit, ErrTooBig)
	}
	n := int(n64)
	if n > len(body) {
		return 0, fmt.Errorf("%d rows in %d bytes: %w", n, len(body), ErrMalformed)
	}
	d.rows += n
	if d.rows > MaxRowsPerMessage {
		return 0, fmt.Errorf("more than %d rows in the message: %w", MaxRowsPerMessage, ErrTooBig)
	}
	for c := tableCount + 1; c < len(cols); c++ {
		if cols[c].ok && cols[c].wt != wtBytes {
			return 0, fmt.Errorf("column %d has wire type %d: %w", c, cols[c].wt, ErrMalformed)
		}
	}
	return n, nil
}

// colReader yields a column's n values; an absent column yields zeros.
type colReader struct {
	reader
	num     int
	present bool
}

func newCol(cols []field, num int) colReader {
	return colReader{reader: reader{b: cols[num].val}, num: num, present: cols[num].ok}
}

func (c *colReader) next() (uint64, error) {
	if !c.present {
		return 0, nil
	}
	v, err := c.uvarint()
	if err != nil {
		return 0, fmt.Errorf("column %d: %w", c.num, err)
	}
	return v, nil
}

func (c *colReader) nextReal() (float64, error) {
	if !c.present {
		return 0, nil
	}
	v, err := c.realValue()
	if err != nil {
		return 0, fmt.Errorf("column %d: %w", c.num, err)
	}
	return v, nil
}

func (c *colReader) end() error {
	if c.present && !c.done() {
		return fmt.Errorf("column %d: %d bytes after the last row: %w", c.num, len(c.b)-c.off, ErrMalformed)
	}
	return nil
}

func (d *decoder) decodeSample(body []byte, s *Sample, prevT uint64, prevProcs []Proc) error {
	var fs [sampleMaxField + 1]field
	if err := scanFields(body, fs[:]); err != nil {
		return err
	}
	u, err := fs[sampleTime].uvarint(sampleTime)
	if err != nil {
		return err
	}
	t := prevT + uint64(unzigzag(u))
	s.Time = time.Unix(0, int64(t)).UTC()
	if f := &fs[sampleHost]; f.ok {
		b, err := f.bytes(sampleHost)
		if err != nil {
			return err
		}
		if s.Host, err = decodeHost(b); err != nil {
			return fmt.Errorf("host: %w", err)
		}
	}
	if f := &fs[sampleMemory]; f.ok {
		b, err := f.bytes(sampleMemory)
		if err != nil {
			return err
		}
		if s.Memory, err = decodeMemory(b); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	if f := &fs[sampleProcs]; f.ok {
		b, err := f.bytes(sampleProcs)
		if err != nil {
			return err
		}
		if s.Procs, err = d.decodeProcs(b, prevProcs); err != nil {
			return fmt.Errorf("procs: %w", err)
		}
	} else {
		for c := range d.cur {
			d.cur[c] = d.cur[c][:0]
		}
	}
	if s.ProcsSeen, err = fs[sampleProcsSeen].uint32(sampleProcsSeen); err != nil {
		return err
	}
	if f := &fs[sampleApps]; f.ok {
		b, err := f.bytes(sampleApps)
		if err != nil {
			return err
		}
		if s.Apps, err = d.decodeApps(b); err != nil {
			return fmt.Errorf("app_top: %w", err)
		}
	}
	if f := &fs[sampleFuns]; f.ok {
		b, err := f.bytes(sampleFuns)
		if err != nil {
			return err
		}
		if s.Funs, err = d.decodeFuns(b); err != nil {
			return fmt.Errorf("fun_top: %w", err)
		}
	}
	if f := &fs[sampleStatus]; f.ok {
		b, err := f.bytes(sampleStatus)
		if err != nil {
			return err
		}
		var sf [statusData + 1]field
		if err := scanFields(b, sf[:]); err != nil {
			return fmt.Errorf("status: %w", err)
		}
		id, err := sf[statusData].uvarint(statusData)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		data, err := d.str(id)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		s.Status = &NodeStatus{Data: data}
	}
	if f := &fs[sampleEvents]; f.ok {
		b, err := f.bytes(sampleEvents)
		if err != nil {
			return err
		}
		if s.Events, err = d.decodeEvents(b, t); err != nil {
			return fmt.Errorf("events: %w", err)
		}
	}
	return nil
}

func decodeHost(b []byte) (*Host, error) {
	var fs [hostPressure + 1]field
	if err := scanFields(b, fs[:]); err != nil {
		return nil, err
	}
	h := new(Host)
	var err error
	for _, x := range []struct {
		num uint64
		dst *float64
	}{
		{hostLoad1, &h.Load1}, {hostLoad5, &h.Load5}, {hostLoad15, &h.Load15},
		{hostCPUUser, &h.CPUUser}, {hostCPUSystem, &h.CPUSystem}, {hostCPUIOWait, &h.CPUIOWait},
		{hostCPUIdle, &h.CPUIdle}, {hostCPUSteal, &h.CPUSteal},
	} {
		if *x.dst, err = fs[x.num].real(x.num); err != nil {
			return nil, err
		}
	}
	if h.ProcsRunning, err = fs[hostProcsRunning].uint32(hostProcsRunning); err != nil {
		return nil, err
	}
	if h.ProcsBlocked, err = fs[hostProcsBlocked].uint32(hostProcsBlocked); err != nil {
		return nil, err
	}
	if h.ProcsTotal, err = fs[hostProcsTotal].uint32(hostProcsTotal); err != nil {
		return nil, err
	}
	if f := &fs[hostPressure]; f.ok {
		pb, err := f.bytes(hostPressure)
		if err != nil {
			return nil, err
		}
		var ps [pressureIOFull + 1]field
		if err := scanFields(pb, ps[:]); err != nil {
			return nil, fmt.Errorf("pressure: %w", err)
		}
		p := new(Pressure)
		for _, x := range []struct {
			num uint64
			dst *float64
		}{
			{pressureCPUSome, &p.CPUSome}, {pressureMemorySome, &p.MemorySome}, {pressureMemoryFull, &p.MemoryFull},
			{pressureIOSome, &p.IOSome}, {pressureIOFull, &p.IOFull},
		} {
			if *x.dst, err = ps[x.num].real(x.num); err != nil {
				return nil, fmt.Errorf("pressure: %w", err)
			}
		}
		h.Pressure = p
	}
	return h, nil
}

func decodeMemory(b []byte) (*Memory, error) {
	var fs [memSwapFree + 1]field
	if err := scanFields(b, fs[:]); err != nil {
		return nil, err
	}
	m := new(Memory)
	var err error
	for _, x := range []struct {
		num uint64
		dst *uint64
	}{
		{memTotal, &m.Total}, {memFree, &m.Free}, {memAvailable, &m.Available}, {memBuffers, &m.Buffers},
		{memCached, &m.Cached}, {memSwapTotal, &m.SwapTotal}, {memSwapFree, &m.SwapFree},
	} {
		if *x.dst, err = fs[x.num].uvarint(x.num); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (d *decoder) decodeProcs(b []byte, prev []Proc) ([]Proc, error) {
	var cols [procMaxCol + 1]field
	n, err := d.table(b, cols[:], MaxProcsPerSample)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		for c := range d.cur {
			d.cur[c] = d.cur[c][:0]
		}
		return nil, nil
	}
	procs := make([]Proc, n)

	d.refs = d.refs[:0]
	rc := newCol(cols[:], procRef)
	for i := range n {
		u, err := rc.next()
		if err != nil {
			return nil, err
		}
		ref := int64(-1)
		if u != 0 {
			ref = int64(i) + unzigzag(u-1)
			if ref < 0 || ref >= int64(len(prev)) {
				return nil, fmt.Errorf("row %d refers to row %d of %d: %w", i, ref, len(prev), ErrMalformed)
			}
		}
		d.refs = append(d.refs, int32(ref))
	}
	if err := rc.end(); err != nil {
		return nil, err
	}
	refs := d.refs

	for ci := range procCols {
		c := &procCols[ci]
		cr := newCol(cols[:], int(c.num))
		switch c.kind {
		case colInt:
			var last uint64 // the previous row's value: the prediction without a reference
			for i := range procs {
				z, err := cr.next()
				if err != nil {
					return nil, err
				}
				pred := last
				if r := refs[i]; r >= 0 {
					pred = c.get(&prev[r])
				}
				last = pred + uint64(unzigzag(z))
				if !c.set(&procs[i], last) {
					return nil, fmt.Errorf("column %d row %d: value out of range: %w", c.num, i, ErrMalformed)
				}
			}
		case colStr:
			ids := d.cur[c.sidx][:0]
			prevIDs := d.prev[c.sidx]
			for i := range procs {
				z, err := cr.next()
				if err != nil {
					return nil, err
				}
				var pred uint64
				if r := refs[i]; r >= 0 {
					pred = uint64(prevIDs[r])
				} else if i > 0 {
					pred = uint64(ids[i-1])
				}
				id := pred + uint64(unzigzag(z))
				s, err := d.str(id)
				if err != nil {
					return nil, fmt.Errorf("column %d row %d: %w", c.num, i, err)
				}
				*c.str(&procs[i]) = s
				ids = append(ids, uint32(id))
			}
			d.cur[c.sidx] = ids
		case colReal:
			if !cr.present {
				continue
			}
			for i := range procs {
				if *c.real(&procs[i]), err = cr.nextReal(); err != nil {
					return nil, err
				}
			}
		}
		if err := cr.end(); err != nil {
			return nil, err
		}
	}
	return procs, nil
}

// strCol decodes a small table's string column, predicted by the previous row.
func (d *decoder) strCol(cols []field, num, n int, set func(i int, s string)) error {
	cr := newCol(cols, num)
	var pred uint64
	for i := range n {
		z, err := cr.next()
		if err != nil {
			return err
		}
		id := pred + uint64(unzigzag(z))
		s, err := d.str(id)
		if err != nil {
			return fmt.Errorf("column %d row %d: %w", num, i, err)
		}
		set(i, s)
		pred = id
	}
	return cr.end()
}

func (d *decoder) decodeApps(b []byte) ([]AppTop, error) {
	var cols [appMaxCol + 1]field
	n, err := d.table(b, cols[:], MaxRowsPerTable)
	if err != nil || n == 0 {
		return nil, err
	}
	rows := make([]AppTop, n)
	if err := d.strCol(cols[:], appGroup, n, func(i int, s string) { rows[i].Group = s }); err != nil {
		return nil, err
	}
	if err := d.strCol(cols[:], appApplication, n, func(i int, s string) { rows[i].Application = s }); err != nil {
		return nil, err
	}
	if err := d.strCol(cols[:], appUnit, n, func(i int, s string) { rows[i].Unit = s }); err != nil {
		return nil, err
	}
	cr := newCol(cols[:], appValue)
	for i := range rows {
		if rows[i].Value, err = cr.nextReal(); err != nil {
			return nil, err
		}
	}
	if err := cr.end(); err != nil {
		return nil, err
	}
	return rows, nil
}

func (d *decoder) decodeFuns(b []byte) ([]FunTop, error) {
	var cols [funMaxCol + 1]field
	n, err := d.table(b, cols[:], MaxRowsPerTable)
	if err != nil || n == 0 {
		return nil, err
	}
	rows := make([]FunTop, n)
	if err := d.strCol(cols[:], funFun, n, func(i int, s string) { rows[i].Fun = s }); err != nil {
		return nil, err
	}
	if err := d.strCol(cols[:], funFunType, n, func(i int, s string) { rows[i].FunType = s }); err != nil {
		return nil, err
	}
	cr := newCol(cols[:], funNumProcesses)
	var pred uint64
	for i := range rows {
		z, err := cr.next()
		if err != nil {
			return nil, err
		}
		v := pred + uint64(unzigzag(z))
		if v > 1<<32-1 {
			return nil, fmt.Errorf("column %d row %d: %d overflows 32 bits: %w", funNumProcesses, i, v, ErrMalformed)
		}
		rows[i].NumProcesses = uint32(v)
		pred = v
	}
	if err := cr.end(); err != nil {
		return nil, err
	}
	return rows, nil
}

func (d *decoder) decodeEvents(b []byte, sampleT uint64) ([]Event, error) {
	var cols [eventMaxCol + 1]field
	n, err := d.table(b, cols[:], MaxRowsPerTable)
	if err != nil || n == 0 {
		return nil, err
	}
	rows := make([]Event, n)
	cr := newCol(cols[:], eventTime)
	pred := sampleT
	for i := range rows {
		z, err := cr.next()
		if err != nil {
			return nil, err
		}
		t := pred + uint64(unzigzag(z))
		rows[i].Time = time.Unix(0, int64(t)).UTC()
		pred = t
	}
	if err := cr.end(); err != nil {
		return nil, err
	}
	if err := d.strCol(cols[:], eventKind, n, func(i int, s string) { rows[i].Kind = s }); err != nil {
		return nil, err
	}
	if err := d.strCol(cols[:], eventSubject, n, func(i int, s string) { rows[i].Subject = s }); err != nil {
		return nil, err
	}
	if err := d.strCol(cols[:], eventDetail, n, func(i int, s string) { rows[i].Detail = s }); err != nil {
		return nil, err
	}
	return rows, nil
}
