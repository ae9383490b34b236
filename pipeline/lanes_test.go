package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/pipeline"
	"github.com/streamd/streamd/window"
)

// scriptSource sends the given chunks in order, then waits for ctx.
type scriptSource struct {
	chunks   []ingest.Chunk
	released chan struct{}
}

func (s *scriptSource) Run(ctx context.Context, _ ingest.Resumer, out chan<- ingest.Chunk) error {
	for _, c := range s.chunks {
		select {
		case out <- c:
		case <-ctx.Done():
			return nil
		}
		if c.Revoked {
			select {
			case <-c.Released:
				close(s.released)
			case <-ctx.Done():
				return nil
			}
		}
	}
	<-ctx.Done()
	return nil
}

func recs(from, to int) []streamd.Record {
	var out []streamd.Record
	for i := from; i <= to; i++ {
		out = append(out, streamd.Record{Data: []byte(itoa(i)), Pos: streamd.Position{Offset: int64(i)}})
	}
	return out
}

func itoa(i int) string { return string(json.Number(jsonInt(i))) }

func jsonInt(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestRevokeFlushesAndReleasesLane(t *testing.T) {
	released := make(chan struct{})
	src := &scriptSource{released: make(chan struct{}), chunks: []ingest.Chunk{
		{Lane: "p0", Records: recs(0, 9)},
		{Lane: "p0", Revoked: true, Released: released},
		{Lane: "p0", Records: recs(10, 14)}, // the lane comes back
	}}
	sink := &memSink{}
	store := checkpoint.NewFileStore(t.TempDir())
	p, _ := pipeline.New(pipeline.Config{Name: "t", Source: src, Processor: newNumProcessor(), Sink: sink, Store: store,
		Window: window.Policy{MaxRecords: 1000, MaxAge: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-src.released:
	case <-time.After(10 * time.Second):
		t.Fatal("revoked lane was not released")
	}
	st, _ := store.Load(context.Background(), "t", "p0")
	if !st.HasCommit || st.Committed.Offset != 9 {
		t.Fatalf("at release the lane is committed at %+v, want 9", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, _ = store.Load(context.Background(), "t", "p0")
	if st.Committed.Offset != 14 || p.Stats().Written != 15 {
		t.Fatalf("after stop: %+v, stats %+v", st, p.Stats())
	}
}

// seenOperator drops numbers it has seen on the lane before; its state is
// the set of seen numbers.
type seenOperator struct {
	mu   sync.Mutex
	seen map[string]map[int64]bool
}

func (o *seenOperator) Restore(lane string, state []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := map[int64]bool{}
	if state != nil {
		var list []int64
		if err := json.Unmarshal(state, &list); err != nil {
			return err
		}
		for _, n := range list {
			m[n] = true
		}
	}
	if o.seen == nil {
		o.seen = map[string]map[int64]bool{}
	}
	o.seen[lane] = m
	return nil
}

func (o *seenOperator) Apply(lane string, b *streamd.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	keep := make([]bool, b.Len())
	for i, n := range b.Cols[0].Int64 {
		keep[i] = !o.seen[lane][n]
		if !keep[i] {
			b.Deduplicated++
		}
		o.seen[lane][n] = true
	}
	b.Keep(keep)
	return nil
}

func (o *seenOperator) Snapshot(lane string) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var list []int64
	for n := range o.seen[lane] {
		list = append(list, n)
	}
	return json.Marshal(list)
}

func (o *seenOperator) Forget(lane string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.seen, lane)
}

func TestOperatorStateCommittedAndRestoredForRedo(t *testing.T) {
	ctx := context.Background()
	store := checkpoint.NewFileStore(t.TempDir())
	data := []string{"1", "2", "1", "3", "2", "4", "5", "1", "6", "7"}
	// First run: everything, batches of 3.
	sink := &memSink{}
	p, _ := pipeline.New(pipeline.Config{Name: "t", Source: &sliceSource{lanes: map[string][]string{"a": data}, chunk: 3},
		Processor: newNumProcessor(), Operator: &seenOperator{}, Sink: sink, Store: store, Window: window.Policy{MaxRecords: 3}})
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Written != 7 || st.Deduplicated != 3 {
		t.Fatalf("stats %+v", st)
	}
	// Pretend the batch [3, 5] crashed before its commit: state as of 2 and an open intent.
	st2 := store2(t, store, data[:3], streamd.Intent{Pipeline: "t", Lane: "a", From: streamd.Position{Offset: 3}, To: streamd.Position{Offset: 5}})
	sink2 := &memSink{}
	p2, _ := pipeline.New(pipeline.Config{Name: "t", Source: &sliceSource{lanes: map[string][]string{"a": data}, chunk: 3},
		Processor: newNumProcessor(), Operator: &seenOperator{}, Sink: sink2, Store: st2, Window: window.Policy{MaxRecords: 3}})
	if err := p2.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for _, in := range sink2.writes {
		if got, want := sink2.rows[in], sink.rows[in]; len(got) != len(want) {
			t.Fatalf("redo of %v wrote %v, first run wrote %v", in, got, want)
		}
	}
}

// store2 builds a store in which lane a committed data (positions 0..len-1)
// with the operator state after it, and has intent open.
func store2(t *testing.T, _ checkpoint.Store, data []string, open streamd.Intent) checkpoint.Store {
	t.Helper()
	ctx := context.Background()
	s := checkpoint.NewFileStore(t.TempDir())
	seen := map[string]bool{}
	var list []int64
	for _, d := range data {
		if !seen[d] {
			seen[d] = true
			var n int64
			_ = json.Unmarshal([]byte(d), &n)
			list = append(list, n)
		}
	}
	state, _ := json.Marshal(list)
	first := streamd.Intent{Pipeline: "t", Lane: "a", From: streamd.Position{Offset: 0}, To: streamd.Position{Offset: int64(len(data) - 1)}}
	if err := s.PutIntent(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, first, state); err != nil {
		t.Fatal(err)
	}
	if err := s.PutIntent(ctx, open); err != nil {
		t.Fatal(err)
	}
	return s
}

// fencedStore fences every write of one lane, as a DynamoDB store does once
// another process took the lane's lease.
type fencedStore struct {
	checkpoint.Store
	lane string
}

func (f fencedStore) PutIntent(ctx context.Context, in streamd.Intent) error {
	if in.Lane == f.lane {
		return fmt.Errorf("put intent: %w", checkpoint.ErrFenced)
	}
	return f.Store.PutIntent(ctx, in)
}

func TestFencedLaneIsAbandonedNotFatal(t *testing.T) {
	store := fencedStore{Store: checkpoint.NewFileStore(t.TempDir()), lane: "lost"}
	sink := &memSink{}
	p, _ := pipeline.New(pipeline.Config{Name: "t", Source: &sliceSource{lanes: map[string][]string{"lost": nums(50), "kept": nums(50)}, chunk: 10},
		Processor: newNumProcessor(), Sink: sink, Store: store, Window: window.Policy{MaxRecords: 20}, RetryBackoff: time.Millisecond})
	if err := p.Run(context.Background()); err != nil {
		t.Fatalf("a fenced lane stopped the pipeline: %v", err)
	}
	for _, in := range sink.writes {
		if in.Lane == "lost" {
			t.Fatalf("fenced lane was written: %+v", in)
		}
	}
	if p.Stats().Written != 50 {
		t.Fatalf("stats %+v: want the other lane's 50 records", p.Stats())
	}
}

// TestEndedLanesReleaseGoroutines: a lane that ended (a file read to its
// end) keeps no goroutines while the source runs on, and a lane that gets
// records again after its end starts over from its checkpoint.
func TestEndedLanesReleaseGoroutines(t *testing.T) {
	const lanes = 2000
	var chunks []ingest.Chunk
	for i := range lanes {
		chunks = append(chunks, ingest.Chunk{Lane: fmt.Sprintf("f%04d", i), Records: recs(0, 2), End: true})
	}
	// f0007 grows after its end (a file appended to and found again).
	chunks = append(chunks, ingest.Chunk{Lane: "f0007", Records: recs(3, 5), End: true})
	src := &scriptSource{chunks: chunks}
	sink := &memSink{}
	store := checkpoint.NewFileStore(t.TempDir())
	p, err := pipeline.New(pipeline.Config{Name: "t", Source: src, Processor: newNumProcessor(), Sink: sink, Store: store,
		Window: window.Policy{MaxRecords: 100}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	base := runtime.NumGoroutine()
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for p.Stats().Read < lanes*3+3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v after 30s", p.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Everything is committed and the source idles: the ended lanes'
	// goroutines are gone (3 per lane before).
	var n int
	for range 100 {
		if n = runtime.NumGoroutine() - base; n < 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n >= 50 {
		t.Fatalf("%d goroutines above the start while %d lanes have ended", n, lanes)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, err := store.Load(context.Background(), "t", "f0007")
	if err != nil || st.Committed.Offset != 5 {
		t.Fatalf("f0007 committed %s (%v), want 5", st.Committed, err)
	}
	var got []int64
	for _, in := range sink.writes {
		if in.Lane == "f0007" {
			got = append(got, sink.rows[in]...)
		}
	}
	if fmt.Sprint(got) != "[0 1 2 3 4 5]" {
		t.Fatalf("f0007 rows %v", got)
	}
}
