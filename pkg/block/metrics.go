package block

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/metrics"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// stageMetrics are block's Prometheus metrics (--metrics-file), counted
// from the decisions block writes, in its loop.
type stageMetrics struct {
	reg      *prometheus.Registry
	placed   *prometheus.CounterVec // origin: alert, manual
	extended prometheus.Counter
	lifted   *prometheus.CounterVec // reason: expired, unban, flush, ...
	refused  *prometheus.CounterVec // reason of a skip
	late     prometheus.Histogram
	active   *prometheus.GaugeVec // backend
	pending  *prometheus.GaugeVec // backend

	bans     func() []ban.Ban // the live bans (the manager's: call in the loop only)
	counted  time.Time        // when active was last recounted
	backends []string
}

// recountEvery is how often, at most, the live bans are counted by
// backend (a count walks every ban).
const recountEvery = time.Second

func newStageMetrics(bans func() []ban.Ban, backends []string) *stageMetrics {
	m := &stageMetrics{
		reg: metrics.NewRegistry(),
		placed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quietwatch_block_bans_placed_total",
			Help: "Bans placed, by origin (alert; manual: block ban)."}, []string{"origin"}),
		extended: prometheus.NewCounter(prometheus.CounterOpts{Name: "quietwatch_block_bans_extended_total",
			Help: "Live bans extended by a new alert (or block ban)."}),
		lifted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quietwatch_block_bans_lifted_total",
			Help: "Bans lifted, by reason (expired, unban, flush)."}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quietwatch_block_alerts_refused_total",
			Help: "Alerts not acted on, by reason (below-level, allowlisted, own-address, loopback, invalid-ip, ...)."}, []string{"reason"}),
		late: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "quietwatch_block_unban_lateness_seconds",
			Help:    "How long after its end an expired ban was lifted (a stop of block counts).",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 60, 600, 3600}}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "quietwatch_block_bans_active",
			Help: "Live bans held by each backend (counted at most once a second)."}, []string{"backend"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "quietwatch_block_bans_pending",
			Help: "Live bans a backend failed to take, retried."}, []string{"backend"}),
		bans:     bans,
		backends: backends,
	}
	m.placed.WithLabelValues("alert")
	m.placed.WithLabelValues("manual")
	m.lifted.WithLabelValues("expired")
	for _, b := range backends {
		m.active.WithLabelValues(b)
		m.pending.WithLabelValues(b)
	}
	m.reg.MustRegister(m.placed, m.extended, m.lifted, m.refused, m.late, m.active, m.pending)
	return m
}

// count takes the decisions block writes at now.
func (m *stageMetrics) count(ds []record.Decision, now time.Time) {
	if m == nil {
		return
	}
	changed := false
	for i := range ds {
		b := &ds[i].Ban
		switch b.Action {
		case "add":
			origin := "alert"
			if b.Reason == "manual" {
				origin = "manual"
			}
			m.placed.WithLabelValues(origin).Inc()
			changed = true
		case "extend":
			m.extended.Inc()
			changed = true
		case "delete":
			m.lifted.WithLabelValues(b.Reason).Inc()
			if b.Reason == "expired" {
				if us, ok := record.ParseTime([]byte(b.Until)); ok {
					m.late.Observe(max(0, now.Sub(time.UnixMicro(us)).Seconds()))
				}
			}
			changed = true
		case "skip":
			m.refused.WithLabelValues(b.Reason).Inc()
		}
	}
	if changed || m.counted.IsZero() {
		m.recount(now, false)
	}
}

// recount counts the live bans by backend, unless it did less than
// recountEvery ago (force: at exit).
func (m *stageMetrics) recount(now time.Time, force bool) {
	if m == nil || m.bans == nil || (!force && now.Sub(m.counted) < recountEvery && !m.counted.IsZero()) {
		return
	}
	m.counted = now
	active, pending := map[string]int{}, map[string]int{}
	for _, b := range m.bans() {
		for _, n := range b.Backends {
			active[n]++
		}
		for _, n := range b.Pending {
			pending[n]++
		}
	}
	for _, n := range m.backends {
		m.active.WithLabelValues(n).Set(float64(active[n]))
		m.pending.WithLabelValues(n).Set(float64(pending[n]))
	}
}
