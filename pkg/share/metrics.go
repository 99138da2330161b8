package share

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quietwatch/quietwatch/pkg/metrics"
)

// stageMetrics are share's Prometheus metrics (--metrics-file). A nil
// *stageMetrics counts nothing.
type stageMetrics struct {
	reg       *prometheus.Registry
	records   prometheus.Counter
	published prometheus.Counter
	applied   prometheus.Counter
	refused   *prometheus.CounterVec // reason: the guard's, or bad-message
}

// newStageMetrics registers share's metrics; dropped and connected are
// read from the publisher and the connection when the file is written.
func newStageMetrics(dropped func() float64, connected func() float64) *stageMetrics {
	m := &stageMetrics{
		reg: metrics.NewRegistry(),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "quietwatch_share_records_total",
			Help: "Records read and passed on to stdout."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "quietwatch_share_bans_offered_total",
			Help: "Local bans offered to the fleet (queued for publishing)."}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{Name: "quietwatch_share_peer_bans_total",
			Help: "Peers' bans passed on to stdout (to block)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quietwatch_share_peer_bans_refused_total",
			Help: "Peers' bans refused by the local guards, by reason."}, []string{"reason"}),
	}
	m.reg.MustRegister(m.records, m.published, m.applied, m.refused,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "quietwatch_share_bans_dropped_total",
			Help: "Local bans not shared because the publish queue (--buffer) was full."}, dropped),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "quietwatch_share_connected",
			Help: "1 while connected to NATS, else 0."}, connected))
	return m
}

func (m *stageMetrics) record() {
	if m != nil {
		m.records.Inc()
	}
}

func (m *stageMetrics) offered() {
	if m != nil {
		m.published.Inc()
	}
}

func (m *stageMetrics) peer() {
	if m != nil {
		m.applied.Inc()
	}
}

func (m *stageMetrics) refuse(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}
