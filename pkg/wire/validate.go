package wire

import (
	"fmt"
	"unicode/utf8"
)

// Validate checks a decoded message against the protocol limits. Codecs call
// it after decoding so both renderings enforce the same rules.
func Validate(m Message) error {
	switch m := m.(type) {
	case *Hello:
		if m.Node == "" {
			return fmt.Errorf("hello without node: %w", ErrMalformed)
		}
		for _, s := range []string{m.Node, m.AgentVersion, m.BootID, m.SpoolID} {
			if err := checkString(s); err != nil {
				return err
			}
		}
	case *Batch:
		if m.Seq == 0 {
			return fmt.Errorf("batch with seq 0: %w", ErrMalformed)
		}
		if len(m.Samples) > MaxSamplesPerBatch {
			return fmt.Errorf("batch of %d samples: %w", len(m.Samples), ErrTooBig)
		}
		for i := range m.Samples {
			s := &m.Samples[i]
			if s.Time.IsZero() {
				return fmt.Errorf("sample %d without time: %w", i, ErrMalformed)
			}
			if len(s.Procs) > MaxProcsPerSample {
				return fmt.Errorf("sample %d has %d processes: %w", i, len(s.Procs), ErrTooBig)
			}
			if len(s.Apps) > MaxRowsPerTable || len(s.Funs) > MaxRowsPerTable || len(s.Events) > MaxRowsPerTable {
				return fmt.Errorf("sample %d has too many rows: %w", i, ErrTooBig)
			}
			for j := range s.Procs {
				p := &s.Procs[j]
				for _, str := range []string{p.Comm, p.Cmdline, p.State, p.User, p.App, p.Wchan} {
					if err := checkString(str); err != nil {
						return err
					}
				}
			}
		}
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
