package pipeline_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/pipeline"
	"github.com/streamd/streamd/window"
)

type reasonCounter struct {
	mu      sync.Mutex
	reasons map[window.Reason]int
	fails   atomic.Int64
}

func (r *reasonCounter) Flushed(_ string, reason window.Reason, _ *streamd.Batch, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons[reason]++
}

func (r *reasonCounter) FlushFailed(string, string, error) { r.fails.Add(1) }

func TestMemoryBudgetFlushesEarlyAndBoundsBuffers(t *testing.T) {
	lanes := map[string][]string{}
	for i := 0; i < 40; i++ {
		lanes[fmt.Sprintf("lane-%02d", i)] = nums(3000)
	}
	const limit = 256 << 10
	budget := window.NewBudget(limit)
	obs := &reasonCounter{reasons: map[window.Reason]int{}}
	src := &sliceSource{lanes: lanes, chunk: 100, follow: true}
	sink := &memSink{}
	p, _ := pipeline.New(pipeline.Config{Name: "t", Source: src, Processor: newNumProcessor(), Sink: sink,
		Store: checkpoint.NewFileStore(t.TempDir()), Budget: budget, Observer: obs,
		Window: window.Policy{MaxRecords: 1 << 20, MaxBytes: 1 << 30, MaxAge: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	var peak int64
	deadline := time.Now().Add(60 * time.Second)
	for src.sent.Load() < 40*3000 && time.Now().Before(deadline) {
		if u := budget.Used(); u > peak {
			peak = u
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := p.Stats().Written; got != 40*3000 {
		t.Fatalf("wrote %d records, want %d", got, 40*3000)
	}
	obs.mu.Lock()
	memory := obs.reasons[window.ReasonMemory]
	obs.mu.Unlock()
	if memory == 0 {
		t.Fatalf("no batch closed for memory: %v", obs.reasons)
	}
	// Reading stops at the limit; what is in flight past it is bounded by a
	// segment per lane.
	if peak > limit*3/2 {
		t.Fatalf("buffers peaked at %d bytes with a %d budget", peak, limit)
	}
	if budget.Used() != 0 {
		t.Fatalf("%d bytes still accounted after the run", budget.Used())
	}
	t.Logf("peak %d of %d; flush reasons %v", peak, limit, obs.reasons)
}
