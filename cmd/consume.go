package cmd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/sysmon/sysmon/pkg/config"
	"github.com/sysmon/sysmon/pkg/metrics"
	"github.com/sysmon/sysmon/pkg/pgserver"
	"github.com/sysmon/sysmon/pkg/pki"
	"github.com/sysmon/sysmon/pkg/sink/jsonl"
	"github.com/sysmon/sysmon/pkg/sink/pg"
	"github.com/sysmon/sysmon/pkg/transport"
	"github.com/sysmon/sysmon/pkg/wire"
)

type consumeOptions struct {
	env        string
	output     string
	outputFile string
	logs       logOptions
	keys       keyFlags
	stdout     io.Writer
	stderr     io.Writer
}

func newConsumeCmd() *cobra.Command {
	o := &consumeOptions{keys: keyFlags{}}
	c := &cobra.Command{
		Use:   "consume",
		Short: "Accept producers over mutual TLS and store their samples in PostgreSQL",
		Long: `consume listens for producers, authenticates each by its client certificate
(checked against the CA and the CRLs in CONSUMER_CRLDIR), and writes their
samples into PostgreSQL, acknowledging a batch only once it is committed.
With no database configured it runs its own PostgreSQL from the system's
binaries in CONSUMER_DATA_DIR.`,
		Example: `  sysmon consume --env consumer.env
  sysmon consume --env consumer.env --output jsonl              # JSON lines on stdout
  sysmon consume --env consumer.env --output jsonl --output-file samples.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.stdout, o.stderr = c.OutOrStdout(), c.ErrOrStderr()
			return runConsume(c.Context(), o, o.keys.values(c))
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.env, "env", "", "env file with CONSUMER_* keys (the original's consumer.env works as is)")
	fs.StringVar(&o.output, "output", "postgres", "where batches go: postgres, or jsonl (one JSON line per batch)")
	fs.StringVar(&o.outputFile, "output-file", "", "with --output jsonl: append to this file instead of stdout")
	o.keys.add(fs, "listen-ip", "CONSUMER_LISTEN_IP", "address to listen on")
	o.keys.add(fs, "port", "CONSUMER_LISTEN_PORT", "port to listen on")
	o.keys.add(fs, "db-url", "CONSUMER_DB_URL", "PostgreSQL URL")
	o.keys.add(fs, "data-dir", "CONSUMER_DATA_DIR", "data directory of the consumer's own PostgreSQL")
	o.logs.register(fs)
	return c
}

func runConsume(ctx context.Context, o *consumeOptions, flags map[string]string) error {
	log, err := o.logs.logger(o.stderr)
	if err != nil {
		return err
	}
	if o.output != "postgres" && o.output != "jsonl" {
		return usageError{fmt.Errorf("--output %q: use postgres or jsonl", o.output)}
	}
	cfg, err := config.LoadConsumer(o.env, flags)
	if err != nil {
		return err
	}
	warnAll(log, cfg.Warnings)

	var tlsConf *tls.Config
	var rev *pki.Revocations
	if cfg.UseTLS {
		if tlsConf, rev, err = consumerTLS(cfg, log); err != nil {
			return err
		}
	} else {
		log.Warn("CONSUMER_USE_TLS=false: serving plain ws:// with no authentication; use only for testing")
	}

	// An IPv4 address (0.0.0.0 included) listens on IPv4 only, as the key's
	// documentation says; Go's "tcp" would make 0.0.0.0 dual-stack.
	network := "tcp"
	if host, _, _ := net.SplitHostPort(cfg.ListenAddr); net.ParseIP(host).To4() != nil {
		network = "tcp4"
	}
	ln, err := net.Listen(network, cfg.ListenAddr)
	if err != nil {
		return &config.Error{File: cfg.File, Key: "CONSUMER_LISTEN_PORT", Msg: fmt.Sprintf("cannot listen on %s: %v", cfg.ListenAddr, errors.Unwrap(err)), Fix: "pick a free port, or stop what is listening there"}
	}
	defer ln.Close()

	// Self-observability: counted always, served when CONSUMER_METRICS_ADDR
	// is set. Listening here makes a bad or busy address a configuration
	// error (exit 2) before anything starts.
	m := metrics.NewConsumer(version)
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = metrics.Listen(cfg.MetricsAddr); err != nil {
			return &config.Error{File: cfg.File, Key: "CONSUMER_METRICS_ADDR", Msg: err.Error(), Fix: "use a free host:port such as 127.0.0.1:9464, or leave it empty"}
		}
		defer metricsLn.Close()
	}
	if tlsConf != nil && len(tlsConf.Certificates) > 0 && tlsConf.Certificates[0].Leaf != nil {
		m.SetCertExpiry("server", tlsConf.Certificates[0].Leaf.NotAfter)
	}

	var sink transport.Sink
	var healthy func() error // nil: healthy while serving
	var authorize func(context.Context, *x509.Certificate, *wire.Hello) error
	if o.output == "jsonl" {
		js := jsonl.New(o.stdout)
		if o.outputFile != "" {
			if js, err = jsonl.Create(o.outputFile); err != nil {
				return usageError{err}
			}
		} else {
			// With stdout piped into `head` or a shipper that exits, a
			// write fails with EPIPE instead of killing the process
			// silently; the consumer then closes its sessions and says why.
			signal.Ignore(syscall.SIGPIPE)
			var cancel context.CancelCauseFunc
			ctx, cancel = context.WithCancelCause(ctx)
			defer cancel(nil)
			js.OnClosed = func(err error) { cancel(fmt.Errorf("jsonl output closed by its reader: %w", err)) }
		}
		defer js.Close()
		sink = js
		authorize = certNodeAuthorizer(nil)
	} else {
		store, stop, err := openStore(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer stop()
		sink = store
		authorize = certNodeAuthorizer(claimerOf(store))
		m.SetStoreStats(func() metrics.StoreStats {
			st := store.Stats()
			return metrics.StoreStats{Rows: st.Rows, Skipped: st.Skipped, Rejected: st.Rejected}
		})
		healthy = func() error {
			hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := store.Pool().Ping(hctx); err != nil {
				return fmt.Errorf("database: %w", err)
			}
			return nil
		}
	}

	if rev != nil {
		// The CRL may change between a producer's TLS handshake and its
		// hello: re-check revocation when the session is authorized, so no
		// session of a revoked certificate is ever welcomed.
		bind := authorize
		authorize = func(ctx context.Context, cert *x509.Certificate, h *wire.Hello) error {
			if cert != nil {
				if err := rev.Check(cert); err != nil {
					return err
				}
			}
			return bind(ctx, cert, h)
		}
	}
	srv := transport.NewServer(transport.ServerOptions{
		Sink:            m.WrapSink(sink),
		OnBatch:         m.OnBatch,
		Authorize:       authorize,
		Logger:          log,
		MaxConns:        cfg.MaxConns,
		MaxConnsPerCert: cfg.MaxConnsPerCert,
		Version:         version,
	})
	if rev != nil {
		// Revocation bites on live sessions too: after every CRL reload,
		// sessions of a now-revoked certificate are closed with 1008.
		go rev.Watch(ctx, 2*time.Second, func() {
			n := srv.CloseWhere(func(c *x509.Certificate) bool { return c != nil && rev.Check(c) != nil }, wire.ClosePolicyViolation, "certificate revoked")
			if n > 0 {
				log.Warn("closed sessions of revoked certificates", "sessions", n)
			}
		})
	}
	m.SetConnected(srv.Sessions)
	if metricsLn != nil {
		go func() {
			if err := metrics.ServeListener(ctx, metricsLn, m.Registry(), healthy); err != nil {
				log.Error("metrics server stopped", "err", err)
			}
		}()
		log.Info("serving metrics", "url", "http://"+metricsLn.Addr().String()+"/metrics")
	}
	scheme := "wss"
	if tlsConf == nil {
		scheme = "ws"
	}
	log.Info("consumer listening", "url", fmt.Sprintf("%s://%s/", scheme, ln.Addr()), "output", o.output)
	if err := srv.Serve(ctx, ln, tlsConf); err != nil {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

func consumerTLS(cfg *config.Consumer, log *slog.Logger) (*tls.Config, *pki.Revocations, error) {
	cert, err := pki.LoadKeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, nil, &config.Error{File: cfg.File, Key: "CONSUMER_CERTFILE", Msg: err.Error(), Fix: "point CONSUMER_CERTFILE/CONSUMER_KEYFILE at the pair `sysmon ca server` wrote"}
	}
	pool, cas, err := pki.LoadCAPool(cfg.CACertFile)
	if err != nil {
		return nil, nil, &config.Error{File: cfg.File, Key: "CONSUMER_CACERTFILE", Msg: err.Error(), Fix: "point it at the CA certificate (certs/certs/cacert.pem of `sysmon ca init`)"}
	}
	var rev *pki.Revocations
	if cfg.CRLDir != "" {
		rev, err = pki.NewRevocationsWith(cfg.CRLDir, cas, pki.RevocationOptions{Logger: log, FailClosed: cfg.CRLFailClosed})
		if err != nil {
			return nil, nil, &config.Error{File: cfg.File, Key: "CONSUMER_CRLDIR", Msg: err.Error(), Fix: "regenerate the CRL with `sysmon ca crl`, or set CONSUMER_CRLDIR=\"\" to disable revocation checks"}
		}
	}
	return pki.ServerTLSConfig(cert, pool, rev), rev, nil
}

// nodeClaimer is the database's record of which certificate owns a node.
type nodeClaimer interface {
	ClaimNode(ctx context.Context, node string, cert *x509.Certificate) error
}

// claimerOf returns the store's node claims, if it keeps them.
func claimerOf(store any) nodeClaimer {
	if c, ok := store.(nodeClaimer); ok {
		return c
	}
	return nil
}

// certNodeAuthorizer binds a producer's node name to its certificate: a
// certificate naming nodes may report only for those; one naming none owns
// the nodes it reported first (recorded in the database by claims).
func certNodeAuthorizer(claims nodeClaimer) func(context.Context, *x509.Certificate, *wire.Hello) error {
	return func(ctx context.Context, cert *x509.Certificate, h *wire.Hello) error {
		if cert == nil {
			return nil // plain ws:// testing mode: nothing to bind to
		}
		if nodes := pki.NodesAllowed(cert); len(nodes) > 0 {
			if !slices.Contains(nodes, h.Node) {
				return fmt.Errorf("certificate %q may not report for node %q", cert.Subject.CommonName, h.Node)
			}
			return nil
		}
		if claims == nil {
			return nil
		}
		err := claims.ClaimNode(ctx, h.Node, cert)
		if err != nil && !errors.Is(err, pg.ErrNodeOwned) {
			// Not a refusal: the database could not answer. Let the
			// producer come back rather than refusing it.
			return fmt.Errorf("%w: claim node %q: %v", transport.ErrUnavailable, h.Node, err)
		}
		return err
	}
}

// openStore connects to the configured database, or runs a private
// PostgreSQL when none is configured, and returns the store and its stop.
func openStore(ctx context.Context, cfg *config.Consumer, log *slog.Logger) (*pg.Store, func(), error) {
	url := cfg.DBURL
	var embedded *pgserver.Server
	switch {
	case url != "":
	case cfg.DBFromEnv:
		// pgx reads the PG* variables itself from an empty connection string.
	default:
		if reachable(ctx, config.OriginalDBURL) {
			url = config.OriginalDBURL
			log.Info("using the original system_monitor database on localhost:5432")
			break
		}
		log.Info("no database configured: starting a private PostgreSQL", "data_dir", cfg.DataDir)
		password, err := embeddedPassword(cfg.DataDir)
		if err != nil {
			return nil, nil, err
		}
		srv, err := pgserver.Start(ctx, pgserver.Options{DataDir: cfg.DataDir, Password: password, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("start private PostgreSQL in %s: %w", cfg.DataDir, err)
		}
		// Our own database is ours to keep alive: restart it if it dies.
		go srv.Supervise(ctx)
		embedded = srv
		url = srv.URL()
		log.Info("private PostgreSQL ready; point Grafana at it", "url", redactURL(srv.URL()), "password_file", passwordFile(cfg.DataDir))
	}
	store, err := openWithRetry(ctx, url, pg.Options{
		RetentionDays: cfg.RetentionDays,
		DaysAhead:     cfg.PartitionDaysAhead,
		Logger:        log,
	}, log)
	if err != nil {
		if embedded != nil {
			embedded.Close()
		}
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	go store.Run(ctx)
	return store, func() {
		store.Close()
		if embedded != nil {
			// Close stops the server and removes its socket directory.
			if err := embedded.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "sysmon: stopping private PostgreSQL: %v\n", err)
			}
		}
	}, nil
}

// openWithRetry opens the store, waiting for a database that is down or
// starting (producers keep their data meanwhile); it gives up at once on
// what waiting cannot fix: wrong credentials or a missing database.
func openWithRetry(ctx context.Context, url string, o pg.Options, log *slog.Logger) (*pg.Store, error) {
	delay := time.Second
	for attempt := 0; ; attempt++ {
		store, err := pg.Open(ctx, url, o)
		if err == nil {
			if attempt > 0 {
				log.Info("database reachable; starting")
			}
			return store, nil
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "28") || pgErr.Code == "3D000" || pgErr.Code == "42501") {
			return nil, err // authentication, missing database, no privilege
		}
		if attempt == 0 {
			log.Warn("database not reachable; retrying until it is", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// embeddedPassword returns the password of the private database's role,
// made at random on first use and kept beside the data directory (0600), so
// other local users cannot log in with a well-known default while Grafana's
// data source keeps working across restarts.
func embeddedPassword(dataDir string) (string, error) {
	path := passwordFile(dataDir)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("store the private database's password: %w", err)
	}
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("store the private database's password: %w", err)
	}
	return pw, nil
}

func passwordFile(dataDir string) string { return filepath.Clean(dataDir) + ".password" }

// redactURL hides the password of a database URL for logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func reachable(ctx context.Context, url string) bool {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		return false
	}
	conn.Close(cctx)
	return true
}
