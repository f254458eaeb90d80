package doctor

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sysmon/sysmon/pkg/config"
	"github.com/sysmon/sysmon/pkg/pki"
)

func (c *checker) producer(ctx context.Context, cfg *config.Producer) {
	var tlsConf *tls.Config
	if !cfg.UseTLS {
		c.r.add(Warn, "PRODUCER_USE_TLS", `set PRODUCER_USE_TLS="true" with a client certificate for anything but a test`, "false: samples travel unencrypted and the consumer cannot tell who sends them")
	} else {
		var t *trust
		if c.ok("PRODUCER_CACERTFILE") {
			t = c.loadCA("PRODUCER_CACERTFILE", cfg.CACertFile)
		}
		var pair *tls.Certificate
		if c.ok("PRODUCER_CERTFILE", "PRODUCER_KEYFILE") {
			pair = c.loadPair("PRODUCER_CERTFILE", cfg.CertFile, "PRODUCER_KEYFILE", cfg.KeyFile,
				"point it at the client PEM of `sysmon ca client` (key and certificate in one file), or set PRODUCER_KEYFILE to the key")
		}
		if pair != nil {
			if t != nil {
				c.chain("PRODUCER_CERTFILE", pair, t, "PRODUCER_CACERTFILE", "issue a client certificate from the consumer's CA with `sysmon ca client`, or point PRODUCER_CACERTFILE at the CA that issued this one")
			}
			c.eku("PRODUCER_CERTFILE", pair.Leaf, x509.ExtKeyUsageClientAuth, "clientAuth", "issue a client certificate with `sysmon ca client`")
			c.expiry("PRODUCER_CERTFILE", "client certificate", pair.Leaf, "issue a new one with `sysmon ca client`")
			c.nodeBinding(cfg, pair.Leaf)
		}
		if t != nil && pair != nil {
			tlsConf = pki.ClientTLSConfig(*pair, t.pool, cfg.ServerName)
		}
	}
	c.procRoot(cfg.ProcRoot)
	c.writableDir("PRODUCER_SPOOL_DIR", cfg.SpoolDir)
	if cfg.MetricsAddr != "" {
		c.metricsAddr("PRODUCER_METRICS_ADDR", cfg.MetricsAddr)
	}
	urlKey := "PRODUCER_IP"
	if c.value("PRODUCER_URLS") != "" {
		urlKey = "PRODUCER_URLS"
	}
	if !c.ok("PRODUCER_URLS", "PRODUCER_IP", "PRODUCER_PORT", "PRODUCER_USE_TLS") {
		return
	}
	for _, u := range cfg.URLs {
		c.consumerReachable(ctx, urlKey, u, cfg.UseTLS, tlsConf)
	}
}

// nodeBinding checks that a certificate bound to node names allows the
// node this producer reports as.
func (c *checker) nodeBinding(cfg *config.Producer, leaf *x509.Certificate) {
	nodes := pki.NodesAllowed(leaf)
	if len(nodes) == 0 {
		return
	}
	node := cfg.Node
	if node == "" {
		node, _ = os.Hostname()
	}
	if !slices.Contains(nodes, node) {
		c.r.add(Fail, "PRODUCER_NODE", fmt.Sprintf("set PRODUCER_NODE to one of them, or issue a certificate for %q with `sysmon ca client --node %s`", node, node),
			"the certificate may report only for nodes %v, but this producer reports as %q: the consumer will close it with 1008", nodes, node)
		return
	}
	c.r.pass("PRODUCER_NODE", "the certificate allows node %q", node)
}

// writableDir checks that dir exists and is writable, or can be created.
func (c *checker) writableDir(key, dir string) {
	probe := dir
	for {
		fi, err := os.Stat(probe)
		if err == nil {
			if !fi.IsDir() {
				c.r.add(Fail, key, "point it at a directory", "%s is not a directory", probe)
				return
			}
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			break
		}
		probe = parent
	}
	f, err := os.CreateTemp(probe, ".sysmon-check-*")
	if err != nil {
		c.r.add(Warn, key, "create it writable for the user running sysmon (the systemd unit's StateDirectory does)", "%s cannot be created or written: %v", dir, unwrapPath(err))
		return
	}
	f.Close()
	os.Remove(f.Name())
	if probe == dir {
		c.r.pass(key, "%s writable", dir)
	} else {
		c.r.pass(key, "%s can be created", dir)
	}
}

// procRoot checks that the configured /proc is a mounted proc file system.
func (c *checker) procRoot(root string) {
	if root == "" {
		root = "/proc"
	}
	if _, err := os.Stat(filepath.Join(root, "stat")); err != nil {
		c.r.add(Fail, "PRODUCER_PROC_ROOT", "point it at the host's /proc (in a container: mount it, e.g. -v /proc:/host/proc:ro, and set /host/proc)", "%s is not a proc file system (no %s/stat)", root, root)
		return
	}
	c.r.pass("PRODUCER_PROC_ROOT", "%s is a proc file system", root)
}

// consumerReachable connects to one consumer URL: TCP, then the TLS
// handshake with the producer's certificate, then one HTTP request, whose
// answer proves the consumer accepted the certificate (with TLS 1.3 a
// refused client certificate shows only on the first read).
func (c *checker) consumerReachable(ctx context.Context, key, rawURL string, useTLS bool, tlsConf *tls.Config) {
	u, err := url.Parse(rawURL)
	if err != nil {
		c.r.add(Fail, key, "use wss://host:port/", "%q: %v", rawURL, err)
		return
	}
	hostport := u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), "443")
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		c.r.add(Fail, key, "start `sysmon consume` there, or correct PRODUCER_IP/PRODUCER_PORT; a firewall must let this host reach the port",
			"cannot connect to the consumer at %s: %v", hostport, netCause(err))
		return
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c.r.pass(key, "consumer %s reachable", hostport)
	if useTLS && tlsConf == nil {
		c.r.add(Warn, "PRODUCER_CERTFILE", "fix the certificate problems above, then check again", "TLS handshake with %s not tried: no usable client certificate and CA", hostport)
		return
	}

	var rw net.Conn = conn
	if tlsConf != nil {
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.tlsFailure(hostport, err)
			return
		}
		rw = tc
	}
	resp, body, err := httpProbe(rw, u)
	if err == nil && tlsConf == nil && strings.Contains(body, "HTTPS server") {
		// Go's TLS server answers a plain request with this 400.
		c.r.add(Fail, "PRODUCER_USE_TLS", `set PRODUCER_USE_TLS="true" with a client certificate (the consumer has CONSUMER_USE_TLS="true")`, "the consumer %s requires TLS", hostport)
		return
	}
	if err != nil {
		if tlsConf != nil {
			c.tlsFailure(hostport, err)
			return
		}
		c.r.add(Fail, "PRODUCER_USE_TLS", `the consumer seems to require TLS: set PRODUCER_USE_TLS="true" with a client certificate`, "no HTTP answer from %s over plain TCP: %v", hostport, netCause(err))
		return
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		c.r.add(Warn, key, "raise CONSUMER_MAX_CONNS / CONSUMER_MAX_CONNS_PER_CERT, or stop duplicate producers using this certificate", "consumer %s refuses new sessions now: %s", hostport, resp.Status)
		return
	}
	if tlsConf == nil {
		c.r.pass(key, "consumer %s answers over plain ws:// (HTTP %d)", hostport, resp.StatusCode)
		return
	}
	st := rw.(*tls.Conn).ConnectionState()
	c.r.pass("PRODUCER_CERTFILE", "TLS handshake accepted by %s (%s, server certificate %s)", hostport, tls.VersionName(st.Version), name(leafOf(st)))
}

func leafOf(st tls.ConnectionState) *x509.Certificate {
	if len(st.PeerCertificates) == 0 {
		return nil
	}
	return st.PeerCertificates[0]
}

// httpProbe sends one GET and reads the status line: any answer means the
// session layer (TLS with client certificate) was accepted.
func httpProbe(conn net.Conn, u *url.URL) (*http.Response, string, error) {
	req, err := http.NewRequest(http.MethodGet, (&url.URL{Scheme: "http", Host: u.Host, Path: "/"}).String(), nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("User-Agent", "sysmon-setup-check")
	req.Close = true
	if err := req.Write(conn); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, "", err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp, string(body), nil
}

// tlsFailure names the side at fault in a failed handshake.
func (c *checker) tlsFailure(hostport string, err error) {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		recErr    tls.RecordHeaderError
		opErr     *net.OpError
	)
	switch {
	case errors.As(err, &hostErr):
		c.r.add(Fail, "PRODUCER_SERVER_NAME", "set PRODUCER_SERVER_NAME to a name the consumer's certificate holds, or leave it empty to check the chain only (as the original did)",
			"the consumer's certificate %s does not name %q: %v", name(hostErr.Certificate), hostErr.Host, err)
	case errors.As(err, &unknownCA):
		c.r.add(Fail, "PRODUCER_CACERTFILE", "point PRODUCER_CACERTFILE at the CA that issued the consumer's certificate",
			"the consumer %s presents a certificate that the CA in PRODUCER_CACERTFILE did not issue: %v", hostport, err)
	case errors.As(err, &invalid):
		c.r.add(Fail, "PRODUCER_CACERTFILE", "the consumer's certificate must be valid now and allow serverAuth: reissue it with `sysmon ca server`",
			"the consumer %s presents an unusable certificate: %v", hostport, err)
	case errors.As(err, &recErr):
		c.r.add(Fail, "PRODUCER_USE_TLS", `the consumer runs without TLS (CONSUMER_USE_TLS="false"): set PRODUCER_USE_TLS="false" to match, or better, turn TLS on at the consumer`,
			"the consumer %s does not speak TLS", hostport)
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		c.r.add(Fail, "PRODUCER_CERTFILE", "the consumer accepts client certificates issued by its CONSUMER_CACERTFILE CA, not revoked, allowing clientAuth: issue one there with `sysmon ca client`",
			"the consumer %s refused this client certificate (%v)", hostport, opErr.Err)
	case strings.Contains(err.Error(), "verify server certificate"):
		c.r.add(Fail, "PRODUCER_CACERTFILE", "point PRODUCER_CACERTFILE at the CA that issued the consumer's certificate",
			"the consumer's certificate does not verify: %v", err)
	default:
		c.r.add(Fail, "PRODUCER_CERTFILE", "check the consumer's log for why it refused the connection",
			"TLS session with %s failed: %v", hostport, netCause(err))
	}
}

// netCause drops the "dial tcp 1.2.3.4:5->" prefix that repeats what the
// line already says.
func netCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil && op.Op != "remote error" {
		return op.Err
	}
	return err
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// metricsAddr checks a metrics address parses and is free.
func (c *checker) metricsAddr(key, addr string) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		c.r.add(Fail, key, "use host:port such as 127.0.0.1:9464", "%q is not host:port", addr)
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.r.add(Warn, key, "pick a free port, or this is the running sysmon itself", "cannot listen on %s now: %v", addr, netCause(err))
		return
	}
	ln.Close()
	c.r.pass(key, "%s free for /metrics", addr)
}
