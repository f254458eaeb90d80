package metrics

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sysmon/sysmon/pkg/wire"
)

// Sink is the consumer's batch store as the transport sees it; it has the
// method set of transport.Sink, declared here so that this package need not
// import the transport.
type Sink interface {
	OpenStream(ctx context.Context, h *wire.Hello) (lastSeq uint64, err error)
	WriteBatch(ctx context.Context, h *wire.Hello, b *wire.Batch) error
}

// Consumer holds the consumer's metrics. Its methods are safe for concurrent
// use.
type Consumer struct {
	reg *prometheus.Registry

	framesReceived prometheus.Counter
	rowsReceived   prometheus.Counter
	// Rows committed and batches deduplicated are counted here from
	// OnBatch, unless the store reports its own (SetStoreStats), which
	// knows about rows it rejected and replays it skipped.
	rowsCommitted atomic.Uint64
	batchesDedup  atomic.Uint64
	store         atomic.Pointer[func() StoreStats]
	dbErrors      prometheus.Counter
	latency       prometheus.Histogram
	certs         *certExpiry

	inflight  atomic.Int64
	connected atomic.Pointer[func() int]

	mu      sync.Mutex
	streams map[streamKey]*streamState
}

type streamKey struct{ node, spool string }

// maxStreams bounds the per-stream state kept for deduplication counts.
const maxStreams = 1 << 16

type streamState struct {
	committed uint64      // highest sequence seen durable
	attempt   *wire.Batch // batch of the last WriteBatch, to tell retries from new frames
}

// NewConsumer returns the consumer's metrics in a fresh registry that also
// holds the Go runtime and process collectors.
func NewConsumer(version string) *Consumer {
	c := &Consumer{
		reg:     newRegistry("consumer", version),
		certs:   newCertExpiry("consumer", time.Now),
		streams: map[streamKey]*streamState{},
		framesReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sysmon_consumer_frames_received_total",
			Help: "Batch frames received from producers and handed to the sink (retries of one frame count once).",
		}),
		rowsReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sysmon_consumer_rows_received_total",
			Help: "Table rows in the batch frames received.",
		}),
		dbErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sysmon_consumer_db_errors_total",
			Help: "Failed sink calls (database writes and stream opens); each retry that fails counts.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sysmon_consumer_ingest_latency_seconds",
			Help: "Time from a batch frame's arrival to its being durable.",
			// 1 ms to about 33 s: group commit sits at tens of ms, a
			// struggling database at seconds.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
	}
	c.reg.MustRegister(c.framesReceived, c.rowsReceived, c.dbErrors, c.latency, c.certs, &storeCollector{c: c},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sysmon_consumer_queue_depth",
			Help: "Batches handed to the sink and not yet durable.",
		}, func() float64 { return float64(c.inflight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sysmon_consumer_connected_producers",
			Help: "Producer sessions currently open.",
		}, func() float64 {
			if f := c.connected.Load(); f != nil {
				return float64((*f)())
			}
			return 0
		}),
	)
	return c
}

// Registry returns the registry to serve.
func (c *Consumer) Registry() *prometheus.Registry { return c.reg }

// SetConnected sets the function read for the connected-producers gauge,
// typically (*transport.Server).Sessions.
func (c *Consumer) SetConnected(f func() int) { c.connected.Store(&f) }

// SetCertExpiry records a certificate's expiry under name ("server", "ca");
// a zero time removes it.
func (c *Consumer) SetCertExpiry(name string, notAfter time.Time) { c.certs.set(name, notAfter) }

// StoreStats is what a database sink counts itself (pkg/sink/pg's Stats).
type StoreStats struct {
	Rows     uint64 // rows committed
	Skipped  uint64 // batches skipped as already committed
	Rejected uint64 // rows the database refused, left out of their batch
}

// SetStoreStats makes the rows-committed and batches-deduplicated counters
// report f's figures instead of the hooks' own estimate, and adds the
// rejected-rows counter. f is called once per scrape.
func (c *Consumer) SetStoreStats(f func() StoreStats) { c.store.Store(&f) }

var (
	descRowsCommitted = prometheus.NewDesc("sysmon_consumer_rows_committed_total",
		"Table rows made durable (deduplicated batches and rejected rows excluded).", nil, nil)
	descBatchesDedup = prometheus.NewDesc("sysmon_consumer_batches_deduplicated_total",
		"Batches acknowledged without writing because their sequence was already durable (producer resends).", nil, nil)
	descRowsRejected = prometheus.NewDesc("sysmon_consumer_rows_rejected_total",
		"Rows the database refused (left out of their batch, recorded as events); reported when the store counts them.", nil, nil)
)

// storeCollector reports the counters that the store may own.
type storeCollector struct{ c *Consumer }

func (s *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRowsCommitted
	ch <- descBatchesDedup
	ch <- descRowsRejected
}

func (s *storeCollector) Collect(ch chan<- prometheus.Metric) {
	if f := s.c.store.Load(); f != nil {
		st := (*f)()
		ch <- prometheus.MustNewConstMetric(descRowsCommitted, prometheus.CounterValue, float64(st.Rows))
		ch <- prometheus.MustNewConstMetric(descBatchesDedup, prometheus.CounterValue, float64(st.Skipped))
		ch <- prometheus.MustNewConstMetric(descRowsRejected, prometheus.CounterValue, float64(st.Rejected))
		return
	}
	ch <- prometheus.MustNewConstMetric(descRowsCommitted, prometheus.CounterValue, float64(s.c.rowsCommitted.Load()))
	ch <- prometheus.MustNewConstMetric(descBatchesDedup, prometheus.CounterValue, float64(s.c.batchesDedup.Load()))
}

// WrapSink returns s with frames received, rows received, sink errors and
// queue depth counted. It does not change what s does.
func (c *Consumer) WrapSink(s Sink) Sink { return &countingSink{c: c, s: s} }

// OnBatch has the shape of transport.ServerOptions.OnBatch: it observes a
// batch made durable, counting its rows as committed unless its sequence
// was already durable (a resend), and its ingest latency.
func (c *Consumer) OnBatch(h *wire.Hello, b *wire.Batch, latency time.Duration) {
	c.latency.Observe(latency.Seconds())
	c.mu.Lock()
	st := c.stream(h)
	dup := b.Seq <= st.committed
	if !dup {
		st.committed = b.Seq
	}
	c.mu.Unlock()
	if dup {
		c.batchesDedup.Add(1)
		return
	}
	c.rowsCommitted.Add(uint64(Rows(b)))
}

// stream returns the state of h's stream; c.mu must be held.
func (c *Consumer) stream(h *wire.Hello) *streamState {
	k := streamKey{h.Node, h.SpoolID}
	st := c.streams[k]
	if st == nil {
		// A stream is a producer's spool; spools of restarted producers
		// leave entries behind. Forgetting them all now and then costs at
		// most a few resends counted as committed instead of deduplicated.
		if len(c.streams) >= maxStreams {
			clear(c.streams)
		}
		st = &streamState{}
		c.streams[k] = st
	}
	return st
}

type countingSink struct {
	c *Consumer
	s Sink
}

func (k *countingSink) OpenStream(ctx context.Context, h *wire.Hello) (uint64, error) {
	seq, err := k.s.OpenStream(ctx, h)
	if err != nil {
		if ctx.Err() == nil {
			k.c.dbErrors.Inc()
		}
		return seq, err
	}
	// What the database already holds is not news: a resend of it is a
	// deduplicated batch, not committed rows.
	k.c.mu.Lock()
	st := k.c.stream(h)
	st.committed = max(st.committed, seq)
	k.c.mu.Unlock()
	return seq, nil
}

func (k *countingSink) WriteBatch(ctx context.Context, h *wire.Hello, b *wire.Batch) error {
	k.c.mu.Lock()
	st := k.c.stream(h)
	fresh := st.attempt != b // the transport retries with the same *Batch
	st.attempt = b
	k.c.mu.Unlock()
	if fresh {
		k.c.framesReceived.Inc()
		k.c.rowsReceived.Add(float64(Rows(b)))
	}
	k.c.inflight.Add(1)
	err := k.s.WriteBatch(ctx, h, b)
	k.c.inflight.Add(-1)
	if err != nil {
		if ctx.Err() == nil {
			k.c.dbErrors.Inc()
		}
		return err
	}
	k.c.mu.Lock()
	if st.attempt == b {
		st.attempt = nil // do not hold the batch's memory until the next one
	}
	k.c.mu.Unlock()
	return nil
}
