package setup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sysmon/sysmon/pkg/pki"
)

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

// ask shows q and reads answers until one passes q.check. Input that ends
// before an answer, or five refused answers, is an *InputError.
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
				return "", &InputError{errInputEnded}
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
	return "", &InputError{fmt.Errorf("%s: no valid answer after 5 tries", q.label)}
}

// askInto asks q, offering the value a flag set for its key as the
// default, and stores the answer.
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

func askConsumer(p *prompter, o *Options, values map[string]string) error {
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
	if o.CADir != "" {
		hosts, err := p.ask(question{label: "Names in the server certificate", def: strings.Join(defaultHosts(values["CONSUMER_LISTEN_IP"]), ","), check: checkHosts,
			help: "Host names and IP addresses producers use to reach this consumer, comma-separated."})
		if err != nil {
			return err
		}
		o.Hosts = splitList(hosts)
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

func askProducer(p *prompter, o *Options, values map[string]string) error {
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
	if o.CADir != "" {
		def := o.Email
		if def == "" {
			def = "sysmon@" + values["PRODUCER_NODE"]
		}
		email, err := p.ask(question{label: "Certificate owner e-mail", def: def, check: checkEmail,
			help: "E-mail address recorded in the client certificate (it names the client_keys file)."})
		if err != nil {
			return err
		}
		o.Email = email
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
func askCA(p *prompter, o *Options, what string) error {
	def := o.CADir
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
	o.CADir = dir
	return nil
}

func askOut(p *prompter, o *Options) error {
	out, err := p.ask(question{label: "Write to", def: o.Out, check: func(v string) error {
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
	o.Out = out
	return nil
}
