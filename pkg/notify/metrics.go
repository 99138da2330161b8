package notify

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quietwatch/quietwatch/pkg/metrics"
)

// stageMetrics are notify's Prometheus metrics (--metrics-file).
type stageMetrics struct {
	reg      *prometheus.Registry
	read     prometheus.Counter
	selected prometheus.Counter
	refused  *prometheus.CounterVec // reason
	sent     *prometheus.CounterVec // transport, endpoint
	failed   *prometheus.CounterVec
	retries  *prometheus.CounterVec
	retrying *prometheus.GaugeVec
}

var transportLabels = []string{"transport", "endpoint"}

func newStageMetrics(n *notifier) *stageMetrics {
	m := &stageMetrics{
		reg: metrics.NewRegistry(),
		read: prometheus.NewCounter(prometheus.CounterOpts{Name: "quietwatch_notify_alerts_read_total",
			Help: "Alerts read on stdin."}),
		selected: prometheus.NewCounter(prometheus.CounterOpts{Name: "quietwatch_notify_alerts_selected_total",
			Help: "Alerts selected for a message (level or the rule's mail setting)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quietwatch_notify_lines_refused_total",
			Help: "Input lines skipped, by reason (unparsable, too_long)."}, []string{"reason"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quietwatch_notify_messages_sent_total",
			Help: "Messages a transport accepted (the MTA, a webhook's 2xx)."}, transportLabels),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quietwatch_notify_messages_failed_total",
			Help: "Messages a transport refused for good (moved to the spool's failed/)."}, transportLabels),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quietwatch_notify_send_retries_total",
			Help: "Failed handovers that will be retried."}, transportLabels),
		retrying: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "quietwatch_notify_messages_retrying",
			Help: "1 while a transport's next message has failed and waits for a retry."}, transportLabels),
	}
	m.refused.WithLabelValues("unparsable")
	m.refused.WithLabelValues("too_long")
	m.reg.MustRegister(m.read, m.selected, m.refused, m.sent, m.failed, m.retries, m.retrying)
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "quietwatch_notify_alerts_held",
		Help: "Alerts held back by the hourly limit, to go out in a digest."}, func() float64 {
		n.mu.Lock()
		defer n.mu.Unlock()
		return float64(n.b.HeldCount())
	}))
	for _, c := range n.chans {
		l := c.labels()
		m.sent.WithLabelValues(l...)
		m.failed.WithLabelValues(l...)
		m.retries.WithLabelValues(l...)
		m.retrying.WithLabelValues(l...)
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "quietwatch_notify_messages_queued",
			Help:        "Messages spooled for a transport and not yet accepted (the one in flight included).",
			ConstLabels: prometheus.Labels{"transport": l[0], "endpoint": l[1]}}, func() float64 {
			c.q.mu.Lock()
			defer c.q.mu.Unlock()
			return float64(c.q.busy)
		}))
	}
	return m
}

// labels are the metrics' transport and endpoint of c: "mail" and "", or
// "webhook" and its host.
func (c *channel) labels() []string {
	if c.host == "" {
		return []string{"mail", ""}
	}
	return []string{"webhook", c.host}
}
