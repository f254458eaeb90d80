package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/sysmon/sysmon/pkg/config"
	"github.com/sysmon/sysmon/pkg/doctor"
	"github.com/sysmon/sysmon/pkg/setup"
)

// setupOptions holds the flags of `sysmon setup consumer|producer`; the
// config keys they set are in keys.
type setupOptions struct {
	role        config.Role
	out         string
	keys        keyFlags
	caDir       string
	hosts       []string // server certificate names (consumer)
	email       string   // client certificate owner (producer)
	force       bool     // replace certificate files that exist
	interactive bool
}

func newSetupCmd() *cobra.Command {
	var checkFile, role string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "setup consumer|producer",
		Short: "Write an env file for the consumer or the producer, or check one",
		Long: `setup writes an env file with every key of the role, a comment per key, the
values given set and the rest commented out at their defaults. On a terminal
and without value flags it asks for each important value, with a default and
an explanation. With --ca-dir it mints the certificate the role needs from
that CA on the way. A file it replaces is kept as FILE.bak-<time>; a file
holding a database password is written 0600.

setup --check FILE (or setup check FILE) validates an env file end to end.`,
		Example: `  sysmon setup consumer                                   # asks, on a terminal
  sysmon setup consumer --listen-ip 0.0.0.0 --port 8443 --ca-dir certs --host collector.example.com
  sysmon setup producer --consumer-ip collector.example.com --port 8443 --ca-dir certs --node web1
  sysmon setup --check producer.env`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q: use consumer, producer or check", args[0], c.CommandPath())}
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if checkFile == "" {
				return usageError{errors.New("name a role (sysmon setup consumer|producer) or a file to check (sysmon setup --check FILE)")}
			}
			return runCheck(c.Context(), c.OutOrStdout(), checkFile, role, timeout)
		},
	}
	c.Flags().StringVar(&checkFile, "check", "", "validate this env file end to end instead of writing one")
	registerCheckFlags(c.Flags(), &role, &timeout)
	c.AddCommand(newSetupRoleCmd(config.RoleConsumer), newSetupRoleCmd(config.RoleProducer), newSetupCheckCmd())
	return c
}

func registerCheckFlags(fs *pflag.FlagSet, role *string, timeout *time.Duration) {
	fs.StringVar(role, "role", "", "role of the file to check (consumer or producer); detected from the key names when unset")
	fs.DurationVar(timeout, "timeout", 5*time.Second, "time allowed for each network check")
}

func newSetupCheckCmd() *cobra.Command {
	var role string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate an env file end to end",
		Long: `check validates one env file as the consumer or producer would use it, and
prints one line per check: ✓ passed, ! warning, ✗ failed with the fix. It
checks the key names (naming the closest key for a typo), the values, the
files, the certificates (key matches certificate, chain to the CA, extended
key usage for the role, expiry within 30 days), the CRL directory; for a
producer, that the consumer answers and accepts its certificate in a TLS
handshake; for a consumer, that the database answers and lets its role
create tables. It exits 0 only if no check failed.`,
		Example: `  sysmon setup check producer.env
  sysmon setup check consumer.env --timeout 10s`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("check takes exactly one env file")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return runCheck(c.Context(), c.OutOrStdout(), args[0], role, timeout)
		},
	}
	registerCheckFlags(c.Flags(), &role, &timeout)
	return c
}

// runCheck prints the report; failed checks exit 1, a file that cannot be
// checked at all exits 2.
func runCheck(ctx context.Context, w io.Writer, file, role string, timeout time.Duration) error {
	if role != "" && role != string(config.RoleConsumer) && role != string(config.RoleProducer) {
		return usageError{fmt.Errorf("--role %q: use consumer or producer", role)}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	r := doctor.Check(ctx, file, doctor.Options{Role: config.Role(role), Timeout: timeout})
	if err := r.Write(w); err != nil {
		return err
	}
	return r.Err()
}

func newSetupRoleCmd(role config.Role) *cobra.Command {
	o := &setupOptions{role: role, keys: keyFlags{}}
	example := `  sysmon setup consumer                       # asks for each value on a terminal
  sysmon setup consumer --listen-ip 0.0.0.0 --port 8443 --db-url postgres://u:p@db:5432/sysmon \
      --ca-dir certs --host collector.example.com --out consumer.env`
	if role == config.RoleProducer {
		example = `  sysmon setup producer                       # asks for each value on a terminal
  sysmon setup producer --consumer-ip collector.example.com --port 8443 --node web1 \
      --ca-dir certs --out producer.env
  sysmon setup producer --consumer-ip collector.example.com --cacert cacert.pem \
      --cert ops@example.com_20261203.pem --out producer.env`
	}
	c := &cobra.Command{
		Use:   string(role),
		Short: fmt.Sprintf("Write a %s env file (asks on a terminal, or takes flags)", role),
		Long: fmt.Sprintf(`Write a %s env file. On a terminal with no value flags it asks for each
important value with a default and a one-line explanation (press Enter to
take the default); --interactive asks even when stdin is not a terminal, so
answers can be piped in, one per line. With value flags it asks nothing.

With --ca-dir DIR it mints the certificate this role needs from the CA in DIR
(the consumer's server certificate for --host names, or the producer's
client certificate bound to --node) and fills in the certificate keys.`, role),
		Example: example,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			stdin := c.InOrStdin()
			// Prompts are shown without --interactive only on a terminal.
			terminal := false
			if f, ok := stdin.(*os.File); ok {
				terminal = term.IsTerminal(int(f.Fd()))
			}
			valueFlags := false
			c.Flags().Visit(func(f *pflag.Flag) {
				if f.Name != "out" && f.Name != "force" && f.Name != "interactive" {
					valueFlags = true
				}
			})
			return setupError(setup.Run(setup.Options{
				Role:   o.role,
				Out:    o.out,
				CADir:  o.caDir,
				Hosts:  o.hosts,
				Email:  o.email,
				Force:  o.force,
				Values: o.keys.values(c),
				Ask:    o.interactive || (terminal && !valueFlags),
				Stdin:  stdin,
				Stdout: c.OutOrStdout(),
			}))
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.out, "out", string(role)+".env", "env file to write")
	fs.StringVar(&o.caDir, "ca-dir", "", "mint the needed certificate from the CA in this directory (see sysmon ca init)")
	fs.BoolVar(&o.force, "force", false, "with --ca-dir: replace certificate files that exist instead of reusing them")
	fs.BoolVar(&o.interactive, "interactive", false, "ask for each value even when stdin is not a terminal (answers one per line)")
	if role == config.RoleConsumer {
		fs.StringSliceVar(&o.hosts, "host", nil, "with --ca-dir: names and addresses producers use to reach the consumer, for its certificate (comma-separated or repeated)")
	} else {
		fs.StringVar(&o.email, "email", "", "with --ca-dir: e-mail address of the client certificate's owner [sysmon@NODE]")
	}
	registerRoleFlags(fs, o.keys, role)
	return c
}

func registerRoleFlags(fs *pflag.FlagSet, k keyFlags, role config.Role) {
	if role == config.RoleConsumer {
		k.add(fs, "listen-ip", "CONSUMER_LISTEN_IP", "address to listen on")
		k.add(fs, "port", "CONSUMER_LISTEN_PORT", "port to listen on")
		k.add(fs, "cacert", "CONSUMER_CACERTFILE", "CA certificate")
		k.add(fs, "cert", "CONSUMER_CERTFILE", "server certificate")
		k.add(fs, "key", "CONSUMER_KEYFILE", "server key")
		k.add(fs, "crl-dir", "CONSUMER_CRLDIR", "CRL directory")
		k.add(fs, "db-url", "CONSUMER_DB_URL", "PostgreSQL URL")
		k.add(fs, "use-tls", "CONSUMER_USE_TLS", "true or false")
		k.add(fs, "retention-days", "CONSUMER_RETENTION_DAYS", "days of data kept")
		k.add(fs, "data-dir", "CONSUMER_DATA_DIR", "data directory of the consumer's own PostgreSQL")
		k.add(fs, "metrics-addr", "CONSUMER_METRICS_ADDR", "Prometheus /metrics address")
		return
	}
	k.add(fs, "consumer-ip", "PRODUCER_IP", "consumer address or host name")
	k.add(fs, "port", "PRODUCER_PORT", "consumer port")
	k.add(fs, "consumer", "PRODUCER_URLS", "consumer URL(s), comma-separated wss://host:port/")
	k.add(fs, "cacert", "PRODUCER_CACERTFILE", "CA certificate")
	k.add(fs, "cert", "PRODUCER_CERTFILE", "client PEM (key and certificate)")
	k.add(fs, "node", "PRODUCER_NODE", "node name")
	k.add(fs, "interval", "PRODUCER_INTERVAL", "sample interval")
	k.add(fs, "use-tls", "PRODUCER_USE_TLS", "true or false")
	k.add(fs, "spool-dir", "PRODUCER_SPOOL_DIR", "spool directory")
	k.add(fs, "server-name", "PRODUCER_SERVER_NAME", "verify the consumer's certificate for this name")
	k.add(fs, "metrics-addr", "PRODUCER_METRICS_ADDR", "Prometheus /metrics address")
}

// setupError maps pkg/setup's errors to exit codes: a bad value or answer
// is a usage error; a CA failure gets the exit code and hint that the
// `sysmon ca` commands give it.
func setupError(err error) error {
	var ie *setup.InputError
	if errors.As(err, &ie) {
		return usageError{ie.Err}
	}
	var ce *setup.CAError
	if errors.As(err, &ce) {
		return caError(ce.Err)
	}
	return err
}
