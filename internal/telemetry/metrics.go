package telemetry

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/window"
)

// namespace prefixes every streamd metric.
const namespace = "streamd"

// Reasons are the window close reasons AddPipeline creates series for, so
// that dashboards show zeros (and rate() works) before the first batch.
var Reasons = []window.Reason{
	window.ReasonRecords, window.ReasonBytes, window.ReasonAge, window.ReasonEnd,
	window.ReasonRedo, window.ReasonShutdown, window.ReasonMemory,
}

// Metrics holds every streamd-wide metric. It implements pipeline.Observer
// (Flushed, FlushFailed): each committed batch moves the record counters by
// the batch's reconciled counts, so that for every pipeline
//
//	read = written + filtered + deduplicated + dead_lettered
//
// holds between the counters at every scrape. Its methods are safe for
// concurrent use and never block on I/O.
type Metrics struct {
	now func() time.Time

	read, written, filtered, dedup, dead, inBytes *prometheus.CounterVec // pipeline
	batches                                       *prometheus.CounterVec // pipeline, reason
	batchRecords                                  *prometheus.HistogramVec
	flushDuration                                 *prometheus.HistogramVec
	flushFailures                                 *prometheus.CounterVec
	commits                                       *prometheus.CounterVec
	lastCommit                                    *prometheus.GaugeVec
	eventTime                                     *prometheus.GaugeVec
	lanes                                         *laneCollector

	mu       sync.Mutex
	maxEvent map[string]int64 // pipeline → largest committed event time, µs

	// records guards the five record counters together, so that a scrape
	// never sees a batch counted in some of them and not yet in others.
	records recordCounters
}

// MetricsOption configures NewMetrics.
type MetricsOption func(*metricsOptions)

type metricsOptions struct {
	version string
	now     func() time.Time
	runtime bool
}

// WithVersion sets the version label of streamd_build_info (default "dev").
func WithVersion(v string) MetricsOption {
	return func(o *metricsOptions) {
		if v != "" {
			o.version = v
		}
	}
}

// WithClock sets the clock the scrape-time age gauges use (default
// time.Now); tests pass a fixed one.
func WithClock(now func() time.Time) MetricsOption {
	return func(o *metricsOptions) {
		if now != nil {
			o.now = now
		}
	}
}

// WithoutRuntimeCollectors leaves out the Go runtime (go_*) and process
// (process_*) collectors, which NewMetrics registers by default. Use it
// when the registry already has them; the trade-off is losing heap, GC,
// goroutine, CPU, RSS and file-descriptor metrics otherwise.
func WithoutRuntimeCollectors() MetricsOption {
	return func(o *metricsOptions) { o.runtime = false }
}

// NewMetrics creates the metrics and registers them on reg (never the
// global registry), together with the Go runtime and process collectors
// unless WithoutRuntimeCollectors is given. It fails when a metric of the
// same name is already registered on reg. It does no I/O.
func NewMetrics(reg prometheus.Registerer, opts ...MetricsOption) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("new metrics: nil registerer")
	}
	o := metricsOptions{version: "dev", now: time.Now, runtime: true}
	for _, opt := range opts {
		opt(&o)
	}
	pl := []string{"pipeline"}
	counter := func(sub, name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help}, labels)
	}
	m := &Metrics{
		now:      o.now,
		maxEvent: map[string]int64{},
		read: counter("pipeline", "records_read_total",
			"Records read from the source into batches that were committed (read = written + filtered + deduplicated + dead_lettered).", pl),
		written: counter("pipeline", "records_written_total",
			"Records written to the sink in committed batches.", pl),
		filtered: counter("pipeline", "records_filtered_total",
			"Records of committed batches removed by filter transforms.", pl),
		dedup: counter("pipeline", "records_deduplicated_total",
			"Records of committed batches removed as duplicates by dedup.", pl),
		dead: counter("pipeline", "records_dead_lettered_total",
			"Records of committed batches written to the dead letter instead of the sink.", pl),
		inBytes: counter("pipeline", "input_bytes_total",
			"Raw input bytes of the records of committed batches.", pl),
		batches: counter("window", "batches_flushed_total",
			"Batches committed, by the reason their window closed (records, bytes, age, end, redo, shutdown, memory).", []string{"pipeline", "reason"}),
		batchRecords: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "window", Name: "batch_records",
			Help:    "Records read into each committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 11), // 1 … ~1M
		}, pl),
		flushDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "sink", Name: "write_duration_seconds",
			Help:    "Time from a batch's intent to its checkpoint commit: sink and dead-letter writes plus the commit, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 15), // 5ms … ~82s
		}, pl),
		flushFailures: counter("sink", "write_failures_total",
			"Failed attempts at intent → sink write → commit; each is retried with backoff until the attempts run out.", pl),
		commits: counter("checkpoint", "commits_total",
			"Checkpoint commits (one per committed batch).", pl),
		lastCommit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "checkpoint", Name: "last_commit_timestamp_seconds",
			Help: "Unix time of the pipeline's last checkpoint commit.",
		}, pl),
		eventTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "pipeline", Name: "committed_event_time_seconds",
			Help: "Largest event time (Unix seconds) of any row committed to the sink by this process; time() minus it is the output's event-time freshness.",
		}, pl),
		lanes: newLaneCollector(o.now),
	}
	m.records.vecs = []*prometheus.CounterVec{m.read, m.written, m.filtered, m.dedup, m.dead}
	cs := []prometheus.Collector{
		&m.records, m.inBytes, m.batches, m.batchRecords,
		m.flushDuration, m.flushFailures, m.commits, m.lastCommit, m.eventTime, m.lanes,
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": o.version, "goversion": runtime.Version()},
	})
	build.Set(1)
	cs = append(cs, build)
	if o.runtime {
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// AddPipeline creates the pipeline's series at zero, so that they are
// exported (and rate() and absent() behave) before its first batch.
// Calling it is optional; Flushed creates what it touches.
func (m *Metrics) AddPipeline(name string) {
	for _, c := range []*prometheus.CounterVec{m.read, m.written, m.filtered, m.dedup, m.dead, m.inBytes, m.flushFailures, m.commits} {
		c.WithLabelValues(name)
	}
	for _, r := range Reasons {
		m.batches.WithLabelValues(name, string(r))
	}
	m.batchRecords.WithLabelValues(name)
	m.flushDuration.WithLabelValues(name)
}

// Flushed implements pipeline.Observer: b was committed after took (intent,
// writes and commit, retries included); reason is why its window closed.
func (m *Metrics) Flushed(pipeline string, reason window.Reason, b *streamd.Batch, took time.Duration) {
	m.records.mu.Lock()
	m.read.WithLabelValues(pipeline).Add(float64(b.Read))
	m.written.WithLabelValues(pipeline).Add(float64(b.Len()))
	m.filtered.WithLabelValues(pipeline).Add(float64(b.Filtered))
	m.dedup.WithLabelValues(pipeline).Add(float64(b.Deduplicated))
	m.dead.WithLabelValues(pipeline).Add(float64(len(b.Dead)))
	m.records.mu.Unlock()
	m.inBytes.WithLabelValues(pipeline).Add(float64(b.Bytes))
	m.batches.WithLabelValues(pipeline, string(reason)).Inc()
	m.batchRecords.WithLabelValues(pipeline).Observe(float64(b.Read))
	m.flushDuration.WithLabelValues(pipeline).Observe(took.Seconds())
	m.commits.WithLabelValues(pipeline).Inc()
	m.lastCommit.WithLabelValues(pipeline).Set(float64(m.now().UnixNano()) / 1e9)

	var maxUS int64
	for _, t := range b.EventTime {
		maxUS = max(maxUS, t)
	}
	if maxUS <= 0 {
		return // no row carried an event time
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if maxUS > m.maxEvent[pipeline] {
		m.maxEvent[pipeline] = maxUS
		m.eventTime.WithLabelValues(pipeline).Set(float64(maxUS) / 1e6)
	}
}

// FlushFailed implements pipeline.Observer: one attempt at a batch of the
// lane failed. The lane is not a label (file lanes are unbounded).
func (m *Metrics) FlushFailed(pipeline, _ string, _ error) {
	m.flushFailures.WithLabelValues(pipeline).Inc()
}

// WatchLanes makes every scrape read s.LaneStats() for pipeline and export
// the age of its oldest uncommitted record and its lane count. perLane adds
// the lane-labelled series streamd_lane_oldest_uncommitted_age_seconds: set
// it only for sources whose lane count is bounded by the source itself
// (Kafka partitions, Kinesis and DynamoDB Streams shards), never for file
// sources, where every input file is a lane. Watching a pipeline again
// replaces the earlier source.
func (m *Metrics) WatchLanes(pipeline string, s LaneStatser, perLane bool) {
	m.lanes.watch(pipeline, s, perLane)
}

// UnwatchLanes stops exporting the lane gauges of pipeline.
func (m *Metrics) UnwatchLanes(pipeline string) { m.lanes.unwatch(pipeline) }

// recordCounters collects the record counters under one lock (see
// Metrics.records).
type recordCounters struct {
	mu   sync.RWMutex
	vecs []*prometheus.CounterVec
}

// Describe implements prometheus.Collector.
func (r *recordCounters) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range r.vecs {
		v.Describe(ch)
	}
}

// Collect implements prometheus.Collector: all five counters as of one moment.
func (r *recordCounters) Collect(ch chan<- prometheus.Metric) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, v := range r.vecs {
		v.Collect(ch)
	}
}
