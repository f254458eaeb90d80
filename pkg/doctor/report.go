package doctor

import (
	"fmt"
	"io"
	"strings"

	"github.com/sysmon/sysmon/pkg/config"
)

// Status is the outcome of one check.
type Status int

const (
	Pass Status = iota
	Warn        // works, but the operator should know
	Fail        // the command would fail or misbehave
)

// Mark is the symbol printed before a result.
func (s Status) Mark() string {
	switch s {
	case Pass:
		return "✓"
	case Warn:
		return "!"
	}
	return "✗"
}

// Result is one check's outcome.
type Result struct {
	Status Status
	Key    string // the config key concerned, "" when none
	Msg    string // what was found
	Fix    string // what to do; set for Warn and Fail
}

// String is the result as one line: mark, key, finding, fix.
func (r Result) String() string {
	var b strings.Builder
	b.WriteString(r.Status.Mark())
	b.WriteByte(' ')
	if r.Key != "" {
		b.WriteString(r.Key)
		b.WriteString(": ")
	}
	b.WriteString(oneLine(r.Msg))
	if r.Fix != "" && r.Status != Pass {
		b.WriteString(" — fix: ")
		b.WriteString(oneLine(r.Fix))
	}
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Report is the outcome of checking one env file.
type Report struct {
	File    string
	Role    config.Role
	Results []Result
	// fatal is set when the file could not be checked at all (unreadable,
	// no role): a configuration error rather than failed checks.
	fatal *config.Error
}

func (r *Report) add(s Status, key, fix, format string, args ...any) {
	r.Results = append(r.Results, Result{Status: s, Key: key, Msg: fmt.Sprintf(format, args...), Fix: fix})
}

func (r *Report) pass(key, format string, args ...any) { r.add(Pass, key, "", format, args...) }

// Count returns how many results have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, x := range r.Results {
		if x.Status == s {
			n++
		}
	}
	return n
}

// Write prints the report: a header naming the file and role, one line per
// check, and a summary line.
func (r *Report) Write(w io.Writer) error {
	role := "unknown role"
	if r.Role != "" {
		role = string(r.Role)
	}
	if _, err := fmt.Fprintf(w, "checking %s (%s)\n", r.File, role); err != nil {
		return err
	}
	for _, x := range r.Results {
		if _, err := fmt.Fprintf(w, "  %s\n", x); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%d checks: %d passed, %d warnings, %d failed\n",
		len(r.Results), r.Count(Pass), r.Count(Warn), r.Count(Fail))
	return err
}

// FailedError is returned by Err when checks failed.
type FailedError struct {
	File   string
	Failed int
	Total  int
	First  Result
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("%s: %d of %d checks failed", e.File, e.Failed, e.Total)
}

// Hint tells the user where the details are.
func (e *FailedError) Hint() string { return "fix the lines marked ✗ above and run the check again" }

// Err is nil when no check failed. A file that could not be checked at all
// gives its *config.Error; failed checks give a *FailedError.
func (r *Report) Err() error {
	if r.fatal != nil {
		return r.fatal
	}
	n := r.Count(Fail)
	if n == 0 {
		return nil
	}
	e := &FailedError{File: r.File, Failed: n, Total: len(r.Results)}
	for _, x := range r.Results {
		if x.Status == Fail {
			e.First = x
			break
		}
	}
	return e
}
