package setup

import (
	"bufio"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sysmon/sysmon/pkg/config"
	"github.com/sysmon/sysmon/pkg/pki"
)

// Options is what one `sysmon setup consumer|producer` run was asked to do.
type Options struct {
	Role  config.Role
	Out   string   // env file to write
	CADir string   // mint the role's certificate from the CA here; "" mints nothing
	Hosts []string // server certificate names (consumer); empty: computed from the listen address
	Email string   // client certificate owner (producer); empty: sysmon@NODE
	Force bool     // replace certificate files that exist instead of reusing them
	// Values holds the config keys set on the command line; they are written
	// as given and, when asking, offered as the defaults.
	Values map[string]string
	// Ask runs the guided questions on Stdin/Stdout before writing.
	Ask    bool
	Stdin  io.Reader
	Stdout io.Writer
}

// Run asks (when o.Ask is set), mints the certificate (with a CA
// directory), then writes the env file, reporting each step on o.Stdout.
// A bad value or answer is an *InputError and a CA failure a *CAError, both
// returned before anything is written; a failure to write the file is
// returned as config.WriteEnvFile reports it.
func Run(o Options) error {
	values := maps.Clone(o.Values)
	if values == nil {
		values = map[string]string{}
	}
	if o.Ask {
		p := &prompter{in: bufio.NewReader(o.Stdin), out: o.Stdout}
		var err error
		if o.Role == config.RoleConsumer {
			err = askConsumer(p, &o, values)
		} else {
			err = askProducer(p, &o, values)
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
	if err := validate(o.Role, values); err != nil {
		return err
	}
	if o.CADir != "" {
		if err := mintCertificate(&o, values); err != nil {
			return err
		}
	}
	backup, err := config.WriteEnvFile(o.Out, o.Role, values)
	if err != nil {
		return err
	}
	if backup != "" {
		fmt.Fprintf(o.Stdout, "kept the previous file as %s\n", backup)
	}
	fmt.Fprintf(o.Stdout, "wrote %s\n", o.Out)
	verb := map[config.Role]string{config.RoleConsumer: "consume", config.RoleProducer: "produce"}[o.Role]
	fmt.Fprintf(o.Stdout, "next: sysmon setup check %s, then sysmon %s --env %s\n", o.Out, verb, o.Out)
	return nil
}

// validate loads the values as the command would, so that setup never
// writes a file that `sysmon consume|produce` refuses for a bad value.
// Files that do not exist yet are fine: they may be copied in later.
func validate(role config.Role, values map[string]string) error {
	flags := maps.Clone(values)
	var err error
	for range len(config.Keys) {
		if role == config.RoleConsumer {
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
			return &InputError{ce}
		}
		break
	}
	return nil
}

func missingPathKey(e *config.Error) bool {
	return strings.HasSuffix(e.Key, "FILE") || strings.HasSuffix(e.Key, "_CRLDIR")
}

// mintCertificate issues the role's certificate from the CA in o.CADir and
// fills the certificate keys that flags did not set. An existing
// certificate of the same name is reused unless o.Force.
func mintCertificate(o *Options, values map[string]string) error {
	dir, err := filepath.Abs(o.CADir)
	if err != nil {
		return &InputError{fmt.Errorf("--ca-dir %s: %w", o.CADir, err)}
	}
	ca, err := pki.Open(dir)
	if err != nil {
		return &CAError{err}
	}
	setDefault := func(key, v string) {
		if _, ok := values[key]; !ok {
			values[key] = v
		}
	}
	opts := pki.IssueOptions{Force: o.Force}
	if o.Role == config.RoleConsumer {
		hosts := o.Hosts
		if len(hosts) == 0 {
			hosts = defaultHosts(values["CONSUMER_LISTEN_IP"])
		}
		crt, key, err := ca.IssueServer(hosts, opts)
		if errors.Is(err, pki.ErrExists) {
			if isRevoked(ca, ca.Path(pki.ServerCertFile)) {
				fmt.Fprintf(o.Stdout, "the existing server certificate %s is revoked: minting a new one\n", ca.Path(pki.ServerCertFile))
				crt, key, err = ca.IssueServer(hosts, pki.IssueOptions{Force: true})
			}
		}
		switch {
		case errors.Is(err, pki.ErrExists):
			crt, key = ca.Path(pki.ServerCertFile), ca.Path(pki.ServerKeyFile)
			fmt.Fprintf(o.Stdout, "using the existing server certificate %s (--force mints a new one)\n", crt)
			if pair, err := pki.LoadKeyPair(crt, key); err == nil {
				if missing := namesMissing(pair.Leaf, hosts); len(missing) > 0 {
					fmt.Fprintf(o.Stdout, "  ! it does not name %s; producers that check host names (PRODUCER_SERVER_NAME) will refuse it: pass --force to mint a new one\n", strings.Join(missing, ", "))
				}
			}
		case err != nil:
			return &CAError{err}
		default:
			fmt.Fprintf(o.Stdout, "issued server certificate %s for %s\n", crt, strings.Join(hosts, ", "))
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
	email := o.Email
	if email == "" {
		email = "sysmon@" + node
	}
	pemPath, err := ca.IssueClient(node, email, []string{node}, opts)
	if errors.Is(err, pki.ErrExists) {
		// Never hand out a revoked (perhaps compromised) key again.
		if existing := ca.ClientPath(node, email); isRevoked(ca, existing) {
			fmt.Fprintf(o.Stdout, "the existing client certificate %s is revoked: minting a new one\n", existing)
			pemPath, err = ca.IssueClient(node, email, []string{node}, pki.IssueOptions{Force: true})
		}
	}
	switch {
	case errors.Is(err, pki.ErrExists):
		pemPath = ca.ClientPath(node, email)
		fmt.Fprintf(o.Stdout, "using the existing client certificate %s (--force mints a new one)\n", pemPath)
	case err != nil:
		return &CAError{err}
	default:
		fmt.Fprintf(o.Stdout, "issued client certificate %s for node %s\n", pemPath, node)
	}
	setDefault("PRODUCER_CACERTFILE", ca.Path(pki.CACertFile))
	setDefault("PRODUCER_CERTFILE", pemPath)
	return nil
}

func isRevoked(ca *pki.CA, file string) bool {
	revoked, _ := ca.IsRevoked(file)
	return revoked
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

// hostName is this host's name, "localhost" when it has none, so that a
// default is never empty.
func hostName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
