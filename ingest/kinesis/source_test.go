package kinesis_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/checkpoint/dynamodb"
	"github.com/streamd/streamd/checkpoint/lease"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/kinesis"
	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pipeline"
	"github.com/streamd/streamd/window"
)

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("STREAMD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func fastConfig(stream string, reg prometheus.Registerer, log *slog.Logger) kinesis.Config {
	return kinesis.Config{Stream: stream, PollInterval: 30 * time.Millisecond, IdleInterval: 60 * time.Millisecond,
		ListInterval: 300 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, Registerer: reg, Logger: log}
}

// runPipeline runs a pipeline in the background; stop cancels it and
// returns Run's error.
func runPipeline(t *testing.T, cfg pipeline.Config) (stop func() error) {
	t.Helper()
	p, err := pipeline.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(60 * time.Second):
				runErr = errors.New("pipeline did not stop within 60s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return stop
}

// reshardMidStream splits shard 0 after a third of the rounds and merges
// shards 2 and 3 after two thirds.
func reshardMidStream(ctx context.Context, c *awskinesis.Client, stream string, rounds int) func(int) error {
	return func(n int) error {
		switch n {
		case rounds / 3:
			return split(ctx, c, stream, "shardId-000000000000")
		case 2 * rounds / 3:
			return merge(ctx, c, stream, "shardId-000000000002", "shardId-000000000003")
		}
		return nil
	}
}

func TestReshardExactlyOnceOneProcess(t *testing.T) {
	peer := testenv.Kinesis(t)
	const stream, keys, perKey = "orders", 20, 60
	peer.CreateStream(t, stream, 4)
	reg := prometheus.NewRegistry()
	src, err := kinesis.New(peer.Client(), fastConfig(stream, reg, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	data := &memSinkData{byKey: map[string][]row{}}
	stop := runPipeline(t, pipeline.Config{Name: "orders", Source: src, Processor: newProcessor(t), Sink: newMemSink("a", data),
		Store: checkpoint.NewFileStore(t.TempDir()), Window: window.Policy{MaxRecords: 37, MaxAge: 100 * time.Millisecond}, Workers: 2})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := peer.Client()
	if err := produce(ctx, c, stream, keys, perKey, reshardMidStream(ctx, c, stream, perKey)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 90*time.Second, "every record to be committed", func() bool { return data.count() >= keys*perKey })
	if err := stop(); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	rows := data.rows()
	checkExactlyOnceInOrder(t, rows, keys, perKey)
	// 4 shards, + 2 children of the split, + 1 of the merge.
	if got := lanes(rows); len(got) != 7 {
		t.Fatalf("rows came from lanes %v, want 7 (4 + 2 split children + 1 merge child)", got)
	}
	if n := value(src.Metrics().Read.WithLabelValues(stream)); n != keys*perKey {
		t.Fatalf("records read metric %v, want %d", n, keys*perKey)
	}
	if n := series(t, reg, "streamd_kinesis_millis_behind_latest_milliseconds"); n > 7 {
		t.Fatalf("%d millis-behind series, want at most one per shard", n)
	}
}

func TestReshardExactlyOnceTwoProcessesWithLeases(t *testing.T) {
	kin := testenv.Kinesis(t)
	ddb := testenv.DynamoDB(t)
	const stream, table, keys, perKey = "clicks", "streamd-state", 16, 60
	kin.CreateStream(t, stream, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := dynamodb.EnsureTable(ctx, ddb.Client(), table); err != nil {
		t.Fatal(err)
	}
	data := &memSinkData{byKey: map[string][]row{}}
	type worker struct {
		leases *lease.Table
		stop   func() error
	}
	start := func(owner string) worker {
		m, err := lease.NewTable(lease.Config{Client: ddb.Client(), Table: table, Pipeline: "clicks", Owner: owner,
			RenewInterval: 300 * time.Millisecond, FailoverTime: 10 * time.Second, Logger: testLogger(t).With("worker", owner)})
		if err != nil {
			t.Fatal(err)
		}
		store := dynamodb.New(ddb.Client(), dynamodb.Config{Table: table})
		store.SetFence("clicks", m)
		cfg := fastConfig(stream, prometheus.NewRegistry(), testLogger(t).With("worker", owner))
		cfg.Leases = m
		src, err := kinesis.New(kin.Client(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		stop := runPipeline(t, pipeline.Config{Name: "clicks", Source: src, Processor: newProcessor(t), Sink: newMemSink(owner, data),
			Store: store, Window: window.Policy{MaxRecords: 29, MaxAge: 100 * time.Millisecond}, Workers: 2,
			Logger: testLogger(t).With("worker", owner)})
		return worker{leases: m, stop: stop}
	}
	a := start("worker-a")
	c := kin.Client()
	var b worker
	reshard := reshardMidStream(ctx, c, stream, perKey)
	err := produce(ctx, c, stream, keys, perKey, func(n int) error {
		if n == perKey/6 {
			b = start("worker-b") // joins mid-stream: leases are balanced by hand-over
			// Produce on only once b holds a shard, so both workers read part
			// of the stream however fast a reads (a timing race otherwise).
			testenv.WaitFor(t, time.Minute, "worker-b to take over a shard", func() bool { return len(b.leases.Held()) > 0 })
		}
		return reshard(n)
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Minute, "every record to be committed", func() bool { return data.count() >= keys*perKey })
	for _, w := range []worker{a, b} {
		if err := w.stop(); err != nil {
			t.Fatalf("pipeline: %v", err)
		}
	}
	rows := data.rows()
	checkExactlyOnceInOrder(t, rows, keys, perKey)
	writers := map[string]int{}
	for _, r := range rows {
		writers[r.writer]++
	}
	if writers["worker-a"] == 0 || writers["worker-b"] == 0 {
		t.Fatalf("rows per worker %v: both should have read shards", writers)
	}
	// Both stopped: every lease was released or finished.
	items, err := dynamodb.QueryPipeline(ctx, ddb.Client(), table, "clicks")
	if err != nil {
		t.Fatal(err)
	}
	finished := 0
	for _, it := range items {
		if _, owned := it[dynamodb.AttrLeaseOwner]; owned {
			t.Errorf("lease of %v still owned after shutdown", it[dynamodb.AttrLane])
		}
		if f, ok := it[dynamodb.AttrFinished]; ok && f != nil {
			finished++
		}
	}
	if finished != 3 {
		t.Errorf("%d shards finished, want 3 (the split parent and both merge parents)", finished)
	}
}

// putAggregates puts n KPL aggregates of size sub-records each into a
// one-shard stream; sub-record j of aggregate i is event {k, i*size+j}.
func putAggregates(t *testing.T, c *awskinesis.Client, stream string, n, size int) {
	t.Helper()
	for i := 0; i < n; i++ {
		var datas [][]byte
		for j := 0; j < size; j++ {
			datas = append(datas, []byte(fmt.Sprintf(`{"k":"key-00","n":%d}`, i*size+j)))
		}
		if _, err := c.PutRecord(context.Background(), &awskinesis.PutRecordInput{StreamName: aws.String(stream),
			PartitionKey: aws.String("key-00"), Data: kinesis.Aggregate([]string{"key-00"}, datas)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKPLRedoStartsMidAggregate(t *testing.T) {
	peer := testenv.Kinesis(t)
	const stream, aggs, size = "kpl", 6, 5
	peer.CreateStream(t, stream, 1)
	putAggregates(t, peer.Client(), stream, aggs, size)
	dir := t.TempDir()
	store := checkpoint.NewFileStore(dir)

	// First run: batches of 3 records cut aggregates; the second batch's
	// write fails for good, leaving its intent open and the process "down".
	data := &memSinkData{byKey: map[string][]row{}}
	failing := newMemSink("first", data)
	var redo streamd.Intent
	var writes atomic.Int64
	failing.failing = func(in streamd.Intent) error {
		if writes.Add(1) == 2 {
			redo = in
			return errors.New("sink down")
		}
		return nil
	}
	src, err := kinesis.New(peer.Client(), fastConfig(stream, nil, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Config{Name: "kpl", Source: src, Processor: newProcessor(t), Sink: failing, Store: store,
		Window: window.Policy{MaxRecords: 3, MaxAge: time.Minute}, FlushAttempts: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Run(ctx); err == nil {
		t.Fatal("first run succeeded with a failing sink")
	}
	st, err := store.Load(ctx, "kpl", "shardId-000000000000")
	if err != nil {
		t.Fatal(err)
	}
	if st.Intent == nil || *st.Intent != redo || st.Intent.From.Sub == 0 {
		t.Fatalf("open intent %+v (failed %+v): want one starting inside an aggregate (sub > 0)", st.Intent, redo)
	}

	// Second run redoes exactly the open intent, from inside the aggregate.
	src2, err := kinesis.New(peer.Client(), fastConfig(stream, nil, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	stop := runPipeline(t, pipeline.Config{Name: "kpl", Source: src2, Processor: newProcessor(t), Sink: newMemSink("second", data),
		Store: store, Window: window.Policy{MaxRecords: 3, MaxAge: 100 * time.Millisecond}, Workers: 1})
	testenv.WaitFor(t, 30*time.Second, "every record to be committed", func() bool { return data.count() >= aggs*size })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnceInOrder(t, data.rows(), 1, aggs*size)
	key := fmt.Sprintf("%s|%s|%s", redo.Lane, redo.From, redo.To)
	data.mu.Lock()
	got := data.byKey[key]
	data.mu.Unlock()
	if len(got) != 3 || got[0].writer != "second" || got[0].pos != redo.From {
		t.Fatalf("redo batch %s: %+v, want the 3 records from %s written by the second run", key, got, redo.From)
	}
}

func TestCorruptAggregateIsDeadLettered(t *testing.T) {
	peer := testenv.Kinesis(t)
	const stream = "corrupt"
	peer.CreateStream(t, stream, 1)
	c := peer.Client()
	good := kinesis.Aggregate([]string{"k"}, [][]byte{[]byte(`{"k":"key-00","n":0}`), []byte(`{"k":"key-00","n":1}`)})
	bad := append([]byte(nil), good...)
	bad[10] ^= 0x55 // the MD5 no longer matches
	for _, d := range [][]byte{bad, good} {
		if _, err := c.PutRecord(context.Background(), &awskinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("k"), Data: d}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	src, err := kinesis.New(c, fastConfig(stream, reg, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	data := &memSinkData{byKey: map[string][]row{}}
	stop := runPipeline(t, pipeline.Config{Name: "c", Source: src, Processor: newProcessor(t), Sink: newMemSink("a", data),
		Store: checkpoint.NewFileStore(t.TempDir()), Window: window.Policy{MaxRecords: 3, MaxAge: 100 * time.Millisecond}})
	testenv.WaitFor(t, 30*time.Second, "the good aggregate", func() bool { return data.count() >= 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	data.mu.Lock()
	dead := append([]streamd.DeadLetter(nil), data.dead...)
	data.mu.Unlock()
	if len(dead) != 1 || string(dead[0].Raw) != string(bad) || dead[0].Pos.Sub != 0 {
		t.Fatalf("dead letters %+v, want the corrupt aggregate once with its raw bytes", dead)
	}
	if n := value(src.Metrics().Corrupt.WithLabelValues(stream)); n != 1 {
		t.Fatalf("corrupt aggregates metric %v, want 1", n)
	}
	checkExactlyOnceInOrder(t, data.rows(), 1, 2)
}

// fixedResumer resumes every lane at pos.
type fixedResumer struct{ pos streamd.Position }

func (r fixedResumer) Resume(context.Context, string) (streamd.Position, bool, error) {
	return r.pos, true, nil
}

func TestResumePastRetentionIsReportedAsLoss(t *testing.T) {
	peer := testenv.Kinesis(t)
	const stream = "trimmed"
	peer.CreateStream(t, stream, 1)
	c := peer.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := produce(ctx, c, stream, 1, 5, func(int) error { return nil }); err != nil {
		t.Fatal(err)
	}
	shards, err := c.ListShards(ctx, &awskinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	// A checkpoint at a sequence number that is no longer in the shard
	// (as after trimming): the first record available is a later one.
	gone := aws.ToString(shards.Shards[0].SequenceNumberRange.StartingSequenceNumber)
	tests := []struct {
		name     string
		resume   streamd.Position
		wantLoss float64
		wantN    int
	}{
		{name: "checkpoint trimmed", resume: streamd.Position{Seq: gone}, wantLoss: 1, wantN: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			src, err := kinesis.New(c, fastConfig(stream, reg, testLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			got := collect(t, src, fixedResumer{tc.resume}, tc.wantN)
			if len(got) != tc.wantN {
				t.Fatalf("got %d records, want %d", len(got), tc.wantN)
			}
			if n := value(src.Metrics().Lost.WithLabelValues(stream)); n != tc.wantLoss {
				t.Fatalf("loss events %v, want %v", n, tc.wantLoss)
			}
		})
	}
	// Resuming at a record that is still there reports nothing and skips it.
	reg := prometheus.NewRegistry()
	src, err := kinesis.New(c, fastConfig(stream, reg, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	all := collect(t, src, nil, 5)
	src2, err := kinesis.New(c, fastConfig(stream, reg, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	rest := collect(t, src2, fixedResumer{all[1].Pos}, 3)
	if rest[0].Pos != all[2].Pos || value(src2.Metrics().Lost.WithLabelValues(stream)) != 0 {
		t.Fatalf("resume after %s: first %s, want %s and no loss", all[1].Pos, rest[0].Pos, all[2].Pos)
	}
}

// noResume starts every lane at the configured start.
type noResume struct{}

func (noResume) Resume(context.Context, string) (streamd.Position, bool, error) {
	return streamd.Position{}, false, nil
}

// collect runs src until n records arrived (at most 30s) and returns them.
func collect(t *testing.T, src *kinesis.Source, r ingest.Resumer, n int) []streamd.Record {
	t.Helper()
	if r == nil {
		r = noResume{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan ingest.Chunk, 16)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, r, out) }()
	var got []streamd.Record
	timeout := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case c := <-out:
			got = append(got, c.Records...)
		case err := <-errc:
			t.Fatalf("source stopped: %v", err)
		case <-timeout:
			cancel()
			t.Fatalf("got %d records after 30s, want %d", len(got), n)
		}
	}
	cancel()
	for {
		select {
		case <-out:
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
	}
}

// faulty wraps the real client: it pages ListShards two shards at a time,
// throttles every other GetRecords and expires the first iterator it sees.
type faulty struct {
	c        *awskinesis.Client
	calls    atomic.Int64
	expired  atomic.Bool
	pages    atomic.Int64
	throttle atomic.Int64
}

func (f *faulty) ListShards(ctx context.Context, in *awskinesis.ListShardsInput, opts ...func(*awskinesis.Options)) (*awskinesis.ListShardsOutput, error) {
	start := 0
	if in.NextToken != nil {
		if in.StreamName != nil {
			return nil, &types.InvalidArgumentException{Message: aws.String("NextToken and StreamName are exclusive")}
		}
		fmt.Sscanf(aws.ToString(in.NextToken), "page-%d", &start)
	}
	out, err := f.c.ListShards(ctx, &awskinesis.ListShardsInput{StreamName: aws.String("faulty")}, opts...)
	if err != nil {
		return nil, err
	}
	f.pages.Add(1)
	end := min(start+2, len(out.Shards))
	res := &awskinesis.ListShardsOutput{Shards: out.Shards[start:end]}
	if end < len(out.Shards) {
		res.NextToken = aws.String(fmt.Sprintf("page-%d", end))
	}
	return res, nil
}

func (f *faulty) GetShardIterator(ctx context.Context, in *awskinesis.GetShardIteratorInput, opts ...func(*awskinesis.Options)) (*awskinesis.GetShardIteratorOutput, error) {
	return f.c.GetShardIterator(ctx, in, opts...)
}

func (f *faulty) GetRecords(ctx context.Context, in *awskinesis.GetRecordsInput, opts ...func(*awskinesis.Options)) (*awskinesis.GetRecordsOutput, error) {
	n := f.calls.Add(1)
	if n%2 == 0 {
		f.throttle.Add(1)
		return nil, &types.ProvisionedThroughputExceededException{Message: aws.String("Rate exceeded for shard")}
	}
	out, err := f.c.GetRecords(ctx, in, opts...)
	if err == nil && len(out.Records) > 0 && f.expired.CompareAndSwap(false, true) {
		// Deliver nothing and pretend the iterator expired: the source
		// re-opens it where it was and reads the same records again.
		return nil, &types.ExpiredIteratorException{Message: aws.String("Iterator expired")}
	}
	return out, err
}

func TestThrottlingExpiryAndPaging(t *testing.T) {
	peer := testenv.Kinesis(t)
	const stream = "faulty"
	peer.CreateStream(t, stream, 5)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := produce(ctx, peer.Client(), stream, 40, 5, func(int) error { return nil }); err != nil {
		t.Fatal(err)
	}
	f := &faulty{c: peer.Client()}
	reg := prometheus.NewRegistry()
	src, err := kinesis.New(f, fastConfig(stream, reg, testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	data := &memSinkData{byKey: map[string][]row{}}
	stop := runPipeline(t, pipeline.Config{Name: "f", Source: src, Processor: newProcessor(t), Sink: newMemSink("a", data),
		Store: checkpoint.NewFileStore(t.TempDir()), Window: window.Policy{MaxRecords: 50, MaxAge: 100 * time.Millisecond}})
	testenv.WaitFor(t, 45*time.Second, "every record", func() bool { return data.count() >= 200 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnceInOrder(t, data.rows(), 40, 5)
	if got := lanes(data.rows()); len(got) != 5 {
		t.Fatalf("lanes %v, want all 5 shards (listed over 3 pages)", got)
	}
	if !f.expired.Load() || f.pages.Load() < 3 {
		t.Fatalf("expired=%v pages=%d: the faults were not exercised", f.expired.Load(), f.pages.Load())
	}
	// Every throttle the fake injected is counted, except one per shard at
	// most: a throttled call still in flight when the pipeline stops ends
	// with the cancelled context instead.
	if n, injected := value(src.Metrics().Throttled.WithLabelValues(stream)), float64(f.throttle.Load()); n == 0 || n > injected || n < injected-5 {
		t.Fatalf("throttled metric %v, want %v (at most 5 fewer)", n, injected)
	}
}

func TestNewValidates(t *testing.T) {
	c := awskinesis.New(awskinesis.Options{Region: "us-east-1"})
	tests := []struct {
		name string
		cfg  kinesis.Config
		ok   bool
	}{
		{"defaults", kinesis.Config{Stream: "s"}, true},
		{"latest", kinesis.Config{Stream: "s", Start: "latest"}, true},
		{"at_timestamp", kinesis.Config{Stream: "s", Start: "at_timestamp", Timestamp: time.Now()}, true},
		{"at_timestamp without timestamp", kinesis.Config{Stream: "s", Start: "at_timestamp"}, false},
		{"unknown start", kinesis.Config{Stream: "s", Start: "earliest"}, false},
		{"no stream", kinesis.Config{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kinesis.New(c, tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// value returns the sum of a collector's counter and gauge values.
func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 64)
	c.Collect(ch)
	close(ch)
	var sum float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			continue
		}
		sum += d.GetCounter().GetValue() + d.GetGauge().GetValue()
	}
	return sum
}

// series counts the series of metric family name in reg.
func series(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return len(f.GetMetric())
		}
	}
	return 0
}
