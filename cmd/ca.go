package cmd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/sysmon/sysmon/pkg/pki"
)

// caHint carries a fix for the user alongside a CA error.
type caHint struct {
	err  error
	hint string
}

func (e caHint) Error() string { return e.err.Error() }
func (e caHint) Unwrap() error { return e.err }
func (e caHint) Hint() string  { return e.hint }

// caError maps pki errors to exit codes and hints: what the user asked for
// (bad input, an existing file, an unknown serial, a missing CA) is a usage
// error (exit 2); anything else is a runtime failure (exit 1).
func caError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pki.ErrExists):
		return usageError{caHint{err, "pass --force to overwrite it (after `ca init --force`, certificates of the old CA no longer verify)"}}
	case errors.Is(err, fs.ErrNotExist):
		return usageError{caHint{err, "create the CA first with `sysmon ca init`, or point --dir at it"}}
	case errors.Is(err, pki.ErrNotFound):
		return usageError{caHint{err, "`sysmon ca list` shows the serials this CA issued"}}
	case errors.Is(err, pki.ErrInvalid), errors.Is(err, pki.ErrAlreadyRevoked):
		return usageError{err}
	}
	return err
}

func newCACmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "ca",
		Short: "Certificate authority: CA, server and client certificates, revocation, CRL",
		Long: `sysmon ca runs the whole certificate workflow of a sysmon installation from
this binary: a CA, the consumer's server certificate, one client certificate
per producer (optionally packed with the CA certificate into a tarball),
revocation and the CRL that the consumer watches.

The directory (--dir, default ./certs) is laid out like the original
system_monitor's openssl CA: certs/cacert.pem, private/cakey.pem (0400),
certs/server.crt + server.key, client_keys/<email>_<YYYYMMDD>.pem (key and
certificate in one file, plus .crt and .key), crl/crl.pem with its <hash>.r0
link, and openssl's index.txt. Keys are ECDSA P-384 like the original's
(--curve P-256 for smaller ones). Nothing is overwritten without --force.`,
		Example: `  sysmon ca init --cn "Example sysmon CA" --org Example
  sysmon ca server --host collector.example.com,10.0.0.5
  sysmon ca client --name web1 --email ops@example.com --node web1 --bundle web1.tgz
  sysmon ca revoke certs/client_keys/ops@example.com_20260101.pem --reason keyCompromise
  sysmon ca list`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath())}
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.PersistentFlags().StringVar(&dir, "dir", "./certs", "CA directory")
	c.AddCommand(
		newCAInitCmd(&dir),
		newCAServerCmd(&dir),
		newCAClientCmd(&dir),
		newCARevokeCmd(&dir),
		newCACRLCmd(&dir),
		newCAListCmd(&dir),
	)
	return c
}

func newCAInitCmd(dir *string) *cobra.Command {
	var o pki.InitOptions
	c := &cobra.Command{
		Use:   "init",
		Short: "Create the CA key and certificate, the directory layout and an empty CRL",
		Example: `  sysmon ca init
  sysmon ca init --dir /etc/sysmon/ca --cn "Example sysmon CA" --org Example --days 3650`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ca, err := pki.Init(*dir, o)
			if err != nil {
				return caError(err)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s\n", ca.Path(pki.CACertFile))
			fmt.Fprintf(c.ErrOrStderr(), "CA %q created, valid until %s; its key %s is readable by its owner only: keep it off the monitored hosts\n",
				ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format("2006-01-02"), ca.Path(pki.CAKeyFile))
			return nil
		},
	}
	c.Flags().StringVar(&o.CN, "cn", "sysmon CA", "CA common name")
	c.Flags().StringVar(&o.Org, "org", "sysmon", "organization, also put in issued certificates")
	c.Flags().IntVar(&o.Days, "days", pki.DefaultCADays, "validity in days")
	c.Flags().StringVar(&o.Curve, "curve", "P-384", "key curve: P-384 (as the original CA) or P-256")
	c.Flags().BoolVar(&o.Force, "force", false, "replace an existing CA (certificates it issued stop verifying)")
	return c
}

func newCAServerCmd(dir *string) *cobra.Command {
	var (
		hosts []string
		o     pki.IssueOptions
	)
	c := &cobra.Command{
		Use:   "server",
		Short: "Issue the consumer's server certificate (certs/server.crt, certs/server.key)",
		Example: `  sysmon ca server --host collector.example.com,10.0.0.5
  sysmon ca server --host localhost,127.0.0.1,::1 --force`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if len(hosts) == 0 {
				return usageError{errors.New("--host is required: the names and addresses producers use to reach the consumer")}
			}
			ca, err := pki.Open(*dir)
			if err != nil {
				return caError(err)
			}
			crt, key, err := ca.IssueServer(hosts, o)
			if err != nil {
				return caError(err)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s\n%s\n", crt, key)
			fmt.Fprintf(c.ErrOrStderr(), "set CONSUMER_CERTFILE=%s and CONSUMER_KEYFILE=%s\n", crt, key)
			return nil
		},
	}
	c.Flags().StringSliceVar(&hosts, "host", nil, "host names and IP addresses, comma-separated or repeated (the first is also the CN)")
	c.Flags().IntVar(&o.Days, "days", pki.DefaultLeafDays, "validity in days")
	c.Flags().StringVar(&o.Curve, "curve", "P-384", "key curve: P-384 or P-256")
	c.Flags().BoolVar(&o.Force, "force", false, "overwrite an existing server certificate and key")
	return c
}

func newCAClientCmd(dir *string) *cobra.Command {
	var (
		name, email, bundle string
		nodes               []string
		o                   pki.IssueOptions
	)
	c := &cobra.Command{
		Use:   "client",
		Short: "Issue a producer's client certificate; prints the path of its key+certificate PEM",
		Long: `Issue a client certificate (extended key usage clientAuth) for a producer.
The key and certificate are written together to
client_keys/<email>_<YYYYMMDD>.pem (the file PRODUCER_CERTFILE names), and
separately as .key and .crt. When that name already holds another client's
certificate, the files are named <email>_<YYYYMMDD>_<name> instead. The .pem
path is printed on standard output; --force replaces this client's own files
only.

--node binds the certificate to node names (repeatable): the consumer then
accepts samples from this certificate for those nodes only. Without --node
the first certificate to report a node name owns it.

--bundle also writes a tarball holding the CA certificate (cacert.pem) and
the client PEM, ready to copy to the monitored host.`,
		Example: `  sysmon ca client --name web1 --email ops@example.com --node web1
  sysmon ca client --name db --email dba@example.com --node db1 --node db2 --bundle db.tgz`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if name == "" || email == "" {
				return usageError{errors.New("--name and --email are required")}
			}
			ca, err := pki.Open(*dir)
			if err != nil {
				return caError(err)
			}
			if bundle != "" && !o.Force {
				// Check before issuing, so that a refused bundle leaves no
				// half-done issuance behind.
				if _, err := os.Lstat(bundle); err == nil {
					return caError(fmt.Errorf("%s: %w", bundle, pki.ErrExists))
				}
			}
			pemPath, err := ca.IssueClient(name, email, nodes, o)
			if err != nil {
				return caError(err)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s\n", pemPath)
			if bundle != "" {
				if o.Force {
					if err := os.Remove(bundle); err != nil && !errors.Is(err, fs.ErrNotExist) {
						return fmt.Errorf("replace bundle: %w", err)
					}
				}
				if err := ca.Bundle(pemPath, bundle); err != nil {
					return caError(err)
				}
				fmt.Fprintf(c.ErrOrStderr(), "bundle %s holds %s and %s (it contains the private key: copy it with care)\n",
					bundle, pki.BundleCACertName, filepath.Base(pemPath))
			}
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "client name (certificate CN)")
	c.Flags().StringVar(&email, "email", "", "contact e-mail address (also names the files)")
	c.Flags().StringSliceVar(&nodes, "node", nil, "node name this certificate may report for (repeatable)")
	c.Flags().StringVar(&bundle, "bundle", "", "also write FILE.tgz with the CA certificate and the client PEM")
	c.Flags().IntVar(&o.Days, "days", pki.DefaultLeafDays, "validity in days")
	c.Flags().StringVar(&o.Curve, "curve", "P-384", "key curve: P-384 or P-256")
	c.Flags().BoolVar(&o.Force, "force", false, "overwrite existing files of the same name and date")
	return c
}

func newCARevokeCmd(dir *string) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "revoke FILE|SERIAL",
		Short: "Revoke a certificate and write a new CRL",
		Long: `Revoke a certificate, given as its file (a .crt, .pem or the client's key+cert
PEM) or its serial in hex, then write a new CRL (valid 30 days) to
crl/crl.pem. A consumer whose CONSUMER_CRLDIR is that directory (or a copy
of it) refuses the certificate within seconds and closes its open sessions.`,
		Example: `  sysmon ca revoke certs/client_keys/ops@example.com_20260101.pem
  sysmon ca revoke 3A:F1:09:...:7C --reason keyCompromise`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("revoke takes exactly one certificate file or serial")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			code, err := pki.ParseReason(reason)
			if err != nil {
				return usageError{err}
			}
			ca, err := pki.Open(*dir)
			if err != nil {
				return caError(err)
			}
			if err := ca.Revoke(args[0], code); err != nil {
				return caError(err)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s\n", ca.Path(pki.CRLFile))
			fmt.Fprintf(c.ErrOrStderr(), "revoked %s (%s); new CRL written\n", args[0], pki.ReasonName(code))
			return nil
		},
	}
	c.Flags().StringVar(&reason, "reason", "unspecified",
		"reason: unspecified, keyCompromise, CACompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold, or 0-6")
	return c
}

func newCACRLCmd(dir *string) *cobra.Command {
	var days int
	c := &cobra.Command{
		Use:   "crl",
		Short: "Write a fresh CRL (crl/crl.pem and its <hash>.r0 link) with a new next-update",
		Long: `Write a fresh CRL. Run it before the current CRL's next-update passes (from
cron, say daily): a consumer logs a CRL past its next-update loudly and, in
fail-closed mode, refuses every producer until a fresh one arrives.`,
		Example: `  sysmon ca crl
  sysmon ca crl --days 7`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if days <= 0 {
				return usageError{fmt.Errorf("--days %d: must be positive", days)}
			}
			ca, err := pki.Open(*dir)
			if err != nil {
				return caError(err)
			}
			if err := ca.WriteCRL(time.Duration(days) * 24 * time.Hour); err != nil {
				return caError(err)
			}
			fmt.Fprintf(c.OutOrStdout(), "%s\n", ca.Path(pki.CRLFile))
			fmt.Fprintf(c.ErrOrStderr(), "next update %s\n", time.Now().AddDate(0, 0, days).UTC().Format(time.RFC3339))
			return nil
		},
	}
	c.Flags().IntVar(&days, "days", int(pki.DefaultCRLValidity/(24*time.Hour)), "days until the CRL's next-update")
	return c
}

func newCAListCmd(dir *string) *cobra.Command {
	c := &cobra.Command{
		Use:     "list",
		Short:   "List the certificates of the CA: serial, kind, status, not-after, subject, nodes",
		Example: `  sysmon ca list --dir /etc/sysmon/ca`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ca, err := pki.Open(*dir)
			if err != nil {
				return caError(err)
			}
			entries, err := ca.List()
			if err != nil {
				return caError(err)
			}
			return writeCAList(c.OutOrStdout(), entries)
		},
	}
	return c
}

func writeCAList(w io.Writer, entries []pki.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tKIND\tSTATUS\tNOT AFTER\tSUBJECT\tNODES")
	for _, e := range entries {
		st := e.Status
		if e.Status == "revoked" {
			st += " " + e.RevokedAt.UTC().Format("2006-01-02") + " " + pki.ReasonName(e.Reason)
		}
		nodes := strings.Join(e.Nodes, ",")
		if nodes == "" {
			nodes = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", pki.SerialHex(e.Serial), e.Kind, st,
			e.NotAfter.UTC().Format("2006-01-02"), e.Subject, nodes)
	}
	return tw.Flush()
}
