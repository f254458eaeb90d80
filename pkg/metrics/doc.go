// Package metrics owns sysmon's self-observability: the Prometheus
// registries of the consumer and the producer, the HTTP server that exposes
// them on /metrics with a /healthz probe, and the producer's once-a-minute
// status log line.
//
// The package observes; it does not reach into other packages. cmd feeds it
// through small hooks: the consumer's sink is wrapped (WrapSink) and its
// transport reports durable batches (OnBatch); the producer reports each
// sample (SampleTaken) and answers a ProducerState callback that is read
// once per scrape or status line, so a spool is walked at most that often.
package metrics
