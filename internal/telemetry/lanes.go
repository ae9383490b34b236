package telemetry

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LaneStat is what a running pipeline reports about one of its lanes at
// scrape time.
type LaneStat struct {
	// Lane is the lane's name (a file path, "topic/3", a shard id).
	Lane string
	// OldestUncommitted is when the oldest record read on the lane but not
	// yet committed was read; zero when everything read is committed.
	OldestUncommitted time.Time
	// CommittedPosition is the lane's committed position
	// (streamd.Position.String()), "" before the first commit. It is not
	// exported as a metric (its values are unbounded); it is there for
	// diagnostics such as logging the lanes at shutdown.
	CommittedPosition string
}

// LaneStatser is implemented by a running pipeline. LaneStats is called at
// every scrape, from the HTTP handler's goroutine, concurrently with the
// pipeline's work: it must be safe for concurrent use, fast, and must not
// block on I/O. It returns the lanes the pipeline currently runs.
type LaneStatser interface {
	LaneStats() []LaneStat
}

// LaneStatsFunc adapts a function to LaneStatser, for example one that
// converts a pipeline's own lane type.
type LaneStatsFunc func() []LaneStat

// LaneStats implements LaneStatser.
func (f LaneStatsFunc) LaneStats() []LaneStat { return f() }

type watched struct {
	src     LaneStatser
	perLane bool
}

// laneCollector reads the watched pipelines' lane stats at scrape time, so
// lanes that ended leave no stale series behind.
type laneCollector struct {
	now                  func() time.Time
	oldest, lanes, laneA *prometheus.Desc

	mu    sync.Mutex
	pipes map[string]watched
}

func newLaneCollector(now func() time.Time) *laneCollector {
	return &laneCollector{
		now: now,
		oldest: prometheus.NewDesc("streamd_pipeline_oldest_uncommitted_age_seconds",
			"Age of the oldest record read but not yet committed, over the pipeline's lanes; 0 when everything read is committed.",
			[]string{"pipeline"}, nil),
		lanes: prometheus.NewDesc("streamd_pipeline_lanes",
			"Lanes (partitions, shards, files) the pipeline currently runs.",
			[]string{"pipeline"}, nil),
		laneA: prometheus.NewDesc("streamd_lane_oldest_uncommitted_age_seconds",
			"Age of the lane's oldest record read but not yet committed; only for sources with a bounded lane count (Kafka, Kinesis, DynamoDB Streams).",
			[]string{"pipeline", "lane"}, nil),
		pipes: map[string]watched{},
	}
}

func (c *laneCollector) watch(pipeline string, s LaneStatser, perLane bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pipes[pipeline] = watched{src: s, perLane: perLane}
}

func (c *laneCollector) unwatch(pipeline string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pipes, pipeline)
}

// Describe implements prometheus.Collector.
func (c *laneCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.oldest
	ch <- c.lanes
	ch <- c.laneA
}

// Collect implements prometheus.Collector.
func (c *laneCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	names := make([]string, 0, len(c.pipes))
	pipes := make(map[string]watched, len(c.pipes))
	for n, w := range c.pipes {
		names = append(names, n)
		pipes[n] = w
	}
	c.mu.Unlock() // LaneStats runs without the lock: a slow pipeline must not hold up watch/unwatch
	sort.Strings(names)
	now := c.now()
	for _, name := range names {
		w := pipes[name]
		stats := w.src.LaneStats()
		var oldest float64
		seen := map[string]bool{}
		for _, s := range stats {
			var age float64
			if !s.OldestUncommitted.IsZero() {
				age = max(0, now.Sub(s.OldestUncommitted).Seconds())
			}
			oldest = max(oldest, age)
			if w.perLane && !seen[s.Lane] { // a duplicate series would fail the whole scrape
				seen[s.Lane] = true
				ch <- prometheus.MustNewConstMetric(c.laneA, prometheus.GaugeValue, age, name, s.Lane)
			}
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest, name)
		ch <- prometheus.MustNewConstMetric(c.lanes, prometheus.GaugeValue, float64(len(stats)), name)
	}
}
