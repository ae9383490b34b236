package sidecar

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Request API labels (bounded).
const (
	apiIngest         = "ingest"
	apiPutRecord      = "put_record"
	apiPutRecordBatch = "put_record_batch"
	apiOther          = "other"
)

// Request outcome labels (bounded).
const (
	outcomeOK           = "ok"
	outcomeBadRequest   = "bad_request"
	outcomeTooLarge     = "too_large"
	outcomeUnauthorized = "unauthorized"
	outcomeUnavailable  = "unavailable"
	outcomeError        = "error"
)

// metrics are the source's request and log metrics; a nil *metrics is a
// no-op (no registerer configured).
type metrics struct {
	requests *prometheus.CounterVec
	records  prometheus.Counter
	walBytes prometheus.Gauge
	segments prometheus.Gauge
	fsync    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, pipeline string) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	var cl prometheus.Labels
	if pipeline != "" {
		cl = prometheus.Labels{"pipeline": pipeline}
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "streamd", Subsystem: "sidecar", Name: "requests_total", ConstLabels: cl,
			Help: "HTTP ingest requests by API (ingest, put_record, put_record_batch, other) and outcome (ok, bad_request, too_large, unauthorized, unavailable, error).",
		}, []string{"api", "outcome"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "streamd", Subsystem: "sidecar", Name: "records_appended_total", ConstLabels: cl,
			Help: "Records appended and fsynced to the write-ahead log (acknowledged to clients).",
		}),
		walBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "streamd", Subsystem: "sidecar", Name: "wal_bytes", ConstLabels: cl,
			Help: "Bytes of the write-ahead log counted against its disk budget: live segments plus appends in progress.",
		}),
		segments: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "streamd", Subsystem: "sidecar", Name: "wal_segments", ConstLabels: cl,
			Help: "Live write-ahead log segment files (not yet wholly committed downstream), the active one included.",
		}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "streamd", Subsystem: "sidecar", Name: "wal_fsync_duration_seconds", ConstLabels: cl,
			Help:    "Latency of the write-ahead log's group-commit fsyncs.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.records, m.walBytes, m.segments, m.fsync} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register sidecar metrics: %w (one sidecar source per pipeline and registry)", err)
			}
			return nil, fmt.Errorf("register sidecar metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) request(api, outcome string) {
	if m != nil {
		m.requests.WithLabelValues(api, outcome).Inc()
	}
}

func (m *metrics) appended(n int) {
	if m != nil {
		m.records.Add(float64(n))
	}
}

func (m *metrics) walState(bytes int64, segments int) {
	if m != nil {
		m.walBytes.Set(float64(bytes))
		m.segments.Set(float64(segments))
	}
}

func (m *metrics) fsynced(d time.Duration) {
	if m != nil {
		m.fsync.Observe(d.Seconds())
	}
}
