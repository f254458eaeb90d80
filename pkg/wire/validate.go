package wire

import (
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// maxCapabilities bounds Hello.Capabilities.
const maxCapabilities = 256

// Times must fit int64 nanoseconds since the Unix epoch (years 1678..2262),
// the binary codec's representation.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// Validate checks a decoded message against the protocol limits. Codecs call
// it after decoding so both renderings enforce the same rules, and before
// encoding so a producer never spools what a consumer would refuse. Errors
// wrap ErrTooBig for a limit and ErrMalformed for anything else.
func Validate(m Message) error { return validate(m, false) }

// validate is Validate; when encoding, only string lengths are checked: the
// encoders replace invalid UTF-8 the way encoding/json does.
func validate(m Message, encoding bool) error {
	str := func(s string) error {
		if encoding {
			if len(s) > MaxStringBytes {
				return fmt.Errorf("string of %d bytes: %w", len(s), ErrTooBig)
			}
			return nil
		}
		return checkString(s)
	}
	if isNil(m) {
		return fmt.Errorf("nil message: %w", ErrMalformed)
	}
	switch m := m.(type) {
	case *Hello:
		if m.Node == "" {
			return fmt.Errorf("hello without node: %w", ErrMalformed)
		}
		if len(m.Capabilities) > maxCapabilities {
			return fmt.Errorf("hello with %d capabilities: %w", len(m.Capabilities), ErrTooBig)
		}
		for _, s := range []string{m.Node, m.AgentVersion, m.BootID, m.SpoolID} {
			if err := str(s); err != nil {
				return err
			}
		}
		for _, s := range m.Capabilities {
			if err := str(s); err != nil {
				return err
			}
		}
	case *Welcome:
		if err := str(m.ConsumerVersion); err != nil {
			return err
		}
	case *Batch:
		if m.Seq == 0 {
			return fmt.Errorf("batch with seq 0: %w", ErrMalformed)
		}
		if len(m.Samples) > MaxSamplesPerBatch {
			return fmt.Errorf("batch of %d samples: %w", len(m.Samples), ErrTooBig)
		}
		rows := 0
		for i := range m.Samples {
			s := &m.Samples[i]
			if err := checkTime(s.Time); err != nil {
				return fmt.Errorf("sample %d: %w", i, err)
			}
			if len(s.Procs) > MaxProcsPerSample {
				return fmt.Errorf("sample %d has %d processes: %w", i, len(s.Procs), ErrTooBig)
			}
			if len(s.Apps) > MaxRowsPerTable || len(s.Funs) > MaxRowsPerTable || len(s.Events) > MaxRowsPerTable {
				return fmt.Errorf("sample %d has too many rows: %w", i, ErrTooBig)
			}
			rows += len(s.Procs) + len(s.Apps) + len(s.Funs) + len(s.Events)
			if rows > MaxRowsPerMessage {
				return fmt.Errorf("batch of more than %d rows: %w", MaxRowsPerMessage, ErrTooBig)
			}
			if err := checkHost(s.Host); err != nil {
				return fmt.Errorf("sample %d host: %w", i, err)
			}
			for j := range s.Procs {
				p := &s.Procs[j]
				if err := finite(p.CPUPct, p.ReadBps, p.WriteBps, p.RunqWaitPct); err != nil {
					return fmt.Errorf("sample %d process %d: %w", i, p.PID, err)
				}
				for _, v := range []string{p.Comm, p.Cmdline, p.State, p.User, p.App, p.Wchan} {
					if err := str(v); err != nil {
						return fmt.Errorf("sample %d process %d: %w", i, p.PID, err)
					}
				}
			}
			for j := range s.Apps {
				a := &s.Apps[j]
				if err := finite(a.Value); err != nil {
					return fmt.Errorf("sample %d app_top: %w", i, err)
				}
				for _, v := range []string{a.Group, a.Application, a.Unit} {
					if err := str(v); err != nil {
						return fmt.Errorf("sample %d app_top: %w", i, err)
					}
				}
			}
			for j := range s.Funs {
				f := &s.Funs[j]
				for _, v := range []string{f.Fun, f.FunType} {
					if err := str(v); err != nil {
						return fmt.Errorf("sample %d fun_top: %w", i, err)
					}
				}
			}
			if s.Status != nil {
				if err := str(s.Status.Data); err != nil {
					return fmt.Errorf("sample %d status: %w", i, err)
				}
			}
			for j := range s.Events {
				e := &s.Events[j]
				if err := checkTime(e.Time); err != nil {
					return fmt.Errorf("sample %d event %d: %w", i, j, err)
				}
				for _, v := range []string{e.Kind, e.Subject, e.Detail} {
					if err := str(v); err != nil {
						return fmt.Errorf("sample %d event %d: %w", i, j, err)
					}
				}
			}
		}
	}
	return nil
}

// finite rejects NaN and infinities, which JSON cannot carry.
func finite(xs ...float64) error {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("float %v: %w", x, ErrMalformed)
		}
	}
	return nil
}

func checkHost(h *Host) error {
	if h == nil {
		return nil
	}
	if err := finite(h.Load1, h.Load5, h.Load15, h.CPUUser, h.CPUSystem, h.CPUIOWait, h.CPUIdle, h.CPUSteal); err != nil {
		return err
	}
	if p := h.Pressure; p != nil {
		return finite(p.CPUSome, p.MemorySome, p.MemoryFull, p.IOSome, p.IOFull)
	}
	return nil
}

func isNil(m Message) bool {
	switch m := m.(type) {
	case nil:
		return true
	case *Hello:
		return m == nil
	case *Welcome:
		return m == nil
	case *Batch:
		return m == nil
	case *Ack:
		return m == nil
	}
	return false
}

func checkTime(t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("without time: %w", ErrMalformed)
	}
	if t.Before(minTime) || t.After(maxTime) {
		return fmt.Errorf("time %s outside 1678..2262: %w", t.Format(time.RFC3339), ErrMalformed)
	}
	return nil
}

func checkString(s string) error {
	if len(s) > MaxStringBytes {
		return fmt.Errorf("string of %d bytes: %w", len(s), ErrTooBig)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("string not valid UTF-8: %w", ErrMalformed)
	}
	return nil
}
