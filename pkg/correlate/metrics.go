package correlate

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quietwatch/quietwatch/pkg/metrics"
)

// stageMetrics are correlate's Prometheus metrics (--metrics-file). The
// rules goroutine alone updates them (the counters are atomic: the file
// writer reads them concurrently).
type stageMetrics struct {
	reg     *prometheus.Registry
	events  prometheus.Counter
	refused *prometheus.CounterVec
	alerts  *prometheus.CounterVec
	byRule  map[[2]int]prometheus.Counter // (rule, level): saves a label hash per alert
}

func newStageMetrics() *stageMetrics {
	m := &stageMetrics{
		reg: metrics.NewRegistry(),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "quietwatch_correlate_events_read_total",
			Help: "Input lines read (blank lines not counted)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quietwatch_correlate_events_refused_total",
			Help: "Input lines skipped, by reason (unparsable, too_long, fed_back: an alert given back to correlate)."}, []string{"reason"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quietwatch_correlate_alerts_total",
			Help: "Alerts written, by rule and level."}, []string{"rule", "level"}),
		byRule: map[[2]int]prometheus.Counter{},
	}
	for _, r := range []string{"unparsable", "too_long", "fed_back"} {
		m.refused.WithLabelValues(r)
	}
	m.reg.MustRegister(m.events, m.refused, m.alerts)
	return m
}

// refuse counts a line skipped with diagnostic diag (from scan or read).
func (m *stageMetrics) refuse(diag string) {
	reason := "unparsable"
	switch {
	case strings.HasPrefix(diag, "line of "):
		reason = "too_long"
	case strings.Contains(diag, "already has correlate's"):
		reason = "fed_back"
	}
	m.refused.WithLabelValues(reason).Inc()
}

func (m *stageMetrics) alert(rule, level int) {
	k := [2]int{rule, level}
	c := m.byRule[k]
	if c == nil {
		c = m.alerts.WithLabelValues(strconv.Itoa(rule), strconv.Itoa(level))
		m.byRule[k] = c
	}
	c.Inc()
}
