package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/salesgen"
	"github.com/streamd/streamd/internal/testenv"
)

// BenchmarkProduceToVisibleLatency measures how long a record takes from
// its produce call to the moment the Parquet file holding it is visible to
// a reader, end to end through the streamd binary.
//
// A producer writes sales-shaped JSON records (internal/salesgen) to a
// 4-partition kfake topic at a steady 5,000 records/s for 35 s, noting the
// wall time just before each produce call (conservative: the produce
// round trip counts as latency). streamd (a child process, window
// max_age 5s, snappy Parquet on local disk) consumes them. A watcher walks
// the output directory every 50 ms and notes when each complete file (a
// name ending in .parquet; the sink writes hidden temporary files and
// renames) is first seen. Once every record is committed, streamd is
// stopped and every file is read back: latency = first-seen time of the
// file holding the record − its produce time. The poll interval bounds the
// measurement error: a file is seen at most 50 ms plus one directory walk
// after it appeared, so the figures over-state by at most that.
//
// The target is p99 ≤ max_age + 1 s = 6 s. Metrics: p50-s, p99-s,
// max-s (seconds), files seen, and records/s actually produced.
func BenchmarkProduceToVisibleLatency(b *testing.B) {
	const (
		topic      = "sales"
		parts      = 4
		rate       = 5000 // records/s
		produceFor = 35 * time.Second
		poll       = 50 * time.Millisecond
	)
	var p50s, p99s, maxs []float64
	var files int
	var produced int
	var producedFor time.Duration
	for i := 0; i < b.N; i++ {
		k := testenv.Kafka(b)
		k.CreateTopic(b, topic, parts)
		dir := b.TempDir()
		group := fmt.Sprintf("latency-%d", i)
		cfg := kafkaSalesConfig(b, dir, k.Addrs, topic, group, "{max_records: 1000000, max_bytes: 1GiB, max_age: 5s}", "", "")
		p := startStreamd(b, "streamd", cfg)
		// Produce only once the partitions are assigned: the group join
		// is start-up cost, not latency.
		waitUntil(b, 60*time.Second, "the group to be stable", func() bool { return groupStable(b, k, group) })

		w := watchParquet(filepath.Join(dir, "out"), poll)
		prodStart := time.Now()
		pr := produceSteady(b, k, topic, parts, rate, produceFor, 10*time.Millisecond, salesgen.Options{})
		<-pr.done
		producedFor += time.Since(prodStart)
		if pr.err != nil {
			b.Fatalf("produce: %v", pr.err)
		}
		total := len(pr.truths)
		waitUntil(b, 60*time.Second, "every record committed", func() bool {
			return groupCommitted(b, k, group, topic) >= int64(total)
		})
		seen := w.stop()
		p.stop(b, 30*time.Second)

		lat, worst := latencies(b, filepath.Join(dir, "out"), seen, pr.sentAt)
		if len(lat) != total {
			b.Fatalf("%d records in the output, %d produced", len(lat), total)
		}
		slices.Sort(lat)
		q := func(f float64) float64 { return lat[min(len(lat)-1, int(f*float64(len(lat))))].Seconds() }
		p50s, p99s, maxs = append(p50s, q(0.50)), append(p99s, q(0.99)), append(maxs, lat[len(lat)-1].Seconds())
		files += len(seen)
		produced += total
		b.Logf("run %d: %d records, %d files; latency p50 %.3fs p90 %.3fs p99 %.3fs max %.3fs min %.3fs",
			i, total, len(seen), q(0.5), q(0.9), q(0.99), lat[len(lat)-1].Seconds(), lat[0].Seconds())
		for _, f := range worst[:min(5, len(worst))] {
			b.Logf("  slow file %s: oldest record produced %.3fs after the start, visible %.3fs later (%d rows)",
				f.name, f.oldest.Sub(prodStart).Seconds(), f.latency.Seconds(), f.rows)
		}
	}
	b.ReportMetric(slices.Max(p50s), "p50-s")
	b.ReportMetric(slices.Max(p99s), "p99-s")
	b.ReportMetric(slices.Max(maxs), "max-s")
	b.ReportMetric(float64(files)/float64(b.N), "files/op")
	b.ReportMetric(float64(produced)/producedFor.Seconds(), "produced-records/s")
}

// fileLatency is the worst latency of the records of one file.
type fileLatency struct {
	name    string
	oldest  time.Time // produce time of its oldest record
	latency time.Duration
	rows    int
}

// latencies reads every Parquet file under out and returns, for each row,
// the first-seen time of its file minus the produce time of its record,
// plus each file's worst latency, worst first. A row whose file was never
// seen by the watcher, or whose id was never produced, or which appears
// twice, fails the benchmark.
func latencies(tb testing.TB, out string, seen map[string]time.Time, sentAt map[string]time.Time) ([]time.Duration, []fileLatency) {
	tb.Helper()
	lat := make([]time.Duration, 0, len(sentAt))
	var files []fileLatency
	got := make(map[string]bool, len(sentAt))
	err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") {
			return err
		}
		visible, ok := seen[path]
		if !ok {
			tb.Fatalf("file %s was never seen by the watcher", path)
		}
		rows, err := outcheck.ReadParquetFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, path)
		fl := fileLatency{name: rel, rows: len(rows)}
		for _, r := range rows {
			id := r["transaction_id"]
			at, ok := sentAt[id]
			if !ok {
				tb.Fatalf("row %s in %s was never produced", id, path)
			}
			if got[id] {
				tb.Fatalf("record %s written twice", id)
			}
			got[id] = true
			lat = append(lat, visible.Sub(at))
			if l := visible.Sub(at); l > fl.latency {
				fl.latency, fl.oldest = l, at
			}
		}
		files = append(files, fl)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	slices.SortFunc(files, func(a, b fileLatency) int { return int(b.latency - a.latency) })
	return lat, files
}

// parquetWatcher notes when each *.parquet file under a directory is first
// seen.
type parquetWatcher struct {
	done chan struct{}
	wg   sync.WaitGroup
	seen map[string]time.Time
}

// watchParquet walks dir every interval until stop is called.
func watchParquet(dir string, interval time.Duration) *parquetWatcher {
	w := &parquetWatcher{done: make(chan struct{}), seen: map[string]time.Time{}}
	w.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return nil // the directory does not exist yet
				}
				if !d.IsDir() && strings.HasSuffix(path, ".parquet") {
					if _, ok := w.seen[path]; !ok {
						w.seen[path] = time.Now()
					}
				}
				return nil
			})
			select {
			case <-w.done:
				return
			case <-t.C:
			}
		}
	})
	return w
}

// stop ends the watcher and returns the first-seen times by path.
func (w *parquetWatcher) stop() map[string]time.Time {
	close(w.done)
	w.wg.Wait()
	return w.seen
}

// steadyProducer is a producer writing at a fixed rate.
type steadyProducer struct {
	done   chan struct{}
	err    error
	truths []salesgen.Truth
	sentAt map[string]time.Time // by transaction_id: wall time before the produce call
}

// produceSteady writes sales records (ids from 0, keyed by id, round robin
// over parts partitions, Kafka timestamp = produce time) at rate records/s
// for d, in batches every tick; read the fields once done is closed. The
// bad-record rates of o apply within each batch (salesgen counts from the
// batch's first record), so a batch must be longer than the rates.
func produceSteady(tb testing.TB, k *testenv.KafkaPeer, topic string, parts, rate int, d, tick time.Duration, o salesgen.Options) *steadyProducer {
	tb.Helper()
	cl := k.Client(tb, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	p := &steadyProducer{done: make(chan struct{}), sentAt: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(func() { cancel(); <-p.done })
	go func() {
		defer close(p.done)
		start := time.Now()
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		sent := 0
		for {
			elapsed := time.Since(start)
			if elapsed > d {
				elapsed = d
			}
			due := int(elapsed.Seconds()*float64(rate)) - sent
			if due > 0 {
				recs, truths := salesRecords(topic, parts, due, sent, o)
				now := time.Now()
				for _, r := range recs {
					r.Timestamp = now
				}
				if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					p.err = fmt.Errorf("produce %d records: %w", len(recs), err)
					return
				}
				for _, tr := range truths {
					p.sentAt[tr.ID] = now
				}
				p.truths = append(p.truths, truths...)
				sent += due
			}
			if elapsed >= d {
				return
			}
			select {
			case <-ctx.Done():
				p.err = ctx.Err()
				return
			case <-ticker.C:
			}
		}
	}()
	return p
}

// salesRecords returns n sales records with ids from firstID, spread round
// robin over parts partitions of topic, keyed by transaction_id.
func salesRecords(topic string, parts, n, firstID int, o salesgen.Options) ([]*kgo.Record, []salesgen.Truth) {
	var buf bytes.Buffer
	o.FirstID = firstID
	o.Seed = int64(firstID + 1)
	truths, err := salesgen.Write(&buf, n, o)
	if err != nil {
		panic(err) // writing to a bytes.Buffer does not fail
	}
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	recs := make([]*kgo.Record, len(lines))
	for i, l := range lines {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32((firstID + i) % parts), Key: []byte(truths[i].ID), Value: l}
	}
	return recs, truths
}

// kafkaSalesConfig writes a kafka → Parquet config of the sales schema
// into dir and returns its path; source holds extra source keys (", k: v")
// and top extra top-level lines.
func kafkaSalesConfig(tb testing.TB, dir string, brokers []string, topic, group, window, source, top string) string {
	tb.Helper()
	cfg := fmt.Sprintf(`state_dir: %[1]s/state
shutdown_timeout: 20s
%[8]spipelines:
  - name: sales
    source: {type: kafka, brokers: ["%[2]s"], topics: [%[3]s], group: %[4]s, start: earliest, commit_interval: 200ms%[7]s}
%[5]s    window: %[6]s
    sink: {type: parquet, path: %[1]s/out, partition_by: [region], compression: snappy}
    dead_letter: {path: %[1]s/dlq}
`, dir, strings.Join(brokers, `","`), topic, group, salesSchema, window, source, top)
	p := filepath.Join(dir, "streamd.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// groupCommitted returns the sum of group's committed offsets of topic; 0
// while the group does not exist yet.
func groupCommitted(tb testing.TB, k *testenv.KafkaPeer, group, topic string) int64 {
	tb.Helper()
	adm := kadm.NewClient(k.Client(tb))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0
	}
	var n int64
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At > 0 {
			n += o.At
		}
	})
	return n
}

// groupStable reports whether group is stable with partitions assigned.
func groupStable(tb testing.TB, k *testenv.KafkaPeer, group string) bool {
	tb.Helper()
	adm := kadm.NewClient(k.Client(tb))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return false
	}
	g, ok := gs[group]
	if !ok || g.Err != nil || g.State != "Stable" {
		return false
	}
	for _, m := range g.Members {
		if a, ok := m.Assigned.AsConsumer(); ok && len(a.Topics) > 0 {
			return true
		}
	}
	return false
}

// waitUntil polls cond every 100 ms until it holds or timeout passes.
func waitUntil(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// child is one running streamd process.
type child struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// syncBuffer is a bytes.Buffer safe for a writer and readers at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startStreamd runs `streamd run --config cfg` plus args; it is SIGKILLed
// at cleanup if still running, and its output is logged if the test failed.
func startStreamd(tb testing.TB, name, cfg string, args ...string) *child {
	tb.Helper()
	c := &child{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(streamdBin, append([]string{"run", "--config", cfg}, args...)...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if tb.Failed() {
			s := c.out.String()
			if len(s) > 4000 {
				s = "…" + s[len(s)-4000:]
			}
			tb.Logf("%s output (tail):\n%s", name, s)
		}
	})
	return c
}

// stop sends SIGTERM, waits at most within for the exit, fails unless the
// exit status is 0, and returns how long the exit took.
func (c *child) stop(tb testing.TB, within time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("SIGTERM %s: %v", c.name, err)
	}
	select {
	case <-c.done:
		if c.err != nil {
			tb.Fatalf("%s exited with %v after SIGTERM, want 0", c.name, c.err)
		}
	case <-time.After(within):
		tb.Fatalf("%s did not exit within %v of SIGTERM", c.name, within)
	}
	return time.Since(start)
}

// TestSIGTERMUnderLoadKafka stops streamd with SIGTERM three times while
// a producer keeps writing to a 4-partition kfake topic: each stop must
// exit 0 within shutdown_timeout, and after restarts and a final drain
// every produced record is in the output exactly once (by transaction_id,
// the record key), every poison record dead-lettered once and every
// filtered record nowhere.
func TestSIGTERMUnderLoadKafka(t *testing.T) {
	const (
		topic, group    = "sales", "sigterm"
		parts           = 4
		shutdownTimeout = 10 * time.Second
	)
	k := testenv.Kafka(t)
	k.CreateTopic(t, topic, parts)
	dir := t.TempDir()
	cfg := kafkaSalesConfig(t, dir, k.Addrs, topic, group, "{max_records: 3000, max_age: 1s}", ", session_timeout: 3s", "")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, bytes.Replace(data, []byte("shutdown_timeout: 20s"), []byte("shutdown_timeout: "+shutdownTimeout.String()), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	pr := produceSteady(t, k, topic, parts, 4000, 15*time.Second, 100*time.Millisecond, salesgen.Options{FilteredEvery: 41, MalformedEvery: 211, UncastableEvery: 307})
	for run := 0; run < 3; run++ {
		p := startStreamd(t, fmt.Sprintf("run %d", run), cfg)
		before := groupCommitted(t, k, group, topic)
		// Stop mid-stream: after this run committed something of its own.
		waitUntil(t, 60*time.Second, fmt.Sprintf("run %d to commit", run), func() bool {
			return groupCommitted(t, k, group, topic) > before+2000
		})
		select {
		case <-pr.done:
			t.Fatalf("the producer finished before SIGTERM %d: the stop was not under load", run)
		default:
		}
		took := p.stop(t, shutdownTimeout+5*time.Second)
		if took > shutdownTimeout {
			t.Errorf("run %d: exit took %v after SIGTERM, more than shutdown_timeout %v", run, took, shutdownTimeout)
		}
		if !strings.Contains(p.out.String(), "streamd: pipeline sales: read") {
			t.Fatalf("run %d printed no summary:\n%s", run, p.out.String())
		}
		t.Logf("run %d: exit 0 %v after SIGTERM; %d records committed", run, took.Round(time.Millisecond), groupCommitted(t, k, group, topic))
	}
	<-pr.done
	if pr.err != nil {
		t.Fatalf("produce: %v", pr.err)
	}
	p := startStreamd(t, "final", cfg)
	waitUntil(t, 90*time.Second, "every record committed", func() bool {
		return groupCommitted(t, k, group, topic) >= int64(len(pr.truths))
	})
	p.stop(t, shutdownTimeout+5*time.Second)
	var bad int
	for _, tr := range pr.truths {
		if tr.Kind == salesgen.Malformed || tr.Kind == salesgen.Uncastable {
			bad++
		}
	}
	if bad == 0 {
		t.Fatal("no poison record was produced: the dead-letter path was not exercised")
	}
	checkExactlyOnce(t, dir, pr.truths)
}
