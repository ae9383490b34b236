package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/pipeline"
	"github.com/streamd/streamd/window"
)

// numProcessor decodes lines holding an integer into one int64 column;
// anything else is dead-lettered, negative numbers are filtered.
type numProcessor struct{ schema *streamd.Schema }

func newNumProcessor() *numProcessor {
	s, _ := streamd.NewSchema(streamd.Field{Name: "n", Type: streamd.Type{Kind: streamd.KindInt64}})
	return &numProcessor{schema: s}
}

func (p *numProcessor) Schema() *streamd.Schema { return p.schema }

func (p *numProcessor) Process(lane string, _ []byte, recs []streamd.Record) *streamd.Batch {
	b := streamd.NewBatch(p.schema, lane)
	for _, r := range recs {
		b.NoteRead(r.Pos, len(r.Data))
		if r.Err != "" {
			b.AddDead(r.Pos, r.Err, r.Data)
			continue
		}
		n, err := strconv.ParseInt(string(r.Data), 10, 64)
		switch {
		case err != nil:
			b.AddDead(r.Pos, "column \"n\": "+err.Error(), r.Data)
		case n < 0:
			b.Filtered++
		default:
			b.Cols[0].AppendInt64(n)
			b.AddRowMeta(r.Pos, 0)
		}
	}
	return b
}

// sliceSource serves lanes of records given as strings, position = index.
type sliceSource struct {
	lanes  map[string][]string
	chunk  int
	follow bool // keep running after the data (like a stream) until ctx is done
	sent   atomic.Int64
}

func (s *sliceSource) Run(ctx context.Context, res ingest.Resumer, out chan<- ingest.Chunk) error {
	for lane, data := range s.lanes {
		start := 0
		pos, ok, err := res.Resume(ctx, lane)
		if err != nil {
			return err
		}
		if ok {
			start = int(pos.Offset) + 1
		}
		for i := start; i < len(data); i += s.chunk {
			var c ingest.Chunk
			c.Lane = lane
			for j := i; j < len(data) && j < i+s.chunk; j++ {
				c.Records = append(c.Records, streamd.Record{Data: []byte(data[j]), Pos: streamd.Position{Offset: int64(j)}})
			}
			c.End = !s.follow && i+s.chunk >= len(data)
			select {
			case out <- c:
				s.sent.Add(int64(len(c.Records)))
			case <-ctx.Done():
				return nil
			}
		}
		if start >= len(data) && !s.follow {
			out <- ingest.Chunk{Lane: lane, End: true}
		}
	}
	if s.follow {
		<-ctx.Done()
	}
	return nil
}

// memSink records every write; failures are injected by failFor.
type memSink struct {
	mu      sync.Mutex
	writes  []streamd.Intent
	rows    map[streamd.Intent][]int64
	failFor int // fail this many writes first
	calls   int
}

func (m *memSink) Write(_ context.Context, in streamd.Intent, b *streamd.Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.failFor > 0 {
		m.failFor--
		return errors.New("injected sink failure")
	}
	if m.rows == nil {
		m.rows = map[streamd.Intent][]int64{}
	}
	m.writes = append(m.writes, in)
	m.rows[in] = append([]int64(nil), b.Cols[0].Int64...)
	return nil
}

func (m *memSink) Close(context.Context) error { return nil }

func nums(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

func TestRunFiniteSourceCommitsEverything(t *testing.T) {
	data := nums(1000)
	data[17] = "x17" // dead letter
	data[500] = "-5" // filtered
	src := &sliceSource{lanes: map[string][]string{"a": data, "b": nums(333)}, chunk: 64}
	sink, dl := &memSink{}, &memSink{}
	store := checkpoint.NewFileStore(t.TempDir())
	p, err := pipeline.New(pipeline.Config{Name: "t", Source: src, Processor: newNumProcessor(), Sink: sink, DeadLetter: dl,
		Store: store, Window: window.Policy{MaxRecords: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Read != 1333 || st.Written != 1331 || st.Filtered != 1 || st.DeadLettered != 1 || st.LanesEnded != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Batches of a lane are contiguous, at most max_records, in order.
	next := map[string]int64{}
	for _, in := range sink.writes {
		if in.From.Offset != next[in.Lane] || in.To.Offset-in.From.Offset+1 > 100 {
			t.Fatalf("intent %+v does not follow %d or is too large", in, next[in.Lane])
		}
		next[in.Lane] = in.To.Offset + 1
	}
	if next["a"] != 1000 || next["b"] != 333 {
		t.Fatalf("lanes ended at %v", next)
	}
	for _, lane := range []string{"a", "b"} {
		s, err := store.Load(context.Background(), "t", lane)
		if err != nil || !s.HasCommit || s.Intent != nil || s.Committed.Offset != next[lane]-1 {
			t.Fatalf("lane %s state %+v, %v", lane, s, err)
		}
	}
}

func TestRedoOpenIntentExactly(t *testing.T) {
	ctx := context.Background()
	store := checkpoint.NewFileStore(t.TempDir())
	// A previous run committed lane a at 9 and crashed after the intent [10, 37].
	first := streamd.Intent{Pipeline: "t", Lane: "a", From: streamd.Position{Offset: 0}, To: streamd.Position{Offset: 9}}
	if err := store.PutIntent(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := store.Commit(ctx, first, nil); err != nil {
		t.Fatal(err)
	}
	open := streamd.Intent{Pipeline: "t", Lane: "a", From: streamd.Position{Offset: 10}, To: streamd.Position{Offset: 37}}
	if err := store.PutIntent(ctx, open); err != nil {
		t.Fatal(err)
	}
	src := &sliceSource{lanes: map[string][]string{"a": nums(100)}, chunk: 16}
	sink := &memSink{}
	p, _ := pipeline.New(pipeline.Config{Name: "t", Source: src, Processor: newNumProcessor(), Sink: sink,
		Store: store, Window: window.Policy{MaxRecords: 10}})
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(sink.writes) == 0 || sink.writes[0] != open {
		t.Fatalf("first write %+v, want the open intent %+v", sink.writes, open)
	}
	if got := sink.rows[open]; len(got) != 28 || got[0] != 10 || got[27] != 37 {
		t.Fatalf("redo rows %v", got)
	}
	if last := sink.writes[len(sink.writes)-1]; last.To.Offset != 99 {
		t.Fatalf("last write %+v", last)
	}
}

func TestFlushRetriesThenFails(t *testing.T) {
	t.Run("TransientFailureRetried", func(t *testing.T) {
		sink := &memSink{failFor: 2}
		p, _ := pipeline.New(pipeline.Config{Name: "t", Source: &sliceSource{lanes: map[string][]string{"a": nums(10)}, chunk: 10},
			Processor: newNumProcessor(), Sink: sink, Store: checkpoint.NewFileStore(t.TempDir()), RetryBackoff: time.Millisecond})
		if err := p.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if sink.calls != 3 || len(sink.writes) != 1 || p.Stats().Written != 10 {
			t.Fatalf("calls %d writes %d stats %+v", sink.calls, len(sink.writes), p.Stats())
		}
	})
	t.Run("PersistentFailureIsFatalAndUncommitted", func(t *testing.T) {
		sink := &memSink{failFor: 1 << 30}
		store := checkpoint.NewFileStore(t.TempDir())
		p, _ := pipeline.New(pipeline.Config{Name: "t", Source: &sliceSource{lanes: map[string][]string{"a": nums(10)}, chunk: 10},
			Processor: newNumProcessor(), Sink: sink, Store: store, FlushAttempts: 3, RetryBackoff: time.Millisecond})
		err := p.Run(context.Background())
		if err == nil || sink.calls != 3 {
			t.Fatalf("err %v after %d calls, want an error after 3", err, sink.calls)
		}
		st, _ := store.Load(context.Background(), "t", "a")
		if st.HasCommit || st.Intent == nil || st.Intent.To.Offset != 9 {
			t.Fatalf("state %+v: want an open intent and no commit", st)
		}
		if p.Stats().Written != 0 {
			t.Fatalf("stats %+v count an uncommitted batch", p.Stats())
		}
	})
}

func TestStopDrainsOpenBatches(t *testing.T) {
	src := &sliceSource{lanes: map[string][]string{"a": nums(250)}, chunk: 50, follow: true}
	sink := &memSink{}
	store := checkpoint.NewFileStore(t.TempDir())
	p, _ := pipeline.New(pipeline.Config{Name: "t", Source: src, Processor: newNumProcessor(), Sink: sink, Store: store,
		Window: window.Policy{MaxRecords: 100, MaxAge: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Batches < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, _ := store.Load(context.Background(), "t", "a")
	if st.Committed.Offset != 249 || p.Stats().Written != 250 {
		t.Fatalf("after stop committed %+v, stats %+v", st, p.Stats())
	}
}

func TestAgeClosesBatch(t *testing.T) {
	src := &sliceSource{lanes: map[string][]string{"a": nums(5)}, chunk: 5, follow: true}
	sink := &memSink{}
	p, _ := pipeline.New(pipeline.Config{Name: "t", Source: src, Processor: newNumProcessor(), Sink: sink,
		Store: checkpoint.NewFileStore(t.TempDir()), Window: window.Policy{MaxAge: 50 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Batches < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if p.Stats().Written != 5 {
		t.Fatalf("age did not close the batch: %+v", p.Stats())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func ExamplePipeline() {
	dir, _ := osMkdirTemp()
	defer osRemoveAll(dir)
	src := &sliceSource{lanes: map[string][]string{"a": {"1", "2", "oops", "-1", "5"}}, chunk: 2}
	p, _ := pipeline.New(pipeline.Config{Name: "demo", Source: src, Processor: newNumProcessor(),
		Sink: &memSink{}, DeadLetter: &memSink{}, Store: checkpoint.NewFileStore(dir)})
	if err := p.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	st := p.Stats()
	fmt.Printf("read %d = written %d + filtered %d + dead-lettered %d\n", st.Read, st.Written, st.Filtered, st.DeadLettered)
	// Output: read 5 = written 3 + filtered 1 + dead-lettered 1
}

func TestRedoFirstIntentWithoutCommit(t *testing.T) {
	ctx := context.Background()
	store := checkpoint.NewFileStore(t.TempDir())
	// A source started at "latest" (offset 5) crashed before its first commit.
	open := streamd.Intent{Pipeline: "t", Lane: "a", From: streamd.Position{Offset: 5}, To: streamd.Position{Offset: 9}}
	if err := store.PutIntent(ctx, open); err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	p, _ := pipeline.New(pipeline.Config{Name: "t", Source: &sliceSource{lanes: map[string][]string{"a": nums(20)}, chunk: 4},
		Processor: newNumProcessor(), Sink: sink, Store: store, Window: window.Policy{MaxRecords: 100}})
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(sink.writes) == 0 || sink.writes[0] != open {
		t.Fatalf("writes %+v, want the open intent %+v first", sink.writes, open)
	}
	if got := sink.rows[open]; len(got) != 5 || got[0] != 5 {
		t.Fatalf("redo rows %v", got)
	}
}

// TestReusedBatchesHoldOnlyTheirWindow: committed batches are reused for
// later windows; each write still holds exactly its own records.
func TestReusedBatchesHoldOnlyTheirWindow(t *testing.T) {
	data := nums(2000)
	data[333] = "bad" // a dead letter in one window must not reappear in the next
	src := &sliceSource{lanes: map[string][]string{"a": data, "b": nums(1500)}, chunk: 37}
	sink, dl := &memSink{}, &memSink{}
	p, err := pipeline.New(pipeline.Config{Name: "t", Source: src, Processor: newNumProcessor(), Sink: sink, DeadLetter: dl,
		Store: checkpoint.NewFileStore(t.TempDir()), Window: window.Policy{MaxRecords: 100}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, in := range sink.writes {
		rows := sink.rows[in]
		want := int(in.To.Offset - in.From.Offset + 1)
		if in.Lane == "a" && in.From.Offset <= 333 && 333 <= in.To.Offset {
			want--
		}
		if len(rows) != want || rows[0] != in.From.Offset && rows[0] != in.From.Offset+1 || rows[len(rows)-1] != in.To.Offset {
			t.Fatalf("write %+v holds %d rows %v..%v, want %d", in, len(rows), rows[0], rows[len(rows)-1], want)
		}
	}
	if st := p.Stats(); st.Written != 3499 || st.DeadLettered != 1 {
		t.Fatalf("stats %+v", st)
	}
}
