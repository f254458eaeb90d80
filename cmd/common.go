package cmd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/sysmon/sysmon/pkg/config"
)

// logOptions are the logging flags every long-running command takes.
type logOptions struct {
	level  string
	format string
}

func (o *logOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.format, "log-format", "auto", "log format: text, json, or auto (text on a terminal, json otherwise)")
}

func (o *logOptions) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.level)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", o.level)}
	}
	format := o.format
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format %q: use text, json or auto", o.format)}
}

// keyFlags binds command-line flags to config keys: a flag that was set
// overrides the environment and the env file.
type keyFlags map[string]*string

func (k keyFlags) add(fs *pflag.FlagSet, flag, key, usage string) {
	v := new(string)
	fs.StringVar(v, flag, "", usage+" ("+key+")")
	k[flag] = v
	fs.Lookup(flag).Annotations = map[string][]string{"key": {key}}
}

func (k keyFlags) values(c *cobra.Command) map[string]string {
	out := map[string]string{}
	for flag, v := range k {
		if f := c.Flags().Lookup(flag); f != nil && f.Changed {
			out[f.Annotations["key"][0]] = *v
		}
	}
	return out
}

func isConfigError(err error) bool {
	var ce *config.Error
	return errors.As(err, &ce)
}

func warnAll(log *slog.Logger, warnings []string) {
	for _, w := range warnings {
		log.Warn(w)
	}
}
