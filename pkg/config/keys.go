package config

// Role is the side of the bridge a key belongs to.
type Role string

const (
	RoleProducer Role = "producer"
	RoleConsumer Role = "consumer"
)

// Key describes one configuration key. The table below is the single source
// for defaults, validation of names, `sysmon setup` output and the README's
// configuration reference.
type Key struct {
	Name    string
	Role    Role
	Default string // as written in an env file; "" means unset
	Doc     string
	Secret  bool // the value may hold a password: files holding it are 0600
	Seed    bool // accepted from the original tool's env files
}

// Keys lists every key sysmon reads, in the order setup writes them.
var Keys = []Key{
	{Name: "CONSUMER_ENABLE", Role: RoleConsumer, Default: "true", Seed: true, Doc: "Run the consumer; false makes `sysmon consume` refuse to start (exit 2)."},
	{Name: "CONSUMER_LISTEN_IP", Role: RoleConsumer, Default: "0.0.0.0", Seed: true, Doc: "Address the consumer listens on for producers (0.0.0.0 = all IPv4, :: = all)."},
	{Name: "CONSUMER_LISTEN_PORT", Role: RoleConsumer, Default: "8443", Seed: true, Doc: "TCP port the consumer listens on."},
	{Name: "CONSUMER_USE_TLS", Role: RoleConsumer, Default: "true", Seed: true, Doc: "Require mutual TLS (wss://). false serves plain ws:// for testing only, with a warning."},
	{Name: "CONSUMER_CACERTFILE", Role: RoleConsumer, Default: "certs/certs/cacert.pem", Seed: true, Doc: "CA certificate(s) that producers' client certificates must chain to (PEM)."},
	{Name: "CONSUMER_CERTFILE", Role: RoleConsumer, Default: "certs/certs/server.crt", Seed: true, Doc: "The consumer's server certificate (PEM)."},
	{Name: "CONSUMER_KEYFILE", Role: RoleConsumer, Default: "certs/certs/server.key", Seed: true, Doc: "Private key of the server certificate (PEM)."},
	{Name: "CONSUMER_CRLDIR", Role: RoleConsumer, Default: "certs/crl", Seed: true, Doc: "Directory of CRLs (<hash>.rN links, *.crl, *.pem; PEM or DER), reloaded when it changes. Empty disables revocation checks."},
	{Name: "CONSUMER_CRL_FAIL_CLOSED", Role: RoleConsumer, Default: "false", Doc: "Refuse every producer while a CRL is past its next-update (otherwise log loudly and keep using it)."},
	{Name: "CONSUMER_DB_URL", Role: RoleConsumer, Secret: true, Doc: "PostgreSQL URL (postgres://user:pass@host:5432/db). Unset: libpq PG* variables, then the original's defaults (system_monitor@localhost:5432)."},
	{Name: "CONSUMER_RETENTION_DAYS", Role: RoleConsumer, Default: "10", Doc: "Days of daily partitions kept; older partitions are dropped."},
	{Name: "CONSUMER_PARTITION_DAYS_AHEAD", Role: RoleConsumer, Default: "10", Doc: "Days of partitions created ahead of today."},
	{Name: "CONSUMER_DATA_DIR", Role: RoleConsumer, Doc: "Data directory of the consumer's own PostgreSQL when no database is configured [~/.local/share/sysmon/postgres; /var/lib/sysmon/postgres as root]."},
	{Name: "CONSUMER_METRICS_ADDR", Role: RoleConsumer, Doc: "Address serving Prometheus /metrics and /healthz, e.g. 127.0.0.1:9464. Empty disables."},
	{Name: "CONSUMER_MAX_CONNS", Role: RoleConsumer, Default: "4096", Doc: "Most concurrent producer connections in total."},
	{Name: "CONSUMER_MAX_CONNS_PER_CERT", Role: RoleConsumer, Default: "4", Doc: "Most concurrent connections presenting the same client certificate."},

	{Name: "PRODUCER_ENABLE", Role: RoleProducer, Default: "true", Seed: true, Doc: "Run the producer; false makes `sysmon produce` refuse to start (exit 2)."},
	{Name: "PRODUCER_IP", Role: RoleProducer, Default: "127.0.0.1", Seed: true, Doc: "Address or host name of the consumer."},
	{Name: "PRODUCER_PORT", Role: RoleProducer, Default: "8443", Seed: true, Doc: "Port of the consumer."},
	{Name: "PRODUCER_USE_TLS", Role: RoleProducer, Default: "true", Seed: true, Doc: "Connect with mutual TLS (wss://). false connects with plain ws:// for testing only."},
	{Name: "PRODUCER_CACERTFILE", Role: RoleProducer, Default: "certs/certs/cacert.pem", Seed: true, Doc: "CA certificate the consumer's server certificate must chain to (PEM)."},
	{Name: "PRODUCER_CERTFILE", Role: RoleProducer, Seed: true, Doc: "This producer's client certificate: one PEM holding the private key and the certificate, in either order."},
	{Name: "PRODUCER_KEYFILE", Role: RoleProducer, Doc: "Private key, when it is not inside PRODUCER_CERTFILE."},
	{Name: "PRODUCER_SERVER_NAME", Role: RoleProducer, Doc: "Verify the consumer's certificate for this host name. Unset: verify its chain against the CA only, as the original did."},
	{Name: "PRODUCER_URLS", Role: RoleProducer, Doc: "Comma-separated wss://host:port/ consumers tried in turn (failover); overrides PRODUCER_IP/PORT."},
	{Name: "PRODUCER_NODE", Role: RoleProducer, Doc: "Node name this host reports as [the host name]."},
	{Name: "PRODUCER_INTERVAL", Role: RoleProducer, Default: "2s", Doc: "Time between samples (Go duration, or seconds)."},
	{Name: "PRODUCER_TOP_N", Role: RoleProducer, Default: "10", Doc: "Processes kept per top category (CPU, memory, memory growth, IO, run-queue wait)."},
	{Name: "PRODUCER_PROC_ROOT", Role: RoleProducer, Default: "/proc", Doc: "Where the host's /proc is mounted (set when running in a container)."},
	{Name: "PRODUCER_STATUS_CMD", Role: RoleProducer, Doc: "Shell command whose output is added to the node status report (run with a timeout)."},
	{Name: "PRODUCER_SUSPECT_RSS", Role: RoleProducer, Default: "524288000", Doc: "A process above this RSS (bytes) raises a suspect_rss event."},
	{Name: "PRODUCER_MAX_PROCS", Role: RoleProducer, Default: "15000", Doc: "Above this many processes, exact per-process collection stops and a max_procs event is raised."},
	{Name: "PRODUCER_SPOOL_DIR", Role: RoleProducer, Doc: "Directory of the on-disk spool holding unacknowledged batches [~/.local/state/sysmon/spool; /var/lib/sysmon/spool as root]; one per producer."},
	{Name: "PRODUCER_SPOOL_MAX_BYTES", Role: RoleProducer, Default: "256MiB", Doc: "Spool size bound; beyond it the oldest per-process detail is shed first (recorded as an event)."},
	{Name: "PRODUCER_SPOOL_MAX_AGE", Role: RoleProducer, Default: "168h", Doc: "Spooled batches older than this lose their per-process detail (recorded as a spool_shed event); PRODUCER_SPOOL_MAX_BYTES bounds the rest."},
	{Name: "PRODUCER_METRICS_ADDR", Role: RoleProducer, Doc: "Address serving Prometheus /metrics and /healthz for the producer. Empty disables."},
}

// KeysFor returns the keys of one role, in table order.
func KeysFor(r Role) []Key {
	var out []Key
	for _, k := range Keys {
		if k.Role == r {
			out = append(out, k)
		}
	}
	return out
}

// LookupKey finds a key by name.
func LookupKey(name string) (Key, bool) {
	for _, k := range Keys {
		if k.Name == name {
			return k, true
		}
	}
	return Key{}, false
}
