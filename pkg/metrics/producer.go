package metrics

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ProducerState is what the producer's transport and spool report, read
// once per scrape and once per status line.
type ProducerState struct {
	// BatchesSent and BatchesAcked are running counts. They may start above
	// zero (a spool's sequence survives restarts); they must not go down.
	BatchesSent  uint64
	BatchesAcked uint64
	// SpooledBatches and SpooledBytes are what waits for an acknowledgement.
	SpooledBatches int
	SpooledBytes   uint64
	// OldestUnsent is when the oldest batch not yet acknowledged was
	// taken; zero when nothing waits.
	OldestUnsent time.Time
	Connected    bool
	// ShedSamples and DroppedBatches count what the spool's bounds threw
	// away (per-process detail of samples, whole batches) since start.
	ShedSamples    uint64
	DroppedBatches uint64
	// SpoolError says why the spool cannot write to disk; "" when it can.
	SpoolError string
}

// Producer holds the producer's metrics. Its methods are safe for
// concurrent use.
type Producer struct {
	reg     *prometheus.Registry
	samples prometheus.Counter
	taken   atomic.Uint64
	state   func() ProducerState
	certs   *certExpiry
	now     func() time.Time
}

// NewProducer returns the producer's metrics in a fresh registry (with the
// Go runtime and process collectors). state may be nil until SetState.
func NewProducer(version string, state func() ProducerState) *Producer {
	p := &Producer{
		reg:   newRegistry("producer", version),
		state: state,
		certs: newCertExpiry("producer", time.Now),
		now:   time.Now,
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sysmon_producer_samples_taken_total",
			Help: "Samples of /proc taken and queued for sending.",
		}),
	}
	p.reg.MustRegister(p.samples, p.certs, &stateCollector{p: p})
	return p
}

// Registry returns the registry to serve.
func (p *Producer) Registry() *prometheus.Registry { return p.reg }

// SampleTaken counts one sample queued for sending.
func (p *Producer) SampleTaken() {
	p.samples.Inc()
	p.taken.Add(1)
}

// SetCertExpiry records a certificate's expiry under name ("client", "ca");
// a zero time removes it.
func (p *Producer) SetCertExpiry(name string, notAfter time.Time) { p.certs.set(name, notAfter) }

// Status is one reading of the producer's counters.
type Status struct {
	ProducerState
	SamplesTaken uint64
	// OldestUnsentAge is zero when nothing waits.
	OldestUnsentAge time.Duration
}

// Status reads the state callback once.
func (p *Producer) Status() Status {
	var st ProducerState
	if p.state != nil {
		st = p.state()
	}
	s := Status{ProducerState: st, SamplesTaken: p.taken.Load()}
	if !st.OldestUnsent.IsZero() {
		s.OldestUnsentAge = max(p.now().Sub(st.OldestUnsent), 0)
	}
	return s
}

// LogStatus logs one status line every interval until ctx is done: the
// counters, what changed since the last line, and whether the consumer is
// connected. A producer that is disconnected with batches waiting logs at
// warn, so that an operator grepping for problems finds it.
func (p *Producer) LogStatus(ctx context.Context, log *slog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := p.Status()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := p.Status()
		p.logLine(log, cur, last)
		last = cur
	}
}

func (p *Producer) logLine(log *slog.Logger, cur, last Status) {
	lvl := slog.LevelInfo
	if (!cur.Connected && cur.SpooledBatches > 0) || cur.SpoolError != "" || cur.DroppedBatches > last.DroppedBatches {
		lvl = slog.LevelWarn
	}
	attrs := []any{
		"connected", cur.Connected,
		"samples", cur.SamplesTaken,
		"samples_new", cur.SamplesTaken - min(last.SamplesTaken, cur.SamplesTaken),
		"sent", cur.BatchesSent,
		"acked", cur.BatchesAcked,
		"acked_new", cur.BatchesAcked - min(last.BatchesAcked, cur.BatchesAcked),
		"spooled_batches", cur.SpooledBatches,
		"spooled_bytes", cur.SpooledBytes,
		"oldest_unsent", cur.OldestUnsentAge.Round(time.Second).String(),
	}
	if cur.ShedSamples > 0 || cur.DroppedBatches > 0 {
		attrs = append(attrs, "shed_samples", cur.ShedSamples, "dropped_batches", cur.DroppedBatches)
	}
	if cur.SpoolError != "" {
		attrs = append(attrs, "spool_error", cur.SpoolError)
	}
	log.Log(context.Background(), lvl, "producer status", attrs...)
}

// stateCollector turns one state reading into the state-derived metrics,
// so the callback runs once per scrape, not once per metric.
type stateCollector struct{ p *Producer }

var (
	descSent = prometheus.NewDesc("sysmon_producer_batches_sent_total",
		"Batches handed to the consumer connection (resends after a reconnect count once).", nil, nil)
	descAcked = prometheus.NewDesc("sysmon_producer_batches_acked_total",
		"Batches the consumer acknowledged as durable.", nil, nil)
	descSpooledBatches = prometheus.NewDesc("sysmon_producer_spooled_batches",
		"Batches waiting for an acknowledgement.", nil, nil)
	descSpooledBytes = prometheus.NewDesc("sysmon_producer_spooled_bytes",
		"Bytes of batches waiting for an acknowledgement.", nil, nil)
	descOldest = prometheus.NewDesc("sysmon_producer_oldest_unsent_age_seconds",
		"Age of the oldest batch not yet acknowledged; 0 when nothing waits.", nil, nil)
	descConnected = prometheus.NewDesc("sysmon_producer_connected",
		"1 while a session with a consumer is open, else 0.", nil, nil)
	descShed = prometheus.NewDesc("sysmon_producer_spool_shed_samples_total",
		"Samples whose per-process detail the spool's bounds shed.", nil, nil)
	descDropped = prometheus.NewDesc("sysmon_producer_spool_dropped_batches_total",
		"Whole batches the spool's bounds dropped unsent.", nil, nil)
	descSpoolOK = prometheus.NewDesc("sysmon_producer_spool_disk_ok",
		"1 while the spool writes to disk, 0 while it holds batches in memory only.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSent, descAcked, descSpooledBatches, descSpooledBytes, descOldest, descConnected, descShed, descDropped, descSpoolOK} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Status()
	conn := 0.0
	if s.Connected {
		conn = 1
	}
	ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(s.BatchesSent))
	ch <- prometheus.MustNewConstMetric(descAcked, prometheus.CounterValue, float64(s.BatchesAcked))
	ch <- prometheus.MustNewConstMetric(descSpooledBatches, prometheus.GaugeValue, float64(s.SpooledBatches))
	ch <- prometheus.MustNewConstMetric(descSpooledBytes, prometheus.GaugeValue, float64(s.SpooledBytes))
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, s.OldestUnsentAge.Seconds())
	ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, conn)
	ch <- prometheus.MustNewConstMetric(descShed, prometheus.CounterValue, float64(s.ShedSamples))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.DroppedBatches))
	diskOK := 1.0
	if s.SpoolError != "" {
		diskOK = 0
	}
	ch <- prometheus.MustNewConstMetric(descSpoolOK, prometheus.GaugeValue, diskOK)
}
