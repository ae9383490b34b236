package shardset

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint/lease"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/internal/testenv"
)

// fakeLeases hands out scripted lease rounds and records what the Set did
// with its leases.
type fakeLeases struct {
	rounds chan lease.Changes

	mu        sync.Mutex
	finished  []string
	released  []string
	finishErr error // returned once by the next Finish
}

func newFakeLeases() *fakeLeases { return &fakeLeases{rounds: make(chan lease.Changes, 8)} }

func (f *fakeLeases) Tick(context.Context) (lease.Changes, error) {
	select {
	case ch := <-f.rounds:
		return ch, nil
	default:
		return lease.Changes{}, nil
	}
}

func (f *fakeLeases) Held() []string { return nil }

func (f *fakeLeases) Finish(_ context.Context, shard string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.finishErr; err != nil {
		f.finishErr = nil
		return err
	}
	f.finished = append(f.finished, shard)
	return nil
}

func (f *fakeLeases) Release(_ context.Context, shard string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, shard)
	return nil
}

func (f *fakeLeases) Interval() time.Duration { return 5 * time.Millisecond }

func (f *fakeLeases) calls() (finished, released []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.finished), slices.Clone(f.released)
}

// noResume resumes every shard from its start.
type noResume struct{}

func (noResume) Resume(context.Context, string) (streamd.Position, bool, error) {
	return streamd.Position{}, false, nil
}

// harness runs a Set over fakeLeases and records its callbacks.
type harness struct {
	leases *fakeLeases
	set    *Set
	out    chan ingest.Chunk

	mu       sync.Mutex
	lists    int
	stopped  []string
	finished []string
}

// newHarness returns a harness whose Set reads shards with read; cfg
// adjusts the Set's config before it is built.
func newHarness(read func(ctx context.Context, r *Reader, out chan<- ingest.Chunk) error, cfg func(*Config)) *harness {
	h := &harness{leases: newFakeLeases(), out: make(chan ingest.Chunk, 16)}
	c := Config{
		Leases: h.leases,
		Log:    slog.New(slog.DiscardHandler),
		List: func(context.Context) error {
			h.mu.Lock()
			h.lists++
			h.mu.Unlock()
			return nil
		},
		ListInterval: time.Hour,
		ListRetry:    func() time.Duration { return time.Millisecond },
		ListFatal:    func(error, bool) error { return nil },
		Read: func(ctx context.Context, r *Reader, _ ingest.Resumer, out chan<- ingest.Chunk) error {
			return read(ctx, r, out)
		},
		ReadFailed: func(shard string, err error) error { return errors.Join(errors.New("read "+shard), err) },
		Stopped: func(shard string) {
			h.mu.Lock()
			h.stopped = append(h.stopped, shard)
			h.mu.Unlock()
		},
		Finished: func(shard string) {
			h.mu.Lock()
			h.finished = append(h.finished, shard)
			h.mu.Unlock()
		},
	}
	if cfg != nil {
		cfg(&c)
	}
	h.set = New(c)
	return h
}

// run starts Run; the returned func cancels it and returns its error.
func (h *harness) run(t *testing.T) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- h.set.Run(ctx, noResume{}, h.out) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func (h *harness) chunk(t *testing.T) ingest.Chunk {
	t.Helper()
	select {
	case c := <-h.out:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no chunk")
		return ingest.Chunk{}
	}
}

// waitSent waits until shard's reader recorded a sent chunk (Reader.Sent),
// which happens after the pipeline received it.
func (h *harness) waitSent(t *testing.T, shard string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, shard+"'s chunk to be recorded as sent", func() bool {
		h.set.mu.Lock()
		defer h.set.mu.Unlock()
		r := h.set.readers[shard]
		return r != nil && (r.hasSent || r.ended)
	})
}

func recs(offsets ...int64) []streamd.Record {
	out := make([]streamd.Record, len(offsets))
	for i, o := range offsets {
		out[i] = streamd.Record{Data: []byte("x"), Pos: streamd.Position{Offset: o}}
	}
	return out
}

// sendAll is a Read that sends one chunk, ends the shard with it when end
// is set, and then waits for ctx.
func sendAll(batch []streamd.Record, end bool) func(ctx context.Context, r *Reader, out chan<- ingest.Chunk) error {
	return func(ctx context.Context, r *Reader, out chan<- ingest.Chunk) error {
		select {
		case out <- ingest.Chunk{Lane: r.Shard, Records: batch, End: end}:
		case <-ctx.Done():
			return nil
		}
		r.Sent(ctx, batch, end)
		<-ctx.Done()
		return nil
	}
}

func TestClosedShardFinishesOnceCommitted(t *testing.T) {
	h := newHarness(sendAll(recs(1, 2, 3), true), nil)
	h.leases.rounds <- lease.Changes{Gained: []string{"s1"}}
	stop := h.run(t)
	c := h.chunk(t)
	if c.Lane != "s1" || len(c.Records) != 3 || !c.End {
		t.Fatalf("chunk %+v, want s1's 3 records with End", c)
	}
	h.waitSent(t, "s1")
	ctx := context.Background()
	h.set.Committed(ctx, "s1", streamd.Position{Offset: 2})
	time.Sleep(20 * time.Millisecond) // lease rounds go on
	if finished, _ := h.leases.calls(); len(finished) != 0 {
		t.Fatalf("finished %v with offset 3 not committed", finished)
	}
	h.mu.Lock()
	lists := h.lists
	h.mu.Unlock()
	h.set.Committed(ctx, "s1", streamd.Position{Offset: 3})
	if finished, _ := h.leases.calls(); !slices.Equal(finished, []string{"s1"}) {
		t.Fatalf("finished %v after the last record was committed, want [s1]", finished)
	}
	// Finishing wakes Run to list again: the children may be listed now.
	testenv.WaitFor(t, 10*time.Second, "a listing after the shard finished", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.lists > lists
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Equal(h.finished, []string{"s1"}) || !slices.Contains(h.stopped, "s1") {
		t.Errorf("callbacks: finished %v stopped %v, want s1 in both", h.finished, h.stopped)
	}
	if _, released := h.leases.calls(); len(released) != 0 {
		t.Errorf("released %v: a finished lease is not released again", released)
	}
}

func TestFinishRetriedAfterFailure(t *testing.T) {
	h := newHarness(sendAll(recs(1), true), nil)
	h.leases.finishErr = errors.New("conditional check failed")
	h.leases.rounds <- lease.Changes{Gained: []string{"s1"}}
	h.run(t)
	h.chunk(t)
	h.waitSent(t, "s1")
	ctx := context.Background()
	h.set.Committed(ctx, "s1", streamd.Position{Offset: 1})
	if finished, _ := h.leases.calls(); len(finished) != 0 {
		t.Fatalf("finished %v although Finish failed", finished)
	}
	h.set.Committed(ctx, "s1", streamd.Position{Offset: 1})
	if finished, _ := h.leases.calls(); !slices.Equal(finished, []string{"s1"}) {
		t.Fatalf("finished %v after a second commit, want [s1]", finished)
	}
}

func TestEmptyClosedShardFinishesAtOnce(t *testing.T) {
	h := newHarness(sendAll(nil, true), nil)
	h.leases.rounds <- lease.Changes{Gained: []string{"s1"}}
	h.run(t)
	h.chunk(t)
	testenv.WaitFor(t, 10*time.Second, "the empty shard to finish", func() bool {
		finished, _ := h.leases.calls()
		return slices.Equal(finished, []string{"s1"})
	})
}

func TestLostShardStopsAndIsRevoked(t *testing.T) {
	h := newHarness(sendAll(recs(1), false), nil)
	h.leases.rounds <- lease.Changes{Gained: []string{"s1"}}
	stop := h.run(t)
	h.chunk(t)
	h.leases.rounds <- lease.Changes{Lost: []string{"s1"}}
	c := h.chunk(t)
	if c.Lane != "s1" || !c.Revoked || c.Released != nil || len(c.Records) != 0 {
		t.Fatalf("chunk %+v, want a Revoked chunk of s1 without Released", c)
	}
	h.mu.Lock()
	stopped := slices.Clone(h.stopped)
	h.mu.Unlock()
	if !slices.Equal(stopped, []string{"s1"}) {
		t.Errorf("stopped %v, want [s1]", stopped)
	}
	// A lost lease belongs to another worker now: never released here,
	// and a late commit changes nothing.
	h.set.Committed(context.Background(), "s1", streamd.Position{Offset: 1})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if finished, released := h.leases.calls(); len(finished)+len(released) != 0 {
		t.Errorf("finished %v released %v for a lost shard", finished, released)
	}
}

func TestYieldReleasesAfterThePipelineLetGo(t *testing.T) {
	h := newHarness(sendAll(recs(1, 2), false), nil)
	h.leases.rounds <- lease.Changes{Gained: []string{"s1"}}
	h.run(t)
	h.chunk(t)
	h.leases.rounds <- lease.Changes{Yield: []string{"s1"}}
	c := h.chunk(t)
	if c.Lane != "s1" || !c.Revoked || c.Released == nil {
		t.Fatalf("chunk %+v, want a Revoked chunk of s1 with Released", c)
	}
	time.Sleep(20 * time.Millisecond)
	if _, released := h.leases.calls(); len(released) != 0 {
		t.Fatalf("released %v before the pipeline let go of the lane", released)
	}
	close(c.Released)
	testenv.WaitFor(t, 10*time.Second, "the handed-over lease to be released", func() bool {
		_, released := h.leases.calls()
		return slices.Equal(released, []string{"s1"})
	})
}

func TestShutdownReleasesWhatIsCommitted(t *testing.T) {
	read := func(ctx context.Context, r *Reader, out chan<- ingest.Chunk) error {
		if r.Shard == "idle" {
			<-ctx.Done()
			return nil
		}
		return sendAll(recs(1, 2), false)(ctx, r, out)
	}
	h := newHarness(read, nil)
	h.leases.rounds <- lease.Changes{Gained: []string{"busy", "idle"}}
	stop := h.run(t)
	h.chunk(t)
	h.waitSent(t, "busy")
	testenv.WaitFor(t, 10*time.Second, "both readers", func() bool {
		h.set.mu.Lock()
		defer h.set.mu.Unlock()
		return len(h.set.readers) == 2
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, released := h.leases.calls(); !slices.Equal(released, []string{"idle"}) {
		t.Fatalf("released %v at shutdown, want only the shard with nothing pending", released)
	}
	// The pipeline's drain commits busy's records after Run returned.
	h.set.Committed(context.Background(), "busy", streamd.Position{Offset: 2})
	if _, released := h.leases.calls(); !slices.Equal(released, []string{"idle", "busy"}) {
		t.Fatalf("released %v after the drain committed busy, want [idle busy]", released)
	}
}

func TestResumedCountsAsCommitted(t *testing.T) {
	read := func(ctx context.Context, r *Reader, out chan<- ingest.Chunk) error {
		r.Resumed(streamd.Position{Offset: 9})
		// The closed shard had been read and committed up to its end
		// before a restart: nothing is pending, so it finishes at once.
		return sendAll(nil, true)(ctx, r, out)
	}
	h := newHarness(read, nil)
	h.leases.rounds <- lease.Changes{Gained: []string{"s1"}}
	h.run(t)
	h.chunk(t)
	testenv.WaitFor(t, 10*time.Second, "the shard to finish", func() bool {
		finished, _ := h.leases.calls()
		return len(finished) == 1
	})
}

func TestReadFailureStopsRun(t *testing.T) {
	boom := errors.New("expired credentials")
	h := newHarness(func(context.Context, *Reader, chan<- ingest.Chunk) error { return boom }, nil)
	h.leases.rounds <- lease.Changes{Gained: []string{"s1"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := h.set.Run(ctx, noResume{}, h.out)
	if !errors.Is(err, boom) || ctx.Err() != nil {
		t.Fatalf("Run = %v, want the reader's error before the deadline", err)
	}
}

func TestListing(t *testing.T) {
	unavailable := errors.New("service unavailable")
	gone := errors.New("stream not found")
	tests := []struct {
		name     string
		failures []error // what the listings return, in order, before succeeding
		wantErr  error   // nil: Run keeps going and leases shards
	}{
		{"transient failures are retried", []error{unavailable, unavailable}, nil},
		{"a fatal failure stops Run", []error{gone}, gone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			calls := 0
			h := newHarness(sendAll(recs(1), false), func(c *Config) {
				c.List = func(context.Context) error {
					mu.Lock()
					defer mu.Unlock()
					calls++
					if calls <= len(tt.failures) {
						return tt.failures[calls-1]
					}
					return nil
				}
				c.ListFatal = func(err error, listed bool) error {
					if errors.Is(err, gone) && !listed {
						return errors.Join(errors.New("read stream"), err)
					}
					return nil
				}
			})
			h.leases.rounds <- lease.Changes{Gained: []string{"s1"}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- h.set.Run(ctx, noResume{}, h.out) }()
			if tt.wantErr != nil {
				if err := <-errc; !errors.Is(err, tt.wantErr) {
					t.Fatalf("Run = %v, want %v", err, tt.wantErr)
				}
				return
			}
			// No lease round before a listing succeeded; then s1 is read.
			if c := h.chunk(t); c.Lane != "s1" {
				t.Fatalf("chunk of %q, want s1", c.Lane)
			}
			mu.Lock()
			n := calls
			mu.Unlock()
			if n != len(tt.failures)+1 {
				t.Errorf("%d listings, want %d", n, len(tt.failures)+1)
			}
			cancel()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}
