package cmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sysmon/sysmon/pkg/config"
)

type setupOptions struct {
	role   config.Role
	out    string
	keys   keyFlags
	stdout io.Writer
}

func newSetupCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "setup consumer|producer",
		Short: "Write an env file for the consumer or the producer",
		Long: `setup writes an env file with every key of the role, a comment per key, the
values given by flags set and the rest commented out at their defaults. A
file it replaces is kept as FILE.bak-<time>.`,
		Example: `  sysmon setup consumer --listen-ip 0.0.0.0 --port 8443 --out consumer.env
  sysmon setup producer --consumer-ip collector.example.com --port 8443 \
      --cert certs/client_keys/ops@example.com_20261203.pem --out producer.env`,
	}
	c.AddCommand(newSetupRoleCmd(config.RoleConsumer), newSetupRoleCmd(config.RoleProducer))
	return c
}

func newSetupRoleCmd(role config.Role) *cobra.Command {
	o := &setupOptions{role: role, keys: keyFlags{}}
	c := &cobra.Command{
		Use:   string(role),
		Short: fmt.Sprintf("Write a %s env file from flags", role),
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.stdout = c.OutOrStdout()
			return runSetup(o, o.keys.values(c))
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.out, "out", string(role)+".env", "env file to write")
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
}

func runSetup(o *setupOptions, values map[string]string) error {
	backup, err := config.WriteEnvFile(o.out, o.role, values)
	if err != nil {
		return err
	}
	if backup != "" {
		fmt.Fprintf(o.stdout, "kept the previous file as %s\n", backup)
	}
	fmt.Fprintf(o.stdout, "wrote %s\n", o.out)
	return nil
}
