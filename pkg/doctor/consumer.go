package doctor

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sysmon/sysmon/pkg/config"
	"github.com/sysmon/sysmon/pkg/pgserver"
	"github.com/sysmon/sysmon/pkg/pki"
)

func (c *checker) consumer(ctx context.Context, cfg *config.Consumer) {
	if !cfg.UseTLS {
		c.r.add(Warn, "CONSUMER_USE_TLS", `set CONSUMER_USE_TLS="true" with a server certificate for anything but a test`, "false: producers connect unauthenticated over plain ws://")
	} else {
		var t *trust
		if c.ok("CONSUMER_CACERTFILE") {
			t = c.loadCA("CONSUMER_CACERTFILE", cfg.CACertFile)
		}
		if c.ok("CONSUMER_CERTFILE", "CONSUMER_KEYFILE") {
			pair := c.loadPair("CONSUMER_CERTFILE", cfg.CertFile, "CONSUMER_KEYFILE", cfg.KeyFile,
				"point CONSUMER_CERTFILE and CONSUMER_KEYFILE at the pair `sysmon ca server` wrote (certs/certs/server.crt and server.key)")
			if pair != nil {
				if t != nil {
					c.chain("CONSUMER_CERTFILE", pair, t, "CONSUMER_CACERTFILE", "issue the server certificate from this CA with `sysmon ca server`, or point CONSUMER_CACERTFILE at the CA that issued it (producers must trust it too)")
				}
				c.eku("CONSUMER_CERTFILE", pair.Leaf, x509.ExtKeyUsageServerAuth, "serverAuth", "issue a server certificate with `sysmon ca server`")
				c.expiry("CONSUMER_CERTFILE", "server certificate", pair.Leaf, "issue a new one with `sysmon ca server --force`")
			}
		}
		if c.ok("CONSUMER_CRLDIR") {
			c.crls(cfg, t)
		}
	}
	if c.ok("CONSUMER_LISTEN_IP", "CONSUMER_LISTEN_PORT") {
		c.listen(cfg.ListenAddr)
	}
	if cfg.MetricsAddr != "" {
		c.metricsAddr("CONSUMER_METRICS_ADDR", cfg.MetricsAddr)
	}
	if c.ok("CONSUMER_DB_URL") {
		c.database(ctx, cfg)
	}
}

// crls loads the CRL directory as the consumer does, turning the loader's
// warnings into report lines.
func (c *checker) crls(cfg *config.Consumer, t *trust) {
	if cfg.CRLDir == "" {
		c.r.add(Warn, "CONSUMER_CRLDIR", "set it to the CA's crl directory (certs/crl) so that `sysmon ca revoke` takes effect", "empty: revoked client certificates are still accepted")
		return
	}
	if t == nil {
		c.r.add(Warn, "CONSUMER_CRLDIR", "fix CONSUMER_CACERTFILE first", "not checked: CRLs are verified against the CA, which did not load")
		return
	}
	logs := &recorder{}
	if _, err := pki.NewRevocations(cfg.CRLDir, t.cas, slog.New(logs)); err != nil {
		c.r.add(Fail, "CONSUMER_CRLDIR", "make the directory readable, or set CONSUMER_CRLDIR=\"\" to disable revocation checks", "%v", err)
		return
	}
	problems := 0
	for _, rec := range logs.records() {
		if rec.level < slog.LevelWarn {
			continue
		}
		problems++
		st := Warn
		if rec.level >= slog.LevelError && cfg.CRLFailClosed {
			st = Fail // fail-closed turns a stale or broken CRL into refused producers
		}
		c.r.add(st, "CONSUMER_CRLDIR", "regenerate it with `sysmon ca crl` (and copy it here if the CA lives elsewhere)", "%s", rec.text)
	}
	if problems == 0 {
		c.r.pass("CONSUMER_CRLDIR", "%s: CRLs parse and verify against the CA (%s)", cfg.CRLDir, logs.attr("CRLs loaded", "revoked")+" revoked")
	}
}

// listen checks that the consumer could bind its address now.
func (c *checker) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		c.r.pass("CONSUMER_LISTEN_PORT", "%s free to listen on", addr)
		return
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		c.r.add(Warn, "CONSUMER_LISTEN_PORT", "if it is not this consumer already running, pick another port (and tell the producers)", "%s is in use", addr)
	case errors.Is(err, syscall.EACCES):
		c.r.add(Fail, "CONSUMER_LISTEN_PORT", "use a port above 1023, or grant CAP_NET_BIND_SERVICE (AmbientCapabilities= in the systemd unit)", "cannot listen on %s: permission denied", addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		c.r.add(Fail, "CONSUMER_LISTEN_IP", "use an address of this host, or 0.0.0.0 for all", "%s is not an address of this host", addr)
	default:
		c.r.add(Fail, "CONSUMER_LISTEN_PORT", "pick an address and port this host can listen on", "cannot listen on %s: %v", addr, netCause(err))
	}
}

// database connects as the consumer would and checks that its role may
// create the tables and partitions the consumer manages.
func (c *checker) database(ctx context.Context, cfg *config.Consumer) {
	url, key := cfg.DBURL, "CONSUMER_DB_URL"
	switch {
	case url != "":
	case cfg.DBFromEnv:
		key = "CONSUMER_DB_URL" // PG* variables; pgx reads them from ""
	default:
		if c.connects(ctx, config.OriginalDBURL) {
			c.r.pass(key, "not set: the original's database system_monitor@localhost:5432 answers and will be used")
			url = config.OriginalDBURL
			break
		}
		dir, err := pgserver.FindBinaries()
		if err != nil {
			c.r.add(Fail, key, "install the PostgreSQL server (apt-get install postgresql), or set CONSUMER_DB_URL to an existing database", "not set, and %v", err)
			return
		}
		c.r.pass(key, "not set: sysmon consume will run its own PostgreSQL from %s in %s", dir, cfg.DataDir)
		c.writableDir("CONSUMER_DATA_DIR", cfg.DataDir)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		c.r.add(Fail, key, dbFix(err), "cannot connect to the database: %v", dbCause(err))
		return
	}
	defer conn.Close(context.Background())
	var user, db, version string
	var dbCreate bool
	var schema *string
	var schemaCreate *bool
	err = conn.QueryRow(cctx, `SELECT current_user, current_database(), current_setting('server_version'),
		has_database_privilege(current_user, current_database(), 'CREATE'),
		current_schema(), has_schema_privilege(current_schema(), 'CREATE')`).
		Scan(&user, &db, &version, &dbCreate, &schema, &schemaCreate)
	if err != nil {
		c.r.add(Fail, key, "check that the server is PostgreSQL and the role may run queries", "query the database's privileges: %v", dbCause(err))
		return
	}
	c.r.pass(key, "database %q reachable as %q (PostgreSQL %s)", db, user, version)
	switch {
	case schema == nil:
		c.r.add(Fail, key, fmt.Sprintf("create a schema owned by the role (CREATE SCHEMA %s AUTHORIZATION %s) or fix its search_path", quoteIdent(user), quoteIdent(user)),
			"role %q has no schema to create tables in (no schema of its search_path exists)", user)
	case schemaCreate == nil || !*schemaCreate:
		c.r.add(Fail, key, fmt.Sprintf("as a superuser: GRANT CREATE ON SCHEMA %s TO %s (or make the role the database's owner: ALTER DATABASE %s OWNER TO %s)", quoteIdent(*schema), quoteIdent(user), quoteIdent(db), quoteIdent(user)),
			"role %q may not create tables in schema %q", user, *schema)
	default:
		c.r.pass(key, "role %q may create tables in schema %q", user, *schema)
	}
	if !dbCreate {
		c.r.add(Warn, key, fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s, if a later sysmon needs its own schema", quoteIdent(db), quoteIdent(user)),
			"role %q lacks CREATE on database %q (not needed today: the tables go into schema %q)", user, db, deref(schema))
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (c *checker) connects(ctx context.Context, url string) bool {
	cctx, cancel := context.WithTimeout(ctx, min(c.o.Timeout, 2*time.Second))
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		return false
	}
	conn.Close(context.Background())
	return true
}

// dbCause keeps the server's message and drops pgx's connection preamble.
func dbCause(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i > 0 && strings.HasPrefix(s, "failed to connect") {
		return s[i+2:]
	}
	return s
}

func dbFix(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01", "28000":
			return "check the user name and password in CONSUMER_DB_URL (and pg_hba.conf)"
		case "3D000":
			return "create the database (createdb -O USER DBNAME) or fix its name in CONSUMER_DB_URL"
		}
	}
	if errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused") {
		return "start PostgreSQL, or fix the host and port in CONSUMER_DB_URL; unset it to let sysmon run its own"
	}
	return "check CONSUMER_DB_URL (postgres://user:password@host:5432/dbname)"
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// recorder is a slog handler that keeps records, to report the CRL
// loader's findings as check lines.
type recorder struct {
	mu   sync.Mutex
	recs []record
}

type record struct {
	level slog.Level
	msg   string
	text  string
	attrs map[string]string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	x := record{level: rec.Level, msg: rec.Message, attrs: map[string]string{}}
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		x.attrs[a.Key] = a.Value.String()
		fmt.Fprintf(&b, " %s=%s", a.Key, a.Value)
		return true
	})
	x.text = b.String()
	r.mu.Lock()
	r.recs = append(r.recs, x)
	r.mu.Unlock()
	return nil
}

func (r *recorder) records() []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]record(nil), r.recs...)
}

func (r *recorder) attr(msg, key string) string {
	for _, x := range r.records() {
		if x.msg == msg {
			if v, ok := x.attrs[key]; ok {
				return v
			}
		}
	}
	return "0"
}
