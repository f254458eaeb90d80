package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

// Source resolves key values in precedence order: flags, then the process
// environment, then the env file, then the key table's defaults.
type Source struct {
	File      string            // env file path, "" if none
	Flags     map[string]string // values set by command-line flags
	LookupEnv func(string) (string, bool)
	file      map[string]string
	Warnings  []string // unknown keys that are not clearly typos
}

// ReadEnvFile parses an env file as the original tool wrote them: KEY=value
// lines, values optionally quoted, `export` prefixes and comments allowed.
func ReadEnvFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errorf(path, "", "check the path (the --env flag, or the FILE argument of setup check), or create the file with `sysmon setup`", "env file not found")
		}
		return nil, errorf(path, "", "check the file's permissions", "cannot read env file: %v", unwrapPath(err))
	}
	// Editors on other systems write a byte-order mark; it is not part of
	// the first key.
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	m, err := godotenv.UnmarshalBytes(data)
	if err != nil {
		// godotenv's message quotes the rest of the file, secrets included:
		// name the line instead.
		return nil, errorf(path, "", `lines must look like KEY="value" (quotes closed on the same line)`, "cannot parse line %d", badLine(data))
	}
	// godotenv lets a quoted value run over several lines; in these files
	// that is always a quote left open, and echoing the swallowed lines
	// could print a secret.
	for k, v := range m {
		if strings.ContainsAny(v, "\r\n") {
			return nil, errorf(path, k, `close the quote on the same line: KEY="value"`, "line %d: quoted value not closed on its line", keyLine(data, k))
		}
	}
	return m, nil
}

// keyLine is the line where key is set.
func keyLine(data []byte, key string) int {
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "export "))
		if strings.HasPrefix(line, key+"=") || strings.HasPrefix(line, key+" ") {
			return i + 1
		}
	}
	return 1
}

// badLine finds the first line that does not parse on its own. Multi-line
// quoted values are rare in env files; for them it names the line where the
// value starts.
func badLine(data []byte) int {
	for i, line := range bytes.Split(data, []byte("\n")) {
		if _, err := godotenv.UnmarshalBytes(append(line[:len(line):len(line)], '\n')); err != nil {
			return i + 1
		}
	}
	return 1
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// NewSource reads path (if not "") and checks its key names for the role:
// a key of the role's prefix that is a near miss of a known key is an error
// naming the closest key; other unknown keys are kept as warnings.
func NewSource(path string, role Role, flags map[string]string) (*Source, error) {
	s := &Source{File: path, Flags: flags, LookupEnv: os.LookupEnv}
	if path != "" {
		m, err := ReadEnvFile(path)
		if err != nil {
			return nil, err
		}
		s.file = m
		if err := s.checkNames(role); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// UnknownKeys returns the keys of the file that no role knows, each with the
// closest known key of the role.
func UnknownKeys(file map[string]string, role Role) map[string]string {
	out := map[string]string{}
	for name := range file {
		if _, ok := LookupKey(name); ok {
			continue
		}
		closest, _ := closestKey(name, role)
		out[name] = closest
	}
	return out
}

func (s *Source) checkNames(role Role) error {
	prefix := strings.ToUpper(string(role)) + "_"
	for name, closest := range UnknownKeys(s.file, role) {
		_, d := closestKey(name, role)
		if strings.HasPrefix(name, prefix) && d <= 2 {
			return errorf(s.File, name, fmt.Sprintf("rename it to %s", closest), "unknown key (did you mean %s?)", closest)
		}
		s.Warnings = append(s.Warnings, fmt.Sprintf("%s: unknown key %s ignored (closest known key: %s)", s.File, name, closest))
	}
	return nil
}

// Lookup returns the raw value of a key and whether anything set it.
func (s *Source) Lookup(name string) (string, bool) {
	if v, ok := s.Flags[name]; ok {
		return v, true
	}
	if s.LookupEnv != nil {
		if v, ok := s.LookupEnv(name); ok {
			return v, true
		}
	}
	if v, ok := s.file[name]; ok {
		return v, true
	}
	return "", false
}

// origin says where a key's value came from, for error messages.
func (s *Source) origin(name string) string {
	if _, ok := s.Flags[name]; ok {
		return ""
	}
	if s.LookupEnv != nil {
		if _, ok := s.LookupEnv(name); ok {
			return "environment"
		}
	}
	if _, ok := s.file[name]; ok {
		return s.File
	}
	return "default"
}

func (s *Source) get(name string) string {
	if v, ok := s.Lookup(name); ok {
		return strings.TrimSpace(v)
	}
	k, _ := LookupKey(name)
	return k.Default
}

// parser accumulates the first error while reading typed values, so the
// Load functions read like a list of fields.
type parser struct {
	s   *Source
	err error
}

func (p *parser) fail(name, fix, format string, args ...any) {
	if p.err == nil {
		p.err = errorf(p.s.origin(name), name, fix, format, args...)
	}
}

func (p *parser) str(name string) string { return p.s.get(name) }

func (p *parser) bool(name string) bool {
	v := strings.ToLower(p.s.get(name))
	switch v {
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off", "":
		return false
	}
	p.fail(name, "use true or false", "%q is not a boolean", v)
	return false
}

func (p *parser) int(name string, lo, hi int) int {
	v := p.s.get(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.fail(name, fmt.Sprintf("use a whole number from %d to %d", lo, hi), "%q is not a number in range", v)
		return 0
	}
	return n
}

func (p *parser) port(name string) int { return p.int(name, 1, 65535) }

func (p *parser) duration(name string, lo time.Duration) time.Duration {
	v := p.s.get(name)
	d, err := time.ParseDuration(v)
	if err != nil {
		// The original took plain seconds.
		if n, err2 := strconv.ParseFloat(v, 64); err2 == nil {
			d, err = time.Duration(n*float64(time.Second)), nil
		}
	}
	if err != nil || d < lo {
		p.fail(name, fmt.Sprintf("use a duration such as 2s or 500ms, at least %v", lo), "%q is not a valid duration", v)
		return 0
	}
	return d
}

func (p *parser) bytes(name string) uint64 {
	v := p.s.get(name)
	n, err := ParseBytes(v)
	if err != nil {
		p.fail(name, "use a byte count such as 524288000, 512MiB or 2GiB", "%q is not a size", v)
	}
	return n
}

// ParseBytes reads a byte count with an optional KiB/MiB/GiB/TiB (or
// K/M/G/T, KB/MB/GB: powers of 1024 all) suffix.
func ParseBytes(v string) (uint64, error) {
	v = strings.TrimSpace(v)
	mult := uint64(1)
	upper := strings.ToUpper(v)
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"TIB", 1 << 40}, {"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(upper, u.suffix) {
			mult = u.mult
			v = strings.TrimSpace(v[:len(v)-len(u.suffix)])
			break
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, err
	}
	if n > (1<<64-1)/mult {
		return 0, fmt.Errorf("size overflows")
	}
	return n * mult, nil
}

// file checks that a path names a readable regular file.
func (p *parser) file(name string, required bool) string {
	v := p.s.get(name)
	if v == "" {
		if required {
			p.fail(name, "set it to the path of the file", "required but not set")
		}
		return ""
	}
	f, err := os.Open(v)
	if err != nil {
		fix := "check the path (relative paths are resolved from the current directory)"
		if errors.Is(err, fs.ErrPermission) {
			fix = "make the file readable by the user running sysmon"
		}
		p.fail(name, fix, "cannot read %s: %v", v, unwrapPath(err))
		return v
	}
	f.Close()
	return v
}
