package fastparse

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quietwatch/quietwatch/pkg/metrics"
)

// stageMetrics are fastparse's Prometheus metrics (--metrics-file).
type stageMetrics struct {
	reg      *prometheus.Registry
	read     prometheus.Counter
	events   prometheus.Counter
	unparsed *prometheus.CounterVec
	// the unparsed counters by reason, looked up once
	lost, blank, long prometheus.Counter
}

func newStageMetrics() *stageMetrics {
	m := &stageMetrics{
		reg: metrics.NewRegistry(),
		read: prometheus.NewCounter(prometheus.CounterOpts{Name: "quietwatch_fastparse_lines_read_total",
			Help: "Input lines read."}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "quietwatch_fastparse_events_total",
			Help: "Events written (a line with records glued together may give more than one)."}),
		unparsed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quietwatch_fastparse_lines_unparsed_total",
			Help: "Lines skipped, by reason (unparsable: an alert lost; blank; too_long: over --max-line)."}, []string{"reason"}),
	}
	m.lost = m.unparsed.WithLabelValues("unparsable")
	m.blank = m.unparsed.WithLabelValues("blank")
	m.long = m.unparsed.WithLabelValues("too_long")
	m.reg.MustRegister(m.read, m.events, m.unparsed)
	return m
}
