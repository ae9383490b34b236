package ddbstreams

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Loss reasons (the reason label of streamd_ddbstreams_loss_events_total).
const (
	// LossTrimmed: the shard's checkpoint (or the reader's position) was
	// behind the stream's 24 h trim horizon; reading went on at the trim
	// horizon.
	LossTrimmed = "trimmed"
	// LossExpiredShard: a shard that had a checkpoint is no longer in the
	// stream (past retention, or its stream was deleted).
	LossExpiredShard = "expired_shard"
)

// metrics are the source's Prometheus collectors; every label is bounded
// (table, and a reason from a fixed set).
type metrics struct {
	read       *prometheus.CounterVec // {table}
	throttled  *prometheus.CounterVec // {table}
	lost       *prometheus.CounterVec // {table, reason}
	switches   *prometheus.CounterVec // {table}
	shardsHeld *prometheus.GaugeVec   // {table}
	lastEvent  *prometheus.GaugeVec   // {table}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_ddbstreams_records_read_total",
			Help: "Change records read from DynamoDB Streams.",
		}, []string{"table"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_ddbstreams_throttled_requests_total",
			Help: "Requests refused with LimitExceeded, throttling or a server error and retried after a backoff with jitter.",
		}, []string{"table"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_ddbstreams_loss_events_total",
			Help: "Times change records were trimmed or expired before they were read (reason: trimmed | expired_shard).",
		}, []string{"table", "reason"}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_ddbstreams_stream_switches_total",
			Help: "Times the source moved on to a new stream of the table (stream disabled and enabled again); changes between the two streams were not captured.",
		}, []string{"table"}),
		shardsHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamd_ddbstreams_shards_held",
			Help: "Shards this process is reading.",
		}, []string{"table"}),
		lastEvent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamd_ddbstreams_last_event_time_seconds",
			Help: "ApproximateCreationDateTime of the newest change record read, as Unix seconds.",
		}, []string{"table"}),
	}
	if reg == nil {
		return m, nil
	}
	// A second source on the same registry (two pipelines) shares the
	// collectors; its series differ by the table label.
	var err error
	m.read, err = register(reg, m.read)
	if err == nil {
		m.throttled, err = register(reg, m.throttled)
	}
	if err == nil {
		m.lost, err = register(reg, m.lost)
	}
	if err == nil {
		m.switches, err = register(reg, m.switches)
	}
	if err == nil {
		m.shardsHeld, err = register(reg, m.shardsHeld)
	}
	if err == nil {
		m.lastEvent, err = register(reg, m.lastEvent)
	}
	if err != nil {
		return nil, fmt.Errorf("register ddbstreams metrics: %w", err)
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
