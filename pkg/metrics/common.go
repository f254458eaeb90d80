package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sysmon/sysmon/pkg/wire"
)

// newRegistry returns a registry with the Go runtime and process collectors
// and a build-info gauge, so that every sysmon endpoint answers the usual
// "which version, how much memory, how many fds" questions.
func newRegistry(role, version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "sysmon_build_info",
			Help:        "Always 1; the labels say which sysmon runs in which role.",
			ConstLabels: prometheus.Labels{"role": role, "version": version},
		}, func() float64 { return 1 }),
	)
	return reg
}

// certExpiry exports the days left on certificates, computed at scrape time
// so the gauge keeps falling between reloads.
type certExpiry struct {
	desc *prometheus.Desc
	now  func() time.Time

	mu    sync.Mutex
	certs map[string]time.Time
}

func newCertExpiry(role string, now func() time.Time) *certExpiry {
	return &certExpiry{
		desc: prometheus.NewDesc("sysmon_"+role+"_cert_expiry_days",
			"Days until the certificate expires (negative once expired).", []string{"cert"}, nil),
		now:   now,
		certs: map[string]time.Time{},
	}
}

func (c *certExpiry) set(name string, notAfter time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if notAfter.IsZero() {
		delete(c.certs, name)
		return
	}
	c.certs[name] = notAfter
}

func (c *certExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *certExpiry) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for name, na := range c.certs {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, na.Sub(now).Hours()/24, name)
	}
}

// Rows is the number of table rows a batch becomes in PostgreSQL: one per
// process, application unit, function, event, and one per host, memory and
// status record present.
func Rows(b *wire.Batch) int {
	if b == nil {
		return 0
	}
	n := 0
	for i := range b.Samples {
		s := &b.Samples[i]
		n += len(s.Procs) + len(s.Apps) + len(s.Funs) + len(s.Events)
		if s.Host != nil {
			n++
		}
		if s.Memory != nil {
			n++
		}
		if s.Status != nil {
			n++
		}
	}
	return n
}
