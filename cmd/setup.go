package cmd

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/sysmon/sysmon/pkg/config"
	"github.com/sysmon/sysmon/pkg/doctor"
	"github.com/sysmon/sysmon/pkg/pki"
)

type setupOptions struct {
	role        config.Role
	out         string
	keys        keyFlags
	caDir       string
	hosts       []string // server certificate names (consumer)
	email       string   // client certificate owner (producer)
	force       bool     // replace certificate files that exist
	interactive bool
	stdin       io.Reader
	stdout      io.Writer
	// terminal reports whether stdin is a terminal; prompts are shown
	// without --interactive only then.
	terminal bool
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
			o.stdin, o.stdout = c.InOrStdin(), c.OutOrStdout()
			if f, ok := o.stdin.(*os.File); ok {
				o.terminal = term.IsTerminal(int(f.Fd()))
			}
			valueFlags := false
			c.Flags().Visit(func(f *pflag.Flag) {
				if f.Name != "out" && f.Name != "force" && f.Name != "interactive" {
					valueFlags = true
				}
			})
			ask := o.interactive || (o.terminal && !valueFlags)
			return runSetup(o, o.keys.values(c), ask)
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

// runSetup asks (when ask is set), mints the certificate (with a CA
// directory), then writes the env file.
func runSetup(o *setupOptions, values map[string]string, ask bool) error {
	if ask {
		p := &prompter{in: bufio.NewReader(o.stdin), out: o.stdout}
		var err error
		if o.role == config.RoleConsumer {
			err = askConsumer(p, o, values)
		} else {
			err = askProducer(p, o, values)
		}
		if err != nil {
			return err
		}
	}
	// Paths are stored absolute: the file is read later from another
	// directory (systemd starts services in /).
	for _, key := range []string{"CONSUMER_CACERTFILE", "CONSUMER_CERTFILE", "CONSUMER_KEYFILE", "CONSUMER_CRLDIR", "CONSUMER_DATA_DIR",
		"PRODUCER_CACERTFILE", "PRODUCER_CERTFILE", "PRODUCER_KEYFILE", "PRODUCER_SPOOL_DIR", "PRODUCER_PROC_ROOT"} {
		if v := values[key]; v != "" && !filepath.IsAbs(v) {
			if abs, err := filepath.Abs(v); err == nil {
				values[key] = abs
			}
		}
	}
	// Refuse bad values before minting anything.
	if err := validateSetup(o, values); err != nil {
		return err
	}
	if o.caDir != "" {
		if err := mintCertificate(o, values); err != nil {
			return err
		}
	}
	backup, err := config.WriteEnvFile(o.out, o.role, values)
	if err != nil {
		return err
	}
	if backup != "" {
		fmt.Fprintf(o.stdout, "kept the previous file as %s\n", backup)
	}
	fmt.Fprintf(o.stdout, "wrote %s\n", o.out)
	verb := map[config.Role]string{config.RoleConsumer: "consume", config.RoleProducer: "produce"}[o.role]
	fmt.Fprintf(o.stdout, "next: sysmon setup check %s, then sysmon %s --env %s\n", o.out, verb, o.out)
	return nil
}

// validateSetup loads the values as the command would, so that setup never
// writes a file that `sysmon consume|produce` refuses for a bad value.
// Files that do not exist yet are fine: they may be copied in later.
func validateSetup(o *setupOptions, values map[string]string) error {
	flags := map[string]string{}
	for k, v := range values {
		flags[k] = v
	}
	var err error
	for range len(config.Keys) {
		if o.role == config.RoleConsumer {
			_, err = config.LoadConsumer("", flags)
		} else {
			_, err = config.LoadProducer("", flags)
		}
		var ce *config.Error
		if err == nil || !errors.As(err, &ce) {
			break
		}
		// Missing files and directories are no reason to refuse writing.
		if missingPathKey(ce) {
			flags[ce.Key] = os.DevNull
			if strings.HasSuffix(ce.Key, "_CRLDIR") {
				flags[ce.Key] = ""
			}
			continue
		}
		if _, set := values[ce.Key]; set {
			ce.File = "" // it came from this setup, not from a file
			return usageError{ce}
		}
		break
	}
	return nil
}

func missingPathKey(e *config.Error) bool {
	return strings.HasSuffix(e.Key, "FILE") || strings.HasSuffix(e.Key, "_CRLDIR")
}

// mintCertificate issues the role's certificate from the CA in o.caDir and
// fills the certificate keys that flags did not set. An existing
// certificate of the same name is reused unless --force.
func mintCertificate(o *setupOptions, values map[string]string) error {
	dir, err := filepath.Abs(o.caDir)
	if err != nil {
		return usageError{fmt.Errorf("--ca-dir %s: %w", o.caDir, err)}
	}
	ca, err := pki.Open(dir)
	if err != nil {
		return caError(err)
	}
	setDefault := func(key, v string) {
		if _, ok := values[key]; !ok {
			values[key] = v
		}
	}
	opts := pki.IssueOptions{Force: o.force}
	if o.role == config.RoleConsumer {
		hosts := o.hosts
		if len(hosts) == 0 {
			hosts = defaultHosts(values["CONSUMER_LISTEN_IP"])
		}
		crt, key, err := ca.IssueServer(hosts, opts)
		switch {
		case errors.Is(err, pki.ErrExists):
			crt, key = ca.Path(pki.ServerCertFile), ca.Path(pki.ServerKeyFile)
			fmt.Fprintf(o.stdout, "using the existing server certificate %s (--force mints a new one)\n", crt)
			if pair, err := pki.LoadKeyPair(crt, key); err == nil {
				if missing := namesMissing(pair.Leaf, hosts); len(missing) > 0 {
					fmt.Fprintf(o.stdout, "  ! it does not name %s; producers that check host names (PRODUCER_SERVER_NAME) will refuse it: pass --force to mint a new one\n", strings.Join(missing, ", "))
				}
			}
		case err != nil:
			return caError(err)
		default:
			fmt.Fprintf(o.stdout, "issued server certificate %s for %s\n", crt, strings.Join(hosts, ", "))
		}
		setDefault("CONSUMER_CACERTFILE", ca.Path(pki.CACertFile))
		setDefault("CONSUMER_CERTFILE", crt)
		setDefault("CONSUMER_KEYFILE", key)
		setDefault("CONSUMER_CRLDIR", ca.Path(pki.CRLDir))
		return nil
	}
	node := values["PRODUCER_NODE"]
	if node == "" {
		node = hostName()
		values["PRODUCER_NODE"] = node
	}
	email := o.email
	if email == "" {
		email = "sysmon@" + node
	}
	pemPath, err := ca.IssueClient(node, email, []string{node}, opts)
	switch {
	case errors.Is(err, pki.ErrExists):
		pemPath = filepath.Join(dir, pki.ClientKeysDir, email+"_"+time.Now().UTC().Format("20060102")+".pem")
		fmt.Fprintf(o.stdout, "using the existing client certificate %s (--force mints a new one)\n", pemPath)
	case err != nil:
		return caError(err)
	default:
		fmt.Fprintf(o.stdout, "issued client certificate %s for node %s\n", pemPath, node)
	}
	setDefault("PRODUCER_CACERTFILE", ca.Path(pki.CACertFile))
	setDefault("PRODUCER_CERTFILE", pemPath)
	return nil
}

// namesMissing returns the hosts that cert's subjectAltName (or, lacking
// one, its CN) does not name.
func namesMissing(cert *x509.Certificate, hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil && cert.Subject.CommonName != h {
			out = append(out, h)
		}
	}
	return out
}

// defaultHosts names the consumer in its certificate: the address it
// listens on when that is a specific one, else this host's name, plus the
// loopback names for producers on the same host.
func defaultHosts(listenIP string) []string {
	var hosts []string
	if ip := net.ParseIP(listenIP); ip != nil && !ip.IsUnspecified() {
		hosts = append(hosts, listenIP)
	} else if h := hostName(); h != "" && h != "localhost" {
		hosts = append(hosts, h)
	}
	for _, h := range []string{"localhost", "127.0.0.1"} {
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func hostName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// question is one prompt of the guided setup.
type question struct {
	key   string // config key the answer fills; "" for setup's own answers
	label string
	help  string // one line: what the value is for
	def   string
	check func(string) error // nil accepts anything
}

// prompter asks questions on out and reads answers, one per line, from in.
type prompter struct {
	in  *bufio.Reader
	out io.Writer
}

// errInputEnded stops a guided setup whose input ran out: nothing is
// written from half the answers.
var errInputEnded = errors.New("input ended before every question was answered; nothing written")

func (p *prompter) ask(q question) (string, error) {
	fmt.Fprintf(p.out, "\n%s\n", q.help)
	for attempt := 0; attempt < 5; attempt++ {
		if q.def != "" {
			fmt.Fprintf(p.out, "%s [%s]: ", q.label, q.def)
		} else {
			fmt.Fprintf(p.out, "%s: ", q.label)
		}
		line, err := p.in.ReadString('\n')
		if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
			fmt.Fprintln(p.out)
			if errors.Is(err, io.EOF) {
				return "", usageError{errInputEnded}
			}
			return "", fmt.Errorf("read answer: %w", err)
		}
		ans := strings.TrimSpace(line)
		if ans == "" {
			ans = q.def
		} else if ans == "-" {
			ans = "" // an explicit empty answer where the default is not empty
		}
		if q.check == nil {
			return ans, nil
		}
		if err := q.check(ans); err != nil {
			fmt.Fprintf(p.out, "  ✗ %v\n", err)
			continue
		}
		return ans, nil
	}
	return "", usageError{fmt.Errorf("%s: no valid answer after 5 tries", q.label)}
}

// askInto asks q unless a flag already set its key, and stores the answer.
func (p *prompter) askInto(values map[string]string, q question) error {
	if v, ok := values[q.key]; ok {
		q.def = v
	}
	ans, err := p.ask(q)
	if err != nil {
		return err
	}
	values[q.key] = ans
	return nil
}

func askConsumer(p *prompter, o *setupOptions, values map[string]string) error {
	fmt.Fprintf(p.out, "Setting up a sysmon consumer (collector). Press Enter to take the [default]; answer - for empty.\n")
	for _, q := range []question{
		{key: "CONSUMER_LISTEN_IP", label: "Listen address", def: "0.0.0.0", check: checkIP,
			help: "Address producers connect to: 0.0.0.0 listens on every IPv4 address of this host, 127.0.0.1 only locally."},
		{key: "CONSUMER_LISTEN_PORT", label: "Listen port", def: "8443", check: checkPort,
			help: "TCP port producers connect to; it must be open in the firewall."},
	} {
		if err := p.askInto(values, q); err != nil {
			return err
		}
	}
	if err := askCA(p, o, "the consumer's server certificate"); err != nil {
		return err
	}
	if o.caDir != "" {
		hosts, err := p.ask(question{label: "Names in the server certificate", def: strings.Join(defaultHosts(values["CONSUMER_LISTEN_IP"]), ","), check: checkHosts,
			help: "Host names and IP addresses producers use to reach this consumer, comma-separated."})
		if err != nil {
			return err
		}
		o.hosts = splitList(hosts)
	} else {
		for _, q := range []question{
			{key: "CONSUMER_CACERTFILE", label: "CA certificate", def: "certs/certs/cacert.pem", check: checkFileWarn(p),
				help: "CA certificate that producers' client certificates must chain to (PEM)."},
			{key: "CONSUMER_CERTFILE", label: "Server certificate", def: "certs/certs/server.crt", check: checkFileWarn(p),
				help: "This consumer's server certificate (PEM)."},
			{key: "CONSUMER_KEYFILE", label: "Server key", def: "certs/certs/server.key", check: checkFileWarn(p),
				help: "Private key of the server certificate (PEM)."},
			{key: "CONSUMER_CRLDIR", label: "CRL directory", def: "certs/crl",
				help: "Directory of certificate revocation lists, reloaded when it changes; - for none."},
		} {
			if err := p.askInto(values, q); err != nil {
				return err
			}
		}
	}
	for _, q := range []question{
		{key: "CONSUMER_DB_URL", label: "Database URL", check: checkDBURL,
			help: "PostgreSQL URL postgres://user:password@host:5432/dbname. Empty: the original's database on localhost if it answers, else a private PostgreSQL that sysmon runs itself."},
		{key: "CONSUMER_METRICS_ADDR", label: "Metrics address", check: checkHostPortOrEmpty,
			help: "host:port serving Prometheus /metrics and /healthz, e.g. 127.0.0.1:9464. Empty: off."},
	} {
		if err := p.askInto(values, q); err != nil {
			return err
		}
	}
	return askOut(p, o)
}

func askProducer(p *prompter, o *setupOptions, values map[string]string) error {
	fmt.Fprintf(p.out, "Setting up a sysmon producer (agent). Press Enter to take the [default]; answer - for empty.\n")
	for _, q := range []question{
		{key: "PRODUCER_IP", label: "Consumer address", def: "127.0.0.1", check: checkHost,
			help: "Host name or IP address of the consumer this host sends its samples to."},
		{key: "PRODUCER_PORT", label: "Consumer port", def: "8443", check: checkPort,
			help: "TCP port the consumer listens on (its CONSUMER_LISTEN_PORT)."},
		{key: "PRODUCER_NODE", label: "Node name", def: hostName(), check: checkNode,
			help: "Name this host reports as; dashboards and the node table use it."},
	} {
		if err := p.askInto(values, q); err != nil {
			return err
		}
	}
	if err := askCA(p, o, "this producer's client certificate"); err != nil {
		return err
	}
	if o.caDir != "" {
		def := o.email
		if def == "" {
			def = "sysmon@" + values["PRODUCER_NODE"]
		}
		email, err := p.ask(question{label: "Certificate owner e-mail", def: def, check: checkEmail,
			help: "E-mail address recorded in the client certificate (it names the client_keys file)."})
		if err != nil {
			return err
		}
		o.email = email
	} else {
		for _, q := range []question{
			{key: "PRODUCER_CACERTFILE", label: "CA certificate", def: "certs/certs/cacert.pem", check: checkFileWarn(p),
				help: "CA certificate the consumer's server certificate must chain to (cacert.pem from the bundle)."},
			{key: "PRODUCER_CERTFILE", label: "Client certificate", check: checkFileRequired(p),
				help: "This producer's client PEM, key and certificate in one file (from `sysmon ca client`)."},
		} {
			if err := p.askInto(values, q); err != nil {
				return err
			}
		}
	}
	for _, q := range []question{
		{key: "PRODUCER_INTERVAL", label: "Sample interval", def: "2s", check: checkInterval,
			help: "Time between samples of /proc, e.g. 2s, 10s, 1m."},
		{key: "PRODUCER_SPOOL_DIR", label: "Spool directory",
			help: "Directory keeping unacknowledged samples while the consumer is unreachable. Empty: ~/.local/state/sysmon/spool (/var/lib/sysmon/spool as root)."},
		{key: "PRODUCER_METRICS_ADDR", label: "Metrics address", check: checkHostPortOrEmpty,
			help: "host:port serving Prometheus /metrics and /healthz, e.g. 127.0.0.1:9465. Empty: off."},
	} {
		if err := p.askInto(values, q); err != nil {
			return err
		}
	}
	return askOut(p, o)
}

// askCA asks for the CA directory to mint from; the default is ./certs when
// a CA is there.
func askCA(p *prompter, o *setupOptions, what string) error {
	def := o.caDir
	if def == "" {
		if _, err := os.Stat(filepath.Join("certs", filepath.FromSlash(pki.CAKeyFile))); err == nil {
			def = "certs"
		}
	}
	dir, err := p.ask(question{label: "CA directory", def: def, check: func(v string) error {
		if v == "" {
			return nil
		}
		if _, err := os.Stat(filepath.Join(v, filepath.FromSlash(pki.CAKeyFile))); err != nil {
			return fmt.Errorf("no CA key in %s (create one with `sysmon ca init --dir %s`, or answer - to use existing certificate files)", v, v)
		}
		return nil
	}, help: "Directory of the sysmon CA to mint " + what + " from now; - to use certificate files you already have."})
	if err != nil {
		return err
	}
	o.caDir = dir
	return nil
}

func askOut(p *prompter, o *setupOptions) error {
	out, err := p.ask(question{label: "Write to", def: o.out, check: func(v string) error {
		if v == "" {
			return errors.New("a file name is required")
		}
		if fi, err := os.Stat(filepath.Dir(v)); err != nil || !fi.IsDir() {
			return fmt.Errorf("directory %s does not exist", filepath.Dir(v))
		}
		return nil
	}, help: "Env file to write (an existing one is kept as a .bak copy)."})
	if err != nil {
		return err
	}
	o.out = out
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func checkIP(v string) error {
	if net.ParseIP(v) == nil {
		return fmt.Errorf("%q is not an IP address; use 0.0.0.0, :: or an address of this host", v)
	}
	return nil
}

func checkPort(v string) error {
	if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not a port; use a number from 1 to 65535", v)
	}
	return nil
}

func checkHost(v string) error {
	if v == "" || strings.ContainsAny(v, " /:") && net.ParseIP(v) == nil {
		return fmt.Errorf("%q is not a host name or IP address", v)
	}
	return nil
}

func checkHosts(v string) error {
	hosts := splitList(v)
	if len(hosts) == 0 {
		return errors.New("name at least one host name or address")
	}
	for _, h := range hosts {
		if err := checkHost(h); err != nil {
			return err
		}
	}
	return nil
}

func checkNode(v string) error {
	if v == "" || strings.ContainsAny(v, " \t/") {
		return fmt.Errorf("%q: use a name without spaces or slashes", v)
	}
	return nil
}

func checkEmail(v string) error {
	at := strings.IndexByte(v, '@')
	if at <= 0 || at == len(v)-1 || strings.ContainsAny(v, " /\\") {
		return fmt.Errorf("%q: use user@domain", v)
	}
	return nil
}

func checkInterval(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		if n, err2 := strconv.ParseFloat(v, 64); err2 == nil {
			d, err = time.Duration(n*float64(time.Second)), nil
		}
	}
	if err != nil || d < 100*time.Millisecond {
		return fmt.Errorf("%q: use a duration such as 2s or 500ms, at least 100ms", v)
	}
	return nil
}

func checkDBURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql" && !strings.Contains(v, "=")) {
		return errors.New("use postgres://user:password@host:5432/dbname, or - for none")
	}
	return nil
}

func checkHostPortOrEmpty(v string) error {
	if v == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%q: use host:port such as 127.0.0.1:9464, or - for none", v)
	}
	return nil
}

// checkFileWarn accepts a path that does not exist yet (it may be copied in
// later) but says so.
func checkFileWarn(p *prompter) func(string) error {
	return func(v string) error {
		if v == "" {
			return errors.New("a path is required")
		}
		if _, err := os.Stat(v); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(p.out, "  ! %s does not exist yet; copy it there before starting sysmon\n", v)
		}
		return nil
	}
}

func checkFileRequired(p *prompter) func(string) error {
	warn := checkFileWarn(p)
	return func(v string) error {
		if v == "" {
			return errors.New("a client certificate is required with TLS (sysmon ca client makes one)")
		}
		return warn(v)
	}
}
