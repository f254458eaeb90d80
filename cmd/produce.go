package cmd

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sysmon/sysmon/pkg/collect"
	"github.com/sysmon/sysmon/pkg/config"
	"github.com/sysmon/sysmon/pkg/metrics"
	"github.com/sysmon/sysmon/pkg/pki"
	"github.com/sysmon/sysmon/pkg/spool"
	"github.com/sysmon/sysmon/pkg/transport"
	"github.com/sysmon/sysmon/pkg/wire"
)

type produceOptions struct {
	env     string
	once    bool
	json    bool
	logs    logOptions
	keys    keyFlags
	drain   time.Duration
	stdout  io.Writer
	stderr  io.Writer
	offerJS bool
}

func newProduceCmd() *cobra.Command {
	o := &produceOptions{keys: keyFlags{}}
	c := &cobra.Command{
		Use:   "produce",
		Short: "Sample this host's /proc and push samples to a consumer over mutual TLS",
		Long: `produce reads /proc every PRODUCER_INTERVAL (process top, host CPU, load and
memory, node status) and sends each sample to the consumer over a WebSocket
secured with mutual TLS. Samples wait in the spool (PRODUCER_SPOOL_DIR) until the consumer
acknowledges them.`,
		Example: `  sysmon produce --env producer.env
  sysmon produce --once            # print one sample as a table, no consumer needed
  sysmon produce --once --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.stdout, o.stderr = c.OutOrStdout(), c.ErrOrStderr()
			return runProduce(c.Context(), o, o.keys.values(c))
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.env, "env", "", "env file with PRODUCER_* keys (the original's producer.env works as is)")
	fs.BoolVar(&o.once, "once", false, "print one sample to stdout and exit (no consumer needed)")
	fs.BoolVar(&o.json, "json", false, "with --once: print JSON instead of a table")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "on SIGTERM, wait this long for outstanding acknowledgements")
	fs.BoolVar(&o.offerJS, "offer-json", true, "also offer the sysmon.v1+json subprotocol (for third-party consumers)")
	o.keys.add(fs, "node", "PRODUCER_NODE", "node name to report as")
	o.keys.add(fs, "interval", "PRODUCER_INTERVAL", "time between samples")
	o.keys.add(fs, "top", "PRODUCER_TOP_N", "processes per top category")
	o.keys.add(fs, "proc-root", "PRODUCER_PROC_ROOT", "where /proc is mounted")
	o.keys.add(fs, "consumer", "PRODUCER_URLS", "consumer URL(s), e.g. wss://collector:8443/")
	o.keys.add(fs, "spool-dir", "PRODUCER_SPOOL_DIR", "spool directory")
	o.logs.register(fs)
	return c
}

func runProduce(ctx context.Context, o *produceOptions, flags map[string]string) error {
	log, err := o.logs.logger(o.stderr)
	if err != nil {
		return err
	}
	if o.once {
		// One sample to stdout needs neither certificates nor a consumer.
		flags["PRODUCER_USE_TLS"] = "false"
	}
	cfg, err := config.LoadProducer(o.env, flags)
	if err != nil {
		return err
	}
	warnAll(log, cfg.Warnings)
	col, err := collect.New(collect.Options{
		ProcRoot:   cfg.ProcRoot,
		TopN:       cfg.TopN,
		SuspectRSS: cfg.SuspectRSS,
		MaxProcs:   cfg.MaxProcs,
		StatusCmd:  cfg.StatusCmd,
		Logger:     log,
	})
	if err != nil {
		if runtime.GOOS != "linux" {
			return usageError{err} // no /proc to point at: the hint would mislead
		}
		return usageError{fmt.Errorf("%w (set PRODUCER_PROC_ROOT to a mounted /proc)", err)}
	}
	defer col.Close()
	node := cfg.Node
	if node == "" {
		node = collect.HostName(cfg.ProcRoot)
	}
	if o.once {
		return produceOnce(ctx, o, col, cfg.Interval, node)
	}

	var tlsConf *tls.Config
	var clientNotAfter time.Time
	if cfg.UseTLS {
		cert, err := pki.LoadKeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return &config.Error{File: cfg.File, Key: "PRODUCER_CERTFILE", Msg: err.Error(), Fix: "point it at the client PEM printed by `sysmon ca client` (key and certificate in one file)"}
		}
		pool, _, err := pki.LoadCAPool(cfg.CACertFile)
		if err != nil {
			return &config.Error{File: cfg.File, Key: "PRODUCER_CACERTFILE", Msg: err.Error(), Fix: "point it at the CA certificate (certs/certs/cacert.pem of `sysmon ca init`)"}
		}
		tlsConf = pki.ClientTLSConfig(cert, pool, cfg.ServerName)
		clientNotAfter = cert.Leaf.NotAfter
	} else {
		log.Warn("PRODUCER_USE_TLS=false: samples travel unencrypted and unauthenticated; use only for testing")
	}

	sp, err := spool.OpenDisk(cfg.SpoolDir, spool.DiskOptions{
		MaxBytes:       cfg.SpoolMaxBytes,
		MaxAge:         cfg.SpoolMaxAge,
		MemoryFallback: 1000,
		Logger:         log,
	})
	if err != nil {
		return &config.Error{File: cfg.File, Key: "PRODUCER_SPOOL_DIR", Msg: err.Error(), Fix: "point PRODUCER_SPOOL_DIR at a writable directory of its own"}
	}
	defer func() {
		if err := sp.Close(); err != nil {
			log.Error("close spool", "dir", cfg.SpoolDir, "err", err)
		}
	}()
	if err := sp.BindNode(node); err != nil {
		return &config.Error{File: cfg.File, Key: "PRODUCER_SPOOL_DIR", Msg: err.Error(), Fix: "each node needs its own spool directory"}
	}
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = metrics.Listen(cfg.MetricsAddr); err != nil {
			return &config.Error{File: cfg.File, Key: "PRODUCER_METRICS_ADDR", Msg: err.Error(), Fix: "use a free host:port such as 127.0.0.1:9465, or leave it empty"}
		}
		defer metricsLn.Close()
	}
	var sent atomic.Uint64 // highest sequence handed to the transport, for metrics
	hello := wire.Hello{
		Node:         node,
		AgentVersion: version,
		BootID:       collect.BootID(cfg.ProcRoot),
		// The stream identity survives restarts with the spool, so the
		// consumer can tell a replay from new data.
		SpoolID: sp.SpoolID(),
	}
	client := transport.NewClient(transport.ClientOptions{
		URLs:         cfg.URLs,
		TLS:          tlsConf,
		Hello:        hello,
		Outbox:       outboxAdapter{Outbox: sp, sent: &sent},
		Logger:       log,
		PingInterval: min(max(cfg.Interval, time.Second), 10*time.Second),
		OfferJSON:    o.offerJS,
	})
	pm := metrics.NewProducer(version, func() metrics.ProducerState {
		st := sp.Stats()
		return metrics.ProducerState{
			BatchesSent:    max(sent.Load(), st.Acked),
			BatchesAcked:   st.Acked,
			SpooledBatches: st.Records,
			SpooledBytes:   st.Bytes,
			OldestUnsent:   st.Oldest,
			Connected:      client.Connected(),
			ShedSamples:    st.ShedSamples,
			DroppedBatches: st.DroppedBatches + st.MemoryDropped,
			SpoolError:     st.DiskError,
		}
	})
	pm.SetCertExpiry("client", clientNotAfter)
	go pm.LogStatus(ctx, log, time.Minute)
	if metricsLn != nil {
		healthy := func() error {
			s := pm.Status()
			if s.SpoolError != "" {
				return fmt.Errorf("spool: %s", s.SpoolError)
			}
			if !s.Connected && s.OldestUnsentAge > 5*time.Minute {
				return fmt.Errorf("no consumer connection; oldest unsent batch is %s old", s.OldestUnsentAge.Round(time.Second))
			}
			return nil
		}
		go func() {
			if err := metrics.ServeListener(ctx, metricsLn, pm.Registry(), healthy); err != nil {
				log.Error("metrics server stopped", "err", err)
			}
		}()
		log.Info("serving metrics", "url", "http://"+metricsLn.Addr().String()+"/metrics")
	}
	log.Info("producer starting", "node", node, "consumer", strings.Join(cfg.URLs, ","), "interval", cfg.Interval.String())
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx, o.drain) }()

	sampleLoop(ctx, log, col, cfg.Interval, func(s *wire.Sample) error {
		// AppendNext numbers and stores in one step: an acknowledgement from
		// the consumer may move the spool's sequence on concurrently.
		_, err := sp.AppendNext(func(seq uint64) ([]byte, error) {
			return wire.Binary.Append(nil, &wire.Batch{Seq: seq, Samples: []wire.Sample{*s}})
		})
		if err == nil {
			pm.SampleTaken()
		}
		return err
	})
	return <-done
}

// sampleLoop samples every interval until ctx is done, aligned to the
// interval so that samples of a fleet line up in time.
func sampleLoop(ctx context.Context, log *slog.Logger, col *collect.Collector, interval time.Duration, emit func(*wire.Sample) error) {
	// Prime the rates: the first sample has no interval to measure.
	if _, err := col.Sample(ctx); err != nil && ctx.Err() == nil {
		log.Error("first scan failed", "err", err)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s, err := col.Sample(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("scan failed", "err", err)
			}
			continue
		}
		if err := emit(s); err != nil {
			log.Error("cannot queue sample", "err", err)
		}
	}
}

func produceOnce(ctx context.Context, o *produceOptions, col *collect.Collector, interval time.Duration, node string) error {
	if _, err := col.Sample(ctx); err != nil {
		return err
	}
	select {
	case <-time.After(min(interval, time.Second)):
	case <-ctx.Done():
		return ctx.Err()
	}
	s, err := col.Sample(ctx)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Node string `json:"node"`
			*wire.Sample
		}{node, s})
	}
	printSample(o.stdout, node, s)
	return nil
}

func printSample(w io.Writer, node string, s *wire.Sample) {
	fmt.Fprintf(w, "node %s at %s\n", node, s.Time.Local().Format(time.RFC3339))
	if h := s.Host; h != nil {
		fmt.Fprintf(w, "load %.2f %.2f %.2f  cpu user %.1f%% system %.1f%% iowait %.1f%% idle %.1f%% steal %.1f%%  procs %d running %d blocked %d\n",
			h.Load1, h.Load5, h.Load15, h.CPUUser, h.CPUSystem, h.CPUIOWait, h.CPUIdle, h.CPUSteal, h.ProcsTotal, h.ProcsRunning, h.ProcsBlocked)
	}
	if m := s.Memory; m != nil {
		fmt.Fprintf(w, "memory total %s available %s free %s cached %s  swap %s free %s\n",
			human(m.Total), human(m.Available), human(m.Free), human(m.Cached), human(m.SwapTotal), human(m.SwapFree))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PID\tUSER\tS\tCPU%\tRSS\tTHR\t COMMAND")
	for _, p := range s.Procs {
		pid := fmt.Sprint(p.PID)
		if p.PID == wire.OtherPID {
			pid = "-"
		}
		cmd := p.Cmdline
		if cmd == "" {
			cmd = "[" + p.Comm + "]"
		}
		if len(cmd) > 80 {
			cmd = cmd[:77] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%s\t%d\t %s\n", pid, p.User, p.State, p.CPUPct, human(p.RSS), p.Threads, cmd)
	}
	tw.Flush()
}

func human(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%dB", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ci", float64(b)/float64(div), "KMGTP"[exp])
}

// outboxAdapter presents a spool to the transport.
type outboxAdapter struct {
	spool.Outbox
	sent *atomic.Uint64 // highest sequence handed to the transport, for metrics; may be nil
}

func (a outboxAdapter) Pending(after uint64, max int) ([]transport.Record, error) {
	recs, err := a.Outbox.Pending(after, max)
	out := make([]transport.Record, len(recs))
	for i, r := range recs {
		out[i] = transport.Record{Seq: r.Seq, Payload: r.Payload}
		if a.sent != nil && r.Seq > a.sent.Load() {
			a.sent.Store(r.Seq) // one sender goroutine calls Pending
		}
	}
	return out, err
}
