// Package cmd is sysmon's cobra wiring: flags, env files, signals and exit
// codes. The logic lives under pkg/.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes, mapped in one place.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// Build information, injected by the Makefile with -ldflags -X.
var (
	version = "dev"
	commit  = "unknown"
)

// usageError marks an error in what the user asked for or configured; it
// exits with code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// hinted is an error that carries a fix for the user, printed as a hint line.
type hinted interface{ Hint() string }

// Main runs the sysmon command line and returns the process exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd(os.Stdout, os.Stderr)
	err := root.ExecuteContext(ctx)
	return report(os.Stderr, err)
}

func report(w io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(w, "sysmon: error: %v\n", err)
	var h hinted
	if errors.As(err, &h) && h.Hint() != "" {
		fmt.Fprintf(w, "sysmon: hint: %s\n", h.Hint())
	}
	var ue usageError
	if errors.As(err, &ue) || isConfigError(err) {
		return exitUsage
	}
	return exitRuntime
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "sysmon",
		Short: "Linux process and host telemetry over mutual-TLS WebSockets into PostgreSQL",
		Long: `sysmon reads /proc on each monitored host (sysmon produce), pushes samples
outward over a WebSocket secured with mutual TLS, and writes them into
PostgreSQL on a collector (sysmon consume) for Grafana dashboards.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Flag parse errors are usage errors (exit 2).
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newProduceCmd(),
		newConsumeCmd(),
		newSetupCmd(),
		newCACmd(),
		newVersionCmd(),
		newDemoCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version and commit of this binary",
		Example: "  sysmon version",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			v, rev := version, commit
			// A plain `go build` injects nothing; the toolchain still
			// records the commit it built from.
			if info, ok := debug.ReadBuildInfo(); ok && rev == "unknown" {
				for _, st := range info.Settings {
					if st.Key == "vcs.revision" && len(st.Value) >= 12 {
						rev = st.Value[:12]
					}
				}
			}
			fmt.Fprintf(c.OutOrStdout(), "sysmon %s (commit %s)\n", v, rev)
			return nil
		},
	}
}
