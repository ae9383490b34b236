package sidecar_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/sidecar"
	"github.com/streamd/streamd/pipeline"
	"github.com/streamd/streamd/window"
)

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// rawProcessor keeps each record's bytes as one string column.
type rawProcessor struct{ schema *streamd.Schema }

func newRawProcessor() *rawProcessor {
	s, _ := streamd.NewSchema(streamd.Field{Name: "raw", Type: streamd.Type{Kind: streamd.KindString}})
	return &rawProcessor{schema: s}
}

func (p *rawProcessor) Schema() *streamd.Schema { return p.schema }

func (p *rawProcessor) Process(lane string, _ []byte, recs []streamd.Record) *streamd.Batch {
	b := streamd.NewBatch(p.schema, lane)
	for _, r := range recs {
		b.NoteRead(r.Pos, len(r.Data))
		if r.Err != "" {
			b.AddDead(r.Pos, r.Err, r.Data)
			continue
		}
		b.Cols[0].AppendBytes(r.Data)
		b.AddRowMeta(r.Pos, r.Time)
	}
	return b
}

// memSink keeps the rows of every intent; a redo of an intent replaces
// its rows, as a deterministic object name would.
type memSink struct {
	mu   sync.Mutex
	rows map[streamd.Intent][]string
}

func (m *memSink) Write(_ context.Context, in streamd.Intent, b *streamd.Batch) error {
	rows := make([]string, b.Len())
	for i := range rows {
		rows[i] = string(b.Cols[0].Bytes.At(i))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rows == nil {
		m.rows = map[streamd.Intent][]string{}
	}
	m.rows[in] = rows
	return nil
}

func (m *memSink) Close(context.Context) error { return nil }

// counts returns how often each row was written over all intents.
func (m *memSink) counts() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := map[string]int{}
	for _, rows := range m.rows {
		for _, r := range rows {
			c[r]++
		}
	}
	return c
}

func (m *memSink) total() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, rows := range m.rows {
		n += len(rows)
	}
	return n
}

// running is one start of source + pipeline.
type running struct {
	src    *sidecar.Source
	cancel context.CancelFunc
	done   chan error
}

// startPipeline starts a sidecar source driven by the real pipeline into
// sink, with checkpoints in store, and waits until it listens.
func startPipeline(t testing.TB, cfg sidecar.Config, store checkpoint.Store, sink *memSink) *running {
	t.Helper()
	src, err := sidecar.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Config{
		Name: "side", Source: src, Processor: newRawProcessor(), Sink: sink, Store: store,
		Window: window.Policy{MaxRecords: 5000, MaxAge: 100 * time.Millisecond}, DrainTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{src: src, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	select {
	case <-src.Ready():
	case err := <-r.done:
		cancel()
		t.Fatalf("pipeline stopped before the source was ready: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("sidecar source not ready after 10s")
	}
	return r
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("pipeline run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pipeline did not stop within 30s")
	}
}

// memResumer answers Resume from a map.
type memResumer map[string]streamd.Position

func (m memResumer) Resume(_ context.Context, lane string) (streamd.Position, bool, error) {
	p, ok := m[lane]
	return p, ok, nil
}

// collect reads chunks until n records arrived or the timeout passed.
func collect(t testing.TB, out <-chan ingest.Chunk, n int, timeout time.Duration) []streamd.Record {
	t.Helper()
	var recs []streamd.Record
	deadline := time.After(timeout)
	for len(recs) < n {
		select {
		case c := <-out:
			recs = append(recs, c.Records...)
		case <-deadline:
			t.Fatalf("got %d records, want %d", len(recs), n)
		}
	}
	return recs
}
