package kinesis

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the source's Prometheus collectors. The shard label is
// bounded by the number of leases this process holds: a shard's series is
// deleted when its lease is let go.
type metrics struct {
	behind     *prometheus.GaugeVec   // {stream, shard}
	behindMax  *prometheus.GaugeVec   // {stream}
	read       *prometheus.CounterVec // {stream}
	throttled  *prometheus.CounterVec // {stream}
	lost       *prometheus.CounterVec // {stream}
	corrupt    *prometheus.CounterVec // {stream}
	shardsHeld *prometheus.GaugeVec   // {stream}
	// subscriptions counts SubscribeToShard calls that opened a stream
	// (enhanced fan-out only).
	subscriptions *prometheus.CounterVec // {stream}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamd_kinesis_millis_behind_latest_milliseconds",
			Help: "MillisBehindLatest of the last GetRecords per shard leased by this process.",
		}, []string{"stream", "shard"}),
		behindMax: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamd_kinesis_max_millis_behind_latest_milliseconds",
			Help: "Largest MillisBehindLatest over the shards leased by this process.",
		}, []string{"stream"}),
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_kinesis_records_read_total",
			Help: "User records read (KPL sub-records counted one by one).",
		}, []string{"stream"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_kinesis_throttled_requests_total",
			Help: "Requests refused with ProvisionedThroughputExceeded, LimitExceeded or KMSThrottling and retried after a backoff.",
		}, []string{"stream"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_kinesis_loss_events_total",
			Help: "Shards resumed past the stream's retention: records after the checkpoint were trimmed before they were read.",
		}, []string{"stream"}),
		corrupt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_kinesis_corrupt_aggregates_total",
			Help: "KPL aggregated records with a bad MD5 or protobuf, delivered as one dead-lettered record.",
		}, []string{"stream"}),
		shardsHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamd_kinesis_shards_held",
			Help: "Shards this process is reading.",
		}, []string{"stream"}),
		subscriptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_kinesis_subscriptions_total",
			Help: "Enhanced fan-out subscriptions opened (SubscribeToShard), including re-subscriptions after one ended or failed.",
		}, []string{"stream"}),
	}
	if reg == nil {
		return m, nil
	}
	// A second source on the same registry (two pipelines) shares the
	// collectors; its series differ by the stream label.
	var err error
	m.behind, err = register(reg, m.behind)
	if err == nil {
		m.behindMax, err = register(reg, m.behindMax)
	}
	if err == nil {
		m.read, err = register(reg, m.read)
	}
	if err == nil {
		m.throttled, err = register(reg, m.throttled)
	}
	if err == nil {
		m.lost, err = register(reg, m.lost)
	}
	if err == nil {
		m.corrupt, err = register(reg, m.corrupt)
	}
	if err == nil {
		m.shardsHeld, err = register(reg, m.shardsHeld)
	}
	if err == nil {
		m.subscriptions, err = register(reg, m.subscriptions)
	}
	if err != nil {
		return nil, fmt.Errorf("register kinesis metrics: %w", err)
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old, nil
			}
		}
		return c, err
	}
	return c, nil
}
