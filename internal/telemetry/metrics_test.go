package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/internal/telemetry"
	"github.com/streamd/streamd/pipeline"
	"github.com/streamd/streamd/window"
)

var _ pipeline.Observer = (*telemetry.Metrics)(nil)

var testSchema = func() *streamd.Schema {
	s, err := streamd.NewSchema(
		streamd.Field{Name: "n", Type: streamd.Type{Kind: streamd.KindInt64}},
		streamd.Field{Name: "event_time", Type: streamd.Type{Kind: streamd.KindTimestamp}},
	)
	if err != nil {
		panic(err)
	}
	return s
}()

// spec describes a batch: how its records fared, and the event times (in
// Unix seconds; 0 = unknown) of its written rows.
type spec struct {
	lane                         string
	filtered, deduplicated, dead int
	eventSecs                    []int64
	bytesPerRecord               int
}

// build makes a reconciled batch from s with the core types, the way a
// decoder and the operators do.
func (s spec) build(t *testing.T) *streamd.Batch {
	t.Helper()
	b := streamd.NewBatch(testSchema, s.lane)
	pos := int64(0)
	next := func() streamd.Position {
		pos++
		p := streamd.Position{Offset: pos}
		b.NoteRead(p, s.bytesPerRecord)
		return p
	}
	for _, sec := range s.eventSecs {
		p := next()
		b.Cols[0].AppendInt64(pos)
		b.Cols[1].AppendInt64(sec * 1e6)
		b.AddRowMeta(p, sec*1e6)
	}
	for range s.filtered {
		next()
		b.Filtered++
	}
	for range s.deduplicated {
		next()
		b.Deduplicated++
	}
	for range s.dead {
		p := next()
		b.AddDead(p, `column "n": not a number`, []byte("x"))
	}
	if !b.Accounted() {
		t.Fatalf("test batch does not reconcile")
	}
	return b
}

func TestFlushedCounters(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	type flush struct {
		pipeline string
		reason   window.Reason
		batch    spec
		took     time.Duration
	}
	type want struct {
		read, written, filtered, dedup, dead, bytes, commits float64
		reasons                                              map[window.Reason]float64
		durSum                                               float64
		eventTime                                            float64 // 0: no series
	}
	tests := []struct {
		name    string
		flushes []flush
		want    map[string]want
	}{
		{
			name: "one batch of every outcome",
			flushes: []flush{
				{"sales", window.ReasonRecords, spec{lane: "a", filtered: 2, deduplicated: 3, dead: 1, eventSecs: []int64{100, 300, 200}, bytesPerRecord: 10}, 2 * time.Second},
			},
			want: map[string]want{
				"sales": {read: 9, written: 3, filtered: 2, dedup: 3, dead: 1, bytes: 90, commits: 1,
					reasons: map[window.Reason]float64{window.ReasonRecords: 1}, durSum: 2, eventTime: 300},
			},
		},
		{
			name: "freshness keeps the newest event time; batches without event times leave it",
			flushes: []flush{
				{"sales", window.ReasonAge, spec{lane: "a", eventSecs: []int64{500}, bytesPerRecord: 1}, time.Second},
				{"sales", window.ReasonAge, spec{lane: "b", eventSecs: []int64{400, 450}, bytesPerRecord: 1}, time.Second},
				{"sales", window.ReasonEnd, spec{lane: "c", eventSecs: []int64{0, 0}, dead: 2, bytesPerRecord: 1}, time.Second},
			},
			want: map[string]want{
				"sales": {read: 7, written: 5, dead: 2, bytes: 7, commits: 3,
					reasons: map[window.Reason]float64{window.ReasonAge: 2, window.ReasonEnd: 1}, durSum: 3, eventTime: 500},
			},
		},
		{
			name: "pipelines are counted apart",
			flushes: []flush{
				{"sales", window.ReasonBytes, spec{lane: "a", eventSecs: []int64{10, 20}, bytesPerRecord: 5}, 500 * time.Millisecond},
				{"orders", window.ReasonShutdown, spec{lane: "a", filtered: 4, bytesPerRecord: 2}, 250 * time.Millisecond},
				{"sales", window.ReasonRedo, spec{lane: "a", deduplicated: 1, eventSecs: []int64{30}, bytesPerRecord: 5}, 250 * time.Millisecond},
			},
			want: map[string]want{
				"sales": {read: 4, written: 3, dedup: 1, bytes: 20, commits: 2,
					reasons: map[window.Reason]float64{window.ReasonBytes: 1, window.ReasonRedo: 1}, durSum: 0.75, eventTime: 30},
				"orders": {read: 4, filtered: 4, bytes: 8, commits: 1,
					reasons: map[window.Reason]float64{window.ReasonShutdown: 1}, durSum: 0.25},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := telemetry.NewMetrics(reg, telemetry.WithoutRuntimeCollectors(), telemetry.WithClock(func() time.Time { return now }))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.flushes {
				m.Flushed(f.pipeline, f.reason, f.batch.build(t), f.took)
			}
			for p, w := range tt.want {
				got := map[string]float64{
					"streamd_pipeline_records_read_total":          value(t, reg, "streamd_pipeline_records_read_total", "pipeline", p),
					"streamd_pipeline_records_written_total":       value(t, reg, "streamd_pipeline_records_written_total", "pipeline", p),
					"streamd_pipeline_records_filtered_total":      value(t, reg, "streamd_pipeline_records_filtered_total", "pipeline", p),
					"streamd_pipeline_records_deduplicated_total":  value(t, reg, "streamd_pipeline_records_deduplicated_total", "pipeline", p),
					"streamd_pipeline_records_dead_lettered_total": value(t, reg, "streamd_pipeline_records_dead_lettered_total", "pipeline", p),
					"streamd_pipeline_input_bytes_total":           value(t, reg, "streamd_pipeline_input_bytes_total", "pipeline", p),
					"streamd_checkpoint_commits_total":             value(t, reg, "streamd_checkpoint_commits_total", "pipeline", p),
					"streamd_sink_write_duration_seconds(count)":   value(t, reg, "streamd_sink_write_duration_seconds", "pipeline", p),
					"streamd_window_batch_records(count)":          value(t, reg, "streamd_window_batch_records", "pipeline", p),
				}
				exp := map[string]float64{
					"streamd_pipeline_records_read_total":          w.read,
					"streamd_pipeline_records_written_total":       w.written,
					"streamd_pipeline_records_filtered_total":      w.filtered,
					"streamd_pipeline_records_deduplicated_total":  w.dedup,
					"streamd_pipeline_records_dead_lettered_total": w.dead,
					"streamd_pipeline_input_bytes_total":           w.bytes,
					"streamd_checkpoint_commits_total":             w.commits,
					"streamd_sink_write_duration_seconds(count)":   w.commits,
					"streamd_window_batch_records(count)":          w.commits,
				}
				for k, v := range exp {
					if got[k] != v {
						t.Errorf("%s{pipeline=%q} = %v, want %v", k, p, got[k], v)
					}
				}
				if sum := got["streamd_pipeline_records_written_total"] + got["streamd_pipeline_records_filtered_total"] +
					got["streamd_pipeline_records_deduplicated_total"] + got["streamd_pipeline_records_dead_lettered_total"]; sum != got["streamd_pipeline_records_read_total"] {
					t.Errorf("pipeline %q: written+filtered+deduplicated+dead_lettered = %v, read = %v", p, sum, got["streamd_pipeline_records_read_total"])
				}
				for r, n := range w.reasons {
					if g := value(t, reg, "streamd_window_batches_flushed_total", "pipeline", p, "reason", string(r)); g != n {
						t.Errorf("batches_flushed_total{pipeline=%q,reason=%q} = %v, want %v", p, r, g, n)
					}
				}
				if s, _ := find(t, reg, "streamd_sink_write_duration_seconds", "pipeline", p); s.sum != w.durSum {
					t.Errorf("sink_write_duration_seconds{pipeline=%q} sum = %v, want %v", p, s.sum, w.durSum)
				}
				if s, _ := find(t, reg, "streamd_window_batch_records", "pipeline", p); s.sum != w.read {
					t.Errorf("window_batch_records{pipeline=%q} sum = %v, want %v", p, s.sum, w.read)
				}
				if g := value(t, reg, "streamd_checkpoint_last_commit_timestamp_seconds", "pipeline", p); g != float64(now.Unix()) {
					t.Errorf("last_commit_timestamp_seconds{pipeline=%q} = %v, want %v", p, g, now.Unix())
				}
				s, ok := find(t, reg, "streamd_pipeline_committed_event_time_seconds", "pipeline", p)
				switch {
				case w.eventTime == 0 && ok:
					t.Errorf("committed_event_time_seconds{pipeline=%q} = %v, want no series (no event times)", p, s.value)
				case w.eventTime != 0 && s.value != w.eventTime:
					t.Errorf("committed_event_time_seconds{pipeline=%q} = %v, want %v", p, s.value, w.eventTime)
				}
			}
		})
	}
}

func TestFlushFailedCountsAttempts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, telemetry.WithoutRuntimeCollectors())
	if err != nil {
		t.Fatal(err)
	}
	m.FlushFailed("sales", "data/a.jsonl", errors.New("write sink: boom"))
	m.FlushFailed("sales", "data/b.jsonl", checkpoint.ErrFenced)
	m.FlushFailed("orders", "t/0", errors.New("x"))
	if g := value(t, reg, "streamd_sink_write_failures_total", "pipeline", "sales"); g != 2 {
		t.Errorf("sales failures = %v, want 2", g)
	}
	if g := value(t, reg, "streamd_sink_write_failures_total", "pipeline", "orders"); g != 1 {
		t.Errorf("orders failures = %v, want 1", g)
	}
	for _, s := range gather(t, reg, "streamd_sink_write_failures_total") {
		if _, has := s.labels["lane"]; has {
			t.Errorf("failures carry a lane label: %v", s.labels)
		}
	}
	// A failure is not a commit.
	if _, ok := find(t, reg, "streamd_checkpoint_commits_total", "pipeline", "sales"); ok {
		t.Errorf("a failed attempt created a commit series")
	}
}

func TestAddPipelineExportsZeros(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, telemetry.WithoutRuntimeCollectors())
	if err != nil {
		t.Fatal(err)
	}
	m.AddPipeline("sales")
	for _, name := range []string{
		"streamd_pipeline_records_read_total", "streamd_pipeline_records_written_total",
		"streamd_pipeline_records_filtered_total", "streamd_pipeline_records_deduplicated_total",
		"streamd_pipeline_records_dead_lettered_total", "streamd_sink_write_failures_total",
		"streamd_checkpoint_commits_total", "streamd_sink_write_duration_seconds",
	} {
		if g := value(t, reg, name, "pipeline", "sales"); g != 0 {
			t.Errorf("%s = %v after AddPipeline, want 0", name, g)
		}
	}
	if got := len(gather(t, reg, "streamd_window_batches_flushed_total")); got != len(telemetry.Reasons) {
		t.Errorf("batches_flushed_total has %d series, want one per reason (%d)", got, len(telemetry.Reasons))
	}
	if _, ok := find(t, reg, "streamd_pipeline_committed_event_time_seconds", "pipeline", "sales"); ok {
		t.Errorf("AddPipeline exported an event time before any commit")
	}
}

func TestNewMetricsErrors(t *testing.T) {
	if _, err := telemetry.NewMetrics(nil); err == nil {
		t.Error("NewMetrics(nil) succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := telemetry.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	_, err := telemetry.NewMetrics(reg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("second NewMetrics on one registry: %v, want AlreadyRegisteredError", err)
	}
}

func TestRuntimeCollectors(t *testing.T) {
	tests := []struct {
		name    string
		opts    []telemetry.MetricsOption
		runtime bool
	}{
		{"default", nil, true},
		{"without", []telemetry.MetricsOption{telemetry.WithoutRuntimeCollectors()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			if _, err := telemetry.NewMetrics(reg, append(tt.opts, telemetry.WithVersion("v1.2.3"))...); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
				if got := len(gather(t, reg, name)) > 0; got != tt.runtime {
					t.Errorf("%s exported = %v, want %v", name, got, tt.runtime)
				}
			}
			s := gather(t, reg, "streamd_build_info")
			if len(s) != 1 || s[0].value != 1 || s[0].labels["version"] != "v1.2.3" {
				t.Errorf("streamd_build_info = %+v, want one series version=v1.2.3 value 1", s)
			}
		})
	}
}

// lanes is a LaneStatser with settable stats.
type lanes struct {
	mu    sync.Mutex
	stats []telemetry.LaneStat
}

func (l *lanes) LaneStats() []telemetry.LaneStat {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]telemetry.LaneStat(nil), l.stats...)
}

func TestLaneGauges(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name      string
		stats     []telemetry.LaneStat
		perLane   bool
		oldest    float64
		laneAges  map[string]float64 // nil: no lane series
		laneCount float64
	}{
		{"nothing uncommitted", []telemetry.LaneStat{{Lane: "t/0", CommittedPosition: "5"}, {Lane: "t/1"}}, false, 0, nil, 2},
		{"oldest wins", []telemetry.LaneStat{
			{Lane: "t/0", OldestUncommitted: now.Add(-3 * time.Second)},
			{Lane: "t/1", OldestUncommitted: now.Add(-90 * time.Second)},
			{Lane: "t/2"},
		}, false, 90, nil, 3},
		{"per lane", []telemetry.LaneStat{
			{Lane: "t/0", OldestUncommitted: now.Add(-3 * time.Second)},
			{Lane: "t/1"},
			{Lane: "t/1"}, // a duplicate must not break the scrape
		}, true, 3, map[string]float64{"t/0": 3, "t/1": 0}, 3},
		{"clock skew is not a negative age", []telemetry.LaneStat{{Lane: "t/0", OldestUncommitted: now.Add(time.Second)}}, false, 0, nil, 1},
		{"no lanes", nil, true, 0, map[string]float64{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := telemetry.NewMetrics(reg, telemetry.WithoutRuntimeCollectors(), telemetry.WithClock(func() time.Time { return now }))
			if err != nil {
				t.Fatal(err)
			}
			m.WatchLanes("sales", &lanes{stats: tt.stats}, tt.perLane)
			if g := value(t, reg, "streamd_pipeline_oldest_uncommitted_age_seconds", "pipeline", "sales"); g != tt.oldest {
				t.Errorf("oldest_uncommitted_age_seconds = %v, want %v", g, tt.oldest)
			}
			if g := value(t, reg, "streamd_pipeline_lanes", "pipeline", "sales"); g != tt.laneCount {
				t.Errorf("lanes = %v, want %v", g, tt.laneCount)
			}
			got := gather(t, reg, "streamd_lane_oldest_uncommitted_age_seconds")
			if tt.laneAges == nil {
				if len(got) != 0 {
					t.Errorf("lane series exported without perLane: %+v", got)
				}
				return
			}
			if len(got) != len(tt.laneAges) {
				t.Errorf("lane series = %+v, want %v", got, tt.laneAges)
			}
			for lane, age := range tt.laneAges {
				if g := value(t, reg, "streamd_lane_oldest_uncommitted_age_seconds", "pipeline", "sales", "lane", lane); g != age {
					t.Errorf("lane %s age = %v, want %v", lane, g, age)
				}
			}
		})
	}
}

func TestLaneGaugesFollowThePipeline(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, telemetry.WithoutRuntimeCollectors(), telemetry.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	l := &lanes{stats: []telemetry.LaneStat{{Lane: "s-1", OldestUncommitted: now.Add(-time.Minute)}}}
	m.WatchLanes("cdc", l, true)
	if g := value(t, reg, "streamd_lane_oldest_uncommitted_age_seconds", "pipeline", "cdc", "lane", "s-1"); g != 60 {
		t.Fatalf("age = %v, want 60", g)
	}
	// The shard ended and a child took over: the parent's series goes away.
	l.mu.Lock()
	l.stats = []telemetry.LaneStat{{Lane: "s-2"}}
	l.mu.Unlock()
	if _, ok := find(t, reg, "streamd_lane_oldest_uncommitted_age_seconds", "pipeline", "cdc", "lane", "s-1"); ok {
		t.Error("an ended lane's series is still exported")
	}
	if g := value(t, reg, "streamd_pipeline_oldest_uncommitted_age_seconds", "pipeline", "cdc"); g != 0 {
		t.Errorf("oldest = %v, want 0", g)
	}
	m.UnwatchLanes("cdc")
	if got := gather(t, reg, "streamd_pipeline_lanes"); len(got) != 0 {
		t.Errorf("unwatched pipeline still exported: %+v", got)
	}
	// LaneStatsFunc adapts a plain function.
	m.WatchLanes("fn", telemetry.LaneStatsFunc(func() []telemetry.LaneStat { return []telemetry.LaneStat{{Lane: "x"}, {Lane: "y"}} }), false)
	if g := value(t, reg, "streamd_pipeline_lanes", "pipeline", "fn"); g != 2 {
		t.Errorf("lanes via LaneStatsFunc = %v, want 2", g)
	}
}

// numProcessor decodes integer lines into n and event_time (n seconds);
// negative numbers are filtered, "dup" lines deduplicated, anything else
// dead-lettered.
type numProcessor struct{}

func (numProcessor) Schema() *streamd.Schema { return testSchema }

func (numProcessor) Process(lane string, _ []byte, recs []streamd.Record) *streamd.Batch {
	b := streamd.NewBatch(testSchema, lane)
	for _, r := range recs {
		b.NoteRead(r.Pos, len(r.Data))
		if string(r.Data) == "dup" {
			b.Deduplicated++
			continue
		}
		n, err := strconv.ParseInt(string(r.Data), 10, 64)
		switch {
		case err != nil:
			b.AddDead(r.Pos, `column "n": `+err.Error(), r.Data)
		case n < 0:
			b.Filtered++
		default:
			b.Cols[0].AppendInt64(n)
			b.Cols[1].AppendInt64(n * 1e6)
			b.AddRowMeta(r.Pos, n*1e6)
		}
	}
	return b
}

// sliceSource serves finite lanes of string records, position = index.
type sliceSource struct{ lanes map[string][]string }

func (s sliceSource) Run(ctx context.Context, _ ingest.Resumer, out chan<- ingest.Chunk) error {
	for lane, data := range s.lanes {
		c := ingest.Chunk{Lane: lane, End: true}
		for i, d := range data {
			c.Records = append(c.Records, streamd.Record{Data: []byte(d), Pos: streamd.Position{Offset: int64(i)}})
		}
		select {
		case out <- c:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// flakySink fails its first failures writes.
type flakySink struct {
	mu       sync.Mutex
	failures int
}

func (s *flakySink) Write(context.Context, streamd.Intent, *streamd.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures > 0 {
		s.failures--
		return errors.New("injected sink failure")
	}
	return nil
}

func (s *flakySink) Close(context.Context) error { return nil }

// TestObserverInPipeline runs the real runtime with Metrics as its
// Observer: the counters must equal the pipeline's own totals.
func TestObserverInPipeline(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, telemetry.WithoutRuntimeCollectors())
	if err != nil {
		t.Fatal(err)
	}
	src := sliceSource{lanes: map[string][]string{}}
	for l := range 3 {
		var data []string
		for i := range 50 {
			switch {
			case i%10 == 3:
				data = append(data, "-1")
			case i%10 == 5:
				data = append(data, "dup")
			case i%10 == 7:
				data = append(data, "bad")
			default:
				data = append(data, strconv.Itoa(1000*l+i))
			}
		}
		src.lanes[fmt.Sprintf("lane-%d", l)] = data
	}
	p, err := pipeline.New(pipeline.Config{
		Name: "sales", Source: src, Processor: numProcessor{}, Sink: &flakySink{failures: 2},
		Store: checkpoint.NewFileStore(t.TempDir()), Window: window.Policy{MaxRecords: 20, MaxBytes: 1 << 20, MaxAge: time.Hour},
		FlushAttempts: 5, RetryBackoff: time.Millisecond, Observer: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	checks := []struct {
		name string
		want int64
	}{
		{"streamd_pipeline_records_read_total", st.Read},
		{"streamd_pipeline_records_written_total", st.Written},
		{"streamd_pipeline_records_filtered_total", st.Filtered},
		{"streamd_pipeline_records_deduplicated_total", st.Deduplicated},
		{"streamd_pipeline_records_dead_lettered_total", st.DeadLettered},
		{"streamd_pipeline_input_bytes_total", st.Bytes},
		{"streamd_checkpoint_commits_total", st.Batches},
		{"streamd_sink_write_failures_total", 2},
	}
	for _, c := range checks {
		if g := value(t, reg, c.name, "pipeline", "sales"); g != float64(c.want) {
			t.Errorf("%s = %v, want %d", c.name, g, c.want)
		}
	}
	if st.Read != 150 || st.Filtered != 15 || st.Deduplicated != 15 || st.DeadLettered != 15 {
		t.Errorf("pipeline stats %+v; the test data has 150 records, 15 of each removal", st)
	}
	var batches float64
	for _, s := range gather(t, reg, "streamd_window_batches_flushed_total") {
		batches += s.value
	}
	if batches != float64(st.Batches) {
		t.Errorf("batches_flushed_total sums to %v, want %d", batches, st.Batches)
	}
	if g := value(t, reg, "streamd_pipeline_committed_event_time_seconds", "pipeline", "sales"); g != 2049 {
		t.Errorf("committed_event_time_seconds = %v, want 2049 (the largest n)", g)
	}
}
