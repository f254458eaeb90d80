package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// This file holds the parts of `sysmon setup check` that need nothing but
// the key table: which role a file is for, which of its keys are unknown,
// and every value error at once rather than the first. Checks that need
// certificates, the network or the database live in pkg/doctor.

// DetectRole tells from the key prefixes whether an env file is a consumer's
// or a producer's. A file with keys of both roles, or of neither, is an
// error naming what was found.
func DetectRole(file map[string]string) (Role, error) {
	var nc, np int
	for name := range file {
		switch {
		case strings.HasPrefix(name, "CONSUMER_"):
			nc++
		case strings.HasPrefix(name, "PRODUCER_"):
			np++
		}
	}
	switch {
	case nc > 0 && np == 0:
		return RoleConsumer, nil
	case np > 0 && nc == 0:
		return RoleProducer, nil
	case nc == 0:
		return "", errors.New("no CONSUMER_* or PRODUCER_* keys: not a sysmon env file")
	}
	return "", fmt.Errorf("holds %d CONSUMER_* and %d PRODUCER_* keys: keep one role per file, or name the role to check", nc, np)
}

// ClosestKey returns the known key of role ("" for any role) nearest to
// name by edit distance, and that distance.
func ClosestKey(name string, role Role) (string, int) { return closestKey(name, role) }

// UnknownKey is a key of an env file that sysmon does not read.
type UnknownKey struct {
	Name     string
	Closest  string // nearest known key of the role
	Distance int
	// Typo is true for a key of the role's prefix within two edits of a
	// known key: the loaders refuse such a file, since the setting the
	// operator meant is silently at its default otherwise.
	Typo bool
	// OtherRole names the role of a known key of the other role.
	OtherRole Role
}

// CheckKeys lists the keys of file that role does not read, sorted by name:
// unknown keys with their nearest known key, and known keys of the other
// role.
func CheckKeys(file map[string]string, role Role) []UnknownKey {
	prefix := strings.ToUpper(string(role)) + "_"
	var out []UnknownKey
	for name := range file {
		if k, ok := LookupKey(name); ok {
			if k.Role != role {
				out = append(out, UnknownKey{Name: name, OtherRole: k.Role})
			}
			continue
		}
		closest, d := closestKey(name, role)
		out = append(out, UnknownKey{Name: name, Closest: closest, Distance: d, Typo: strings.HasPrefix(name, prefix) && d <= 2})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LoadProducerAll reads the producer settings of an env file like
// LoadProducer, but goes on past a bad value to report every one. Unknown
// keys are left to CheckKeys. The returned settings hold a stand-in for
// each key that failed, so callers must not trust the fields of those keys.
// A file that cannot be read at all gives nil settings and that one error.
func LoadProducerAll(path string) (*Producer, []*Error) {
	var c *Producer
	errs := loadAll(path, RoleProducer, func(flags map[string]string) (err error) {
		c, err = LoadProducer("", flags)
		return err
	})
	if c != nil {
		c.File = path
	}
	return c, errs
}

// LoadConsumerAll is LoadProducerAll for the consumer.
func LoadConsumerAll(path string) (*Consumer, []*Error) {
	var c *Consumer
	errs := loadAll(path, RoleConsumer, func(flags map[string]string) (err error) {
		c, err = LoadConsumer("", flags)
		return err
	})
	if c != nil {
		c.File = path
	}
	return c, errs
}

// loadAll feeds the file's known keys to load as flags, so that unknown
// keys do not stop it, and after each error replaces the failing key's
// value with a harmless stand-in and loads again.
func loadAll(path string, role Role, load func(map[string]string) error) []*Error {
	file, err := ReadEnvFile(path)
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			return []*Error{ce}
		}
		return []*Error{{File: path, Msg: err.Error()}}
	}
	flags := map[string]string{}
	fromFile := map[string]bool{}
	for name, v := range file {
		if k, ok := LookupKey(name); ok && k.Role == role {
			flags[name] = v
			fromFile[name] = true
		}
	}
	var errs []*Error
	replaced := map[string]bool{}
	for range len(Keys) + 1 {
		err := load(flags)
		if err == nil {
			return errs
		}
		var ce *Error
		if !errors.As(err, &ce) {
			return append(errs, &Error{File: path, Msg: err.Error()})
		}
		if ce.File == "" && fromFile[ce.Key] {
			ce.File = path // the value came from the file, passed as a flag
		}
		errs = append(errs, ce)
		if ce.Key == "" || replaced[ce.Key] {
			return errs
		}
		replaced[ce.Key] = true
		flags[ce.Key] = standIn(ce.Key, flags[ce.Key])
	}
	return errs
}

// standIn is a value that lets loading go on past key's error: a file that
// opens, the key's default, or empty.
func standIn(key, bad string) string {
	switch {
	case strings.HasSuffix(key, "_ENABLE"):
		return "true"
	case strings.HasSuffix(key, "FILE"):
		return os.DevNull
	case strings.HasSuffix(key, "_CRLDIR"), key == "CONSUMER_DB_URL", key == "PRODUCER_URLS":
		return ""
	}
	if k, ok := LookupKey(key); ok && k.Default != "" && k.Default != bad {
		return k.Default
	}
	return ""
}
