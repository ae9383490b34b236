package parquet

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// gatheringStore blocks every Put until want Puts are under way at once.
type gatheringStore struct {
	*memStore
	want    int
	mu      sync.Mutex
	waiting int
	all     chan struct{}
}

func (g *gatheringStore) Put(ctx context.Context, name string, r io.Reader) error {
	g.mu.Lock()
	if g.waiting++; g.waiting == g.want {
		close(g.all)
	}
	g.mu.Unlock()
	select {
	case <-g.all:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.memStore.Put(ctx, name, r)
}

// TestEncodersBoundedButPutsNot: at most GOMAXPROCS files are encoded at
// once across concurrent Writes, but a file's encoding token is released
// before its Put, so more Puts than tokens can be under way (a slow store
// does not stop other lanes from encoding). With tokens held through the
// Put, this test would block until its deadline.
func TestEncodersBoundedButPutsNot(t *testing.T) {
	lanes := runtime.GOMAXPROCS(0) + 2
	store := &gatheringStore{memStore: newMemStore(), want: lanes, all: make(chan struct{})}
	s, err := New(store, "sales", Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cap(s.encoding) != runtime.GOMAXPROCS(0) {
		t.Fatalf("%d encoding tokens, want GOMAXPROCS %d", cap(s.encoding), runtime.GOMAXPROCS(0))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, lanes)
	for i := range lanes {
		b := salesBatch(t, 2000)
		b.Lane = "orders/" + string(rune('a'+i))
		go func() { errs <- s.Write(ctx, intentOf(b), b) }()
	}
	for range lanes {
		if err := <-errs; err != nil {
			t.Fatalf("write: %v (puts gathered: %d of %d)", err, store.waiting, lanes)
		}
	}
	if n := len(store.names()); n != lanes {
		t.Fatalf("%d objects, want %d", n, lanes)
	}
}

// TestWaitForEncodingTokenHonoursContext: a Write waiting for an encoding
// token returns when its context ends, having written nothing.
func TestWaitForEncodingTokenHonoursContext(t *testing.T) {
	store := newMemStore()
	s, err := New(store, "sales", Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range cap(s.encoding) {
		s.encoding <- struct{}{} // every token taken, as by other lanes' encoders
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	b := salesBatch(t, 100)
	err = s.Write(ctx, intentOf(b), b)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if n := len(store.names()); n != 0 {
		t.Fatalf("%d objects written while no encoder was free", n)
	}
}
