package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/sysmon/sysmon/pkg/config"
)

// Options configures Check. Zero values take the defaults noted.
type Options struct {
	// Role overrides the role detected from the key prefixes.
	Role config.Role
	// Timeout bounds each network check (TCP connect, TLS handshake,
	// database connection) [5s].
	Timeout time.Duration
	// ExpiryWarning is how close to expiry a certificate draws a warning
	// [30 days].
	ExpiryWarning time.Duration
	// Now is the clock for expiry checks [time.Now].
	Now func() time.Time
	// LookupEnv finds keys that the environment sets over the file
	// [os.LookupEnv].
	LookupEnv func(string) (string, bool)
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.ExpiryWarning <= 0 {
		o.ExpiryWarning = 30 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
}

// checker carries one run's state.
type checker struct {
	o      Options
	r      *Report
	failed map[string]bool // keys whose values did not load: skip what depends on them
	file   map[string]string
}

// value is a key's raw value as the command would see it: environment
// over file.
func (c *checker) value(key string) string {
	if v, ok := c.o.LookupEnv(key); ok {
		return v
	}
	return c.file[key]
}

// Check validates the env file at path and returns the report; it never
// returns nil. It does not stop at the first problem: every check whose
// inputs are usable runs. ctx bounds the whole run.
func Check(ctx context.Context, path string, o Options) *Report {
	o.defaults()
	c := &checker{o: o, r: &Report{File: path}, failed: map[string]bool{}}
	file, err := config.ReadEnvFile(path)
	if err != nil {
		c.fatal(err)
		return c.r
	}
	role := o.Role
	if role == "" {
		if role, err = config.DetectRole(file); err != nil {
			c.fatal(&config.Error{File: path, Msg: err.Error(), Fix: "check that this is the env file written by `sysmon setup consumer|producer`, or pass --role"})
			return c.r
		}
	}
	c.r.Role = role
	c.file = file
	c.r.pass("", "env file read: %d keys of a %s", len(file), role)
	c.keys(file, role)
	c.environment(file, role)
	switch role {
	case config.RoleProducer:
		cfg, errs := config.LoadProducerAll(path)
		if !c.values(errs) || cfg == nil {
			return c.r
		}
		c.producer(ctx, cfg)
	case config.RoleConsumer:
		cfg, errs := config.LoadConsumerAll(path)
		if !c.values(errs) || cfg == nil {
			return c.r
		}
		c.consumer(ctx, cfg)
	default:
		c.fatal(&config.Error{File: path, Msg: fmt.Sprintf("unknown role %q", role), Fix: "use consumer or producer"})
	}
	return c.r
}

func (c *checker) fatal(err error) {
	var ce *config.Error
	if !errors.As(err, &ce) {
		ce = &config.Error{File: c.r.File, Msg: err.Error()}
	}
	c.r.fatal = ce
	c.r.add(Fail, ce.Key, ce.Fix, "%s", ce.Msg)
}

// keys reports names the role does not read: near misses of its keys fail
// (the loaders refuse them), the rest are ignored and draw a warning.
func (c *checker) keys(file map[string]string, role config.Role) {
	unknown := config.CheckKeys(file, role)
	for _, u := range unknown {
		switch {
		case u.OtherRole != "":
			c.r.add(Warn, u.Name, "move it to the "+string(u.OtherRole)+"'s env file", "a %s key; the %s ignores it", u.OtherRole, role)
		case u.Typo:
			c.failed[u.Closest] = true
			c.r.add(Fail, u.Name, "rename it to "+u.Closest, "unknown key (did you mean %s?)", u.Closest)
		default:
			c.r.add(Warn, u.Name, "remove it, or rename it to a key listed by `sysmon setup "+string(role)+" --help`", "unknown key, ignored (closest known key: %s)", u.Closest)
		}
	}
	if len(unknown) == 0 {
		c.r.pass("", "all %d keys known", len(file))
	}
}

// environment warns about keys that the process environment sets: they
// override the file when sysmon runs, so the file is not the whole story.
func (c *checker) environment(file map[string]string, role config.Role) {
	var over []string
	for _, k := range config.KeysFor(role) {
		if _, ok := c.o.LookupEnv(k.Name); ok {
			over = append(over, k.Name)
		}
	}
	sort.Strings(over)
	for _, name := range over {
		where := "adds to"
		if _, ok := file[name]; ok {
			where = "overrides"
		}
		c.r.add(Warn, name, "unset it in the environment (or keep it and know the file is not used for it)", "set in the environment, which %s this file when sysmon runs", where)
	}
}

// values reports every value that does not load; it returns false when the
// file could not be loaded at all.
func (c *checker) values(errs []*config.Error) bool {
	for _, e := range errs {
		if e.Key == "" {
			c.fatal(e)
			return false
		}
		c.failed[e.Key] = true
		c.r.add(Fail, e.Key, e.Fix, "%s", e.Msg)
	}
	if len(errs) == 0 {
		c.r.pass("", "all values parse")
	}
	return true
}

// ok reports whether every key named loaded.
func (c *checker) ok(keys ...string) bool {
	for _, k := range keys {
		if c.failed[k] {
			return false
		}
	}
	return true
}
