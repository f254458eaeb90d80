package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/sysmon/sysmon/pkg/metrics"
	"github.com/sysmon/sysmon/pkg/wire"
)

type nopSink struct{}

func (nopSink) OpenStream(context.Context, *wire.Hello) (uint64, error)    { return 0, nil }
func (nopSink) WriteBatch(context.Context, *wire.Hello, *wire.Batch) error { return nil }

// BenchmarkConsumerHooks measures what the metrics add per batch on the
// consumer's ingest path (the wrapped WriteBatch plus OnBatch), against the
// bare sink call in the same run.
func BenchmarkConsumerHooks(b *testing.B) {
	h := &wire.Hello{Node: "n", SpoolID: "s"}
	batches := make([]*wire.Batch, 1024)
	for i := range batches {
		batches[i] = batch(uint64(i+1), 30)
	}
	ctx := context.Background()
	b.Run("bare", func(b *testing.B) {
		var s metrics.Sink = nopSink{}
		for i := 0; b.Loop(); i++ {
			s.WriteBatch(ctx, h, batches[i%len(batches)])
		}
	})
	b.Run("metrics", func(b *testing.B) {
		m := metrics.NewConsumer("bench")
		s := m.WrapSink(nopSink{})
		for i := 0; b.Loop(); i++ {
			bt := batches[i%len(batches)]
			s.WriteBatch(ctx, h, bt)
			m.OnBatch(h, bt, time.Millisecond)
		}
	})
}
