package opensearch

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the sink's Prometheus collectors. They carry a constant
// "pipeline" label, so sinks of several pipelines share one registerer.
type metrics struct {
	docs        *prometheus.CounterVec // outcome: indexed | dead_lettered
	itemRetries *prometheus.CounterVec // status: 429 | 5xx
	requests    *prometheus.CounterVec // code: 2xx | 4xx | 5xx | error
	latency     prometheus.Histogram
	bytes       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, pipeline string) (*metrics, error) {
	cl := prometheus.Labels{"pipeline": pipeline}
	m := &metrics{
		docs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_opensearch_documents_total", ConstLabels: cl,
			Help: "Documents written by the OpenSearch sink, by outcome (indexed, dead_lettered).",
		}, []string{"outcome"}),
		itemRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_opensearch_item_retries_total", ConstLabels: cl,
			Help: "Bulk items answered 429 or 5xx and sent again, by status class.",
		}, []string{"status"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_opensearch_bulk_requests_total", ConstLabels: cl,
			Help: "_bulk requests by HTTP status class (error: no response).",
		}, []string{"code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamd_opensearch_bulk_request_duration_seconds", ConstLabels: cl,
			Help:    "Duration of one _bulk request, response read included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamd_opensearch_bulk_sent_bytes_total", ConstLabels: cl,
			Help: "_bulk request body bytes sent (after compression).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.docs, m.itemRetries, m.requests, m.latency, m.bytes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics of pipeline %q: %w", pipeline, err)
		}
	}
	return m, nil
}
