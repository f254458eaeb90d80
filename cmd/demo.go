package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/sysmon/sysmon/pkg/config"
	"github.com/sysmon/sysmon/pkg/pgserver"
	"github.com/sysmon/sysmon/pkg/pki"
	"github.com/sysmon/sysmon/pkg/sink/pg"
	"github.com/sysmon/sysmon/pkg/wire"
)

type demoOptions struct {
	dir      string
	duration time.Duration
	interval time.Duration
	stdout   io.Writer
}

func newDemoCmd() *cobra.Command {
	o := &demoOptions{}
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on this machine: CA, PostgreSQL, consumer and producer",
		Long: `demo mints throwaway certificates, starts a private PostgreSQL from the
system's binaries, writes consumer.env and producer.env as ` + "`sysmon setup`" + ` does,
runs ` + "`sysmon consume`" + ` and ` + "`sysmon produce`" + ` as separate processes on 127.0.0.1,
and prints the latest process top read back from the database. Everything
lives under --dir; the logs are there too.`,
		Example: `  sysmon demo                 # about 20 seconds, then stops everything
  sysmon demo --duration 0    # until Ctrl-C, refreshing the top every 5 seconds`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.stdout = c.OutOrStdout()
			return runDemo(c.Context(), o)
		},
	}
	c.Flags().StringVar(&o.dir, "dir", ".demo", "working directory for certificates, env files, database and logs")
	c.Flags().DurationVar(&o.duration, "duration", 20*time.Second, "how long to run (0: until interrupted)")
	c.Flags().DurationVar(&o.interval, "interval", time.Second, "producer sample interval")
	return c
}

func runDemo(ctx context.Context, o *demoOptions) error {
	started := time.Now()
	say := func(format string, args ...any) { fmt.Fprintf(o.stdout, "demo: "+format+"\n", args...) }
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	// Certificates and env files are minted anew each run; the database is
	// kept so that repeated runs show history.
	for _, sub := range []string{"certs", "consumer.env", "producer.env", "spool"} {
		os.RemoveAll(filepath.Join(dir, sub))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	say("minting a CA, a server certificate for 127.0.0.1 and a client certificate in %s/certs", o.dir)
	ca, err := pki.Init(filepath.Join(dir, "certs"), pki.InitOptions{CN: "sysmon demo CA", Org: "sysmon demo"})
	if err != nil {
		return err
	}
	crt, key, err := ca.IssueServer([]string{"127.0.0.1", "localhost"}, pki.IssueOptions{})
	if err != nil {
		return err
	}
	clientPEM, err := ca.IssueClient("demo-producer", "demo@localhost", nil, pki.IssueOptions{})
	if err != nil {
		return err
	}

	say("starting a private PostgreSQL in %s/pgdata", o.dir)
	db, err := pgserver.Start(ctx, pgserver.Options{DataDir: filepath.Join(dir, "pgdata"), Ephemeral: true})
	if err != nil {
		return err
	}
	defer db.Close()

	port, err := freePort()
	if err != nil {
		return err
	}
	node, _ := os.Hostname()
	consumerEnv, producerEnv := filepath.Join(dir, "consumer.env"), filepath.Join(dir, "producer.env")
	if _, err := config.WriteEnvFile(consumerEnv, config.RoleConsumer, map[string]string{
		"CONSUMER_LISTEN_IP":   "127.0.0.1",
		"CONSUMER_LISTEN_PORT": fmt.Sprint(port),
		"CONSUMER_CACERTFILE":  ca.Path("certs/cacert.pem"),
		"CONSUMER_CERTFILE":    crt,
		"CONSUMER_KEYFILE":     key,
		"CONSUMER_CRLDIR":      ca.Path("crl"),
		"CONSUMER_DB_URL":      db.URL(),
	}); err != nil {
		return err
	}
	if _, err := config.WriteEnvFile(producerEnv, config.RoleProducer, map[string]string{
		"PRODUCER_IP":         "127.0.0.1",
		"PRODUCER_PORT":       fmt.Sprint(port),
		"PRODUCER_CACERTFILE": ca.Path("certs/cacert.pem"),
		"PRODUCER_CERTFILE":   clientPEM,
		"PRODUCER_INTERVAL":   o.interval.String(),
		"PRODUCER_SPOOL_DIR":  filepath.Join(dir, "spool"),
		"PRODUCER_NODE":       node,
	}); err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	consumer, err := startChild(ctx, self, filepath.Join(dir, "consume.log"), "consume", "--env", consumerEnv, "--log-format", "text")
	if err != nil {
		return err
	}
	defer stopChild(consumer)
	producer, err := startChild(ctx, self, filepath.Join(dir, "produce.log"), "produce", "--env", producerEnv, "--log-format", "text")
	if err != nil {
		return err
	}
	defer stopChild(producer)
	say("consumer on wss://127.0.0.1:%d/ and producer for node %q running (logs: %s/consume.log, %s/produce.log)", port, node, o.dir, o.dir)
	say("database: %s", db.URL())

	conn, err := pgx.Connect(ctx, db.URL())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	var deadline <-chan time.Time
	if o.duration > 0 {
		deadline = time.After(o.duration)
	}
	shown := time.Time{}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	waitUntil := time.Now().Add(time.Minute)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline:
			if shown.IsZero() {
				return errors.New("no process top reached the database; see the logs in " + o.dir)
			}
			say("done; run `sysmon demo --duration 0` to keep it running")
			return nil
		case <-tick.C:
		}
		if shown.IsZero() && time.Now().After(waitUntil) {
			return errors.New("no process top reached the database within a minute; see the logs in " + o.dir)
		}
		if !shown.IsZero() && time.Since(shown) < 5*time.Second {
			continue
		}
		ts, procs, err := pg.LatestTop(ctx, conn, node, 15)
		if err != nil || len(procs) == 0 || ts.Before(started) {
			continue // the database is kept across runs: wait for this run's samples
		}
		var m wire.Memory
		conn.QueryRow(ctx, `SELECT total, free, available, buffers, cached, swap_total, swap_free FROM memory WHERE node = $1 ORDER BY ts DESC LIMIT 1`, node).
			Scan(&m.Total, &m.Free, &m.Available, &m.Buffers, &m.Cached, &m.SwapTotal, &m.SwapFree)
		var samples int
		conn.QueryRow(ctx, `SELECT count(DISTINCT ts) FROM prc WHERE node = $1 AND ts >= $2`, node, started).Scan(&samples)
		fmt.Fprintf(o.stdout, "\nlatest process top of %s read back from PostgreSQL (%d samples stored this run):\n", node, samples)
		printSample(o.stdout, node, &wire.Sample{Time: ts, Memory: &m, Procs: procs})
		shown = time.Now()
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startChild(ctx context.Context, self, logPath string, args ...string) (*exec.Cmd, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start sysmon %s: %w", strings.Join(args, " "), err)
	}
	go func() { cmd.Wait(); logf.Close() }()
	return cmd, nil
}

func stopChild(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() {
		for cmd.ProcessState == nil {
			time.Sleep(50 * time.Millisecond)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(12 * time.Second):
		cmd.Process.Kill()
	}
}
