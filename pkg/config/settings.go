package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Producer is the typed configuration of `sysmon produce`.
type Producer struct {
	File          string
	Enable        bool
	URLs          []string // wss://host:port/ (ws:// without TLS), tried in turn
	UseTLS        bool
	CACertFile    string
	CertFile      string
	KeyFile       string
	ServerName    string
	Node          string
	Interval      time.Duration
	TopN          int
	ProcRoot      string
	StatusCmd     string
	SuspectRSS    uint64
	MaxProcs      int
	SpoolDir      string
	SpoolMaxBytes uint64
	SpoolMaxAge   time.Duration
	MetricsAddr   string
	Warnings      []string
}

// Consumer is the typed configuration of `sysmon consume`.
type Consumer struct {
	File               string
	Enable             bool
	ListenAddr         string // host:port
	UseTLS             bool
	CACertFile         string
	CertFile           string
	KeyFile            string
	CRLDir             string
	CRLFailClosed      bool
	DBURL              string // "" with DBFromEnv false: no database configured
	DBFromEnv          bool   // libpq PG* variables are set: pgx reads them
	RetentionDays      int
	PartitionDaysAhead int
	DataDir            string
	MetricsAddr        string
	MaxConns           int
	MaxConnsPerCert    int
	Warnings           []string
}

// OriginalDBURL is the database of the original tool's defaults.
const OriginalDBURL = "postgres://system_monitor:system_monitor_password@localhost:5432/system_monitor"

// LoadProducer reads the producer settings from an env file (path may be "")
// with flags and the process environment layered over it.
func LoadProducer(path string, flags map[string]string) (*Producer, error) {
	s, err := NewSource(path, RoleProducer, flags)
	if err != nil {
		return nil, err
	}
	p := &parser{s: s}
	c := &Producer{File: path, Warnings: s.Warnings}
	c.Enable = p.bool("PRODUCER_ENABLE")
	if p.err == nil && !c.Enable {
		return nil, errorf(s.origin("PRODUCER_ENABLE"), "PRODUCER_ENABLE", "set PRODUCER_ENABLE=\"true\" to run the producer", "the producer is disabled")
	}
	c.UseTLS = p.bool("PRODUCER_USE_TLS")
	scheme := "wss"
	if !c.UseTLS {
		scheme = "ws"
	}
	if urls := p.str("PRODUCER_URLS"); urls != "" {
		for _, u := range strings.Split(urls, ",") {
			u = strings.TrimSpace(u)
			pu, err := url.Parse(u)
			if err != nil || (pu.Scheme != "wss" && pu.Scheme != "ws") || pu.Host == "" {
				p.fail("PRODUCER_URLS", "list URLs such as wss://collector1:8443/,wss://collector2:8443/", "%q is not a ws:// or wss:// URL", u)
				break
			}
			c.URLs = append(c.URLs, u)
		}
	} else {
		host := p.str("PRODUCER_IP")
		port := p.port("PRODUCER_PORT")
		if host == "" {
			p.fail("PRODUCER_IP", "set it to the consumer's address or host name", "required but not set")
		}
		c.URLs = []string{fmt.Sprintf("%s://%s/", scheme, net.JoinHostPort(host, fmt.Sprint(port)))}
	}
	if c.UseTLS {
		c.CACertFile = p.file("PRODUCER_CACERTFILE", true)
		c.CertFile = p.file("PRODUCER_CERTFILE", true)
		c.KeyFile = p.file("PRODUCER_KEYFILE", false)
	}
	c.ServerName = p.str("PRODUCER_SERVER_NAME")
	c.Node = p.str("PRODUCER_NODE")
	c.Interval = p.duration("PRODUCER_INTERVAL", 100*time.Millisecond)
	c.TopN = p.int("PRODUCER_TOP_N", 1, 1000)
	c.ProcRoot = p.str("PRODUCER_PROC_ROOT")
	c.StatusCmd = p.str("PRODUCER_STATUS_CMD")
	c.SuspectRSS = p.bytes("PRODUCER_SUSPECT_RSS")
	c.MaxProcs = p.int("PRODUCER_MAX_PROCS", 1, 1<<30)
	c.SpoolDir = p.str("PRODUCER_SPOOL_DIR")
	if c.SpoolDir == "" {
		c.SpoolDir = filepath.Join(stateDir(), "sysmon", "spool")
	}
	c.SpoolMaxBytes = p.bytes("PRODUCER_SPOOL_MAX_BYTES")
	c.SpoolMaxAge = p.duration("PRODUCER_SPOOL_MAX_AGE", time.Minute)
	c.MetricsAddr = p.str("PRODUCER_METRICS_ADDR")
	if p.err != nil {
		return nil, p.err
	}
	return c, nil
}

// LoadConsumer reads the consumer settings from an env file (path may be "")
// with flags and the process environment layered over it.
func LoadConsumer(path string, flags map[string]string) (*Consumer, error) {
	s, err := NewSource(path, RoleConsumer, flags)
	if err != nil {
		return nil, err
	}
	p := &parser{s: s}
	c := &Consumer{File: path, Warnings: s.Warnings}
	c.Enable = p.bool("CONSUMER_ENABLE")
	if p.err == nil && !c.Enable {
		return nil, errorf(s.origin("CONSUMER_ENABLE"), "CONSUMER_ENABLE", "set CONSUMER_ENABLE=\"true\" to run the consumer", "the consumer is disabled")
	}
	ip := p.str("CONSUMER_LISTEN_IP")
	if net.ParseIP(ip) == nil && ip != "localhost" {
		p.fail("CONSUMER_LISTEN_IP", "use an IP address such as 0.0.0.0 or 127.0.0.1", "%q is not an IP address", ip)
	}
	c.ListenAddr = net.JoinHostPort(ip, fmt.Sprint(p.port("CONSUMER_LISTEN_PORT")))
	c.UseTLS = p.bool("CONSUMER_USE_TLS")
	if c.UseTLS {
		c.CACertFile = p.file("CONSUMER_CACERTFILE", true)
		c.CertFile = p.file("CONSUMER_CERTFILE", true)
		c.KeyFile = p.file("CONSUMER_KEYFILE", true)
		c.CRLDir = p.str("CONSUMER_CRLDIR")
		if c.CRLDir != "" {
			if st, err := os.Stat(c.CRLDir); err != nil || !st.IsDir() {
				p.fail("CONSUMER_CRLDIR", "create the directory (sysmon ca init makes certs/crl) or set CONSUMER_CRLDIR=\"\" to disable revocation checks", "%s is not a readable directory", c.CRLDir)
			}
		}
	}
	c.CRLFailClosed = p.bool("CONSUMER_CRL_FAIL_CLOSED")
	c.DBURL = p.str("CONSUMER_DB_URL")
	if c.DBURL == "" {
		c.DBFromEnv = libpqEnvSet(s.LookupEnv)
	} else if u, err := url.Parse(c.DBURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql" && !strings.Contains(c.DBURL, "=")) {
		p.fail("CONSUMER_DB_URL", "use postgres://user:password@host:5432/dbname or a libpq key=value string", "not a PostgreSQL URL")
	}
	c.RetentionDays = p.int("CONSUMER_RETENTION_DAYS", 1, 36500)
	c.PartitionDaysAhead = p.int("CONSUMER_PARTITION_DAYS_AHEAD", 1, 3650)
	c.DataDir = p.str("CONSUMER_DATA_DIR")
	if c.DataDir == "" {
		c.DataDir = filepath.Join(dataDir(), "sysmon", "postgres")
	}
	c.MetricsAddr = p.str("CONSUMER_METRICS_ADDR")
	c.MaxConns = p.int("CONSUMER_MAX_CONNS", 1, 1<<20)
	c.MaxConnsPerCert = p.int("CONSUMER_MAX_CONNS_PER_CERT", 1, 1<<20)
	if p.err != nil {
		return nil, p.err
	}
	return c, nil
}

func libpqEnvSet(lookup func(string) (string, bool)) bool {
	if lookup == nil {
		return false
	}
	for _, k := range []string{"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSERVICE"} {
		if _, ok := lookup(k); ok {
			return true
		}
	}
	return false
}

func stateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib"
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state")
	}
	return os.TempDir()
}

func dataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib"
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share")
	}
	return os.TempDir()
}
