package kafka

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/internal/testenv"
)

// memResumer is a Resumer over a map, standing in for the checkpoint
// store; it can be shared by several sources like a shared store.
type memResumer struct {
	mu    sync.Mutex
	pos   map[string]streamd.Position
	err   error
	calls map[string]int
}

func newResumer() *memResumer {
	return &memResumer{pos: map[string]streamd.Position{}, calls: map[string]int{}}
}

func (m *memResumer) Resume(_ context.Context, lane string) (streamd.Position, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls[lane]++
	if m.err != nil {
		return streamd.Position{}, false, m.err
	}
	p, ok := m.pos[lane]
	return p, ok, nil
}

func (m *memResumer) set(lane string, off int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pos[lane] = streamd.Position{Offset: off}
}

// revokeEvent is one Revoked chunk a harness saw.
type revokeEvent struct {
	lane       string
	releasedAt time.Time
	lastOffset int64 // last offset received before the revoke, -1 if none
}

// harness runs a Source and plays the pipeline: it collects chunks, and
// on Revoked "finishes" the lane (commits what it received to the resumer
// and calls Committed, like a flush) before closing Released.
type harness struct {
	t      testing.TB
	src    *Source
	res    *memResumer
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex
	recs    map[string][]streamd.Record
	firstAt map[string]time.Time // when the lane's first chunk (since its last revoke) arrived
	revokes []revokeEvent
	// releaseDelay delays closing Released (a slow flush).
	releaseDelay time.Duration
	// commitOnRevoke makes the harness commit a lane's last record when it
	// is revoked.
	commitOnRevoke bool
}

func (h *harness) chunk(c ingest.Chunk) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.Revoked {
		last := int64(-1)
		if rs := h.recs[c.Lane]; len(rs) > 0 {
			last = rs[len(rs)-1].Pos.Offset
		}
		delete(h.firstAt, c.Lane)
		h.mu.Unlock()
		if h.releaseDelay > 0 {
			time.Sleep(h.releaseDelay)
		}
		if h.commitOnRevoke && last >= 0 {
			h.res.set(c.Lane, last)
			h.src.Committed(context.Background(), c.Lane, streamd.Position{Offset: last})
		}
		now := time.Now()
		close(c.Released)
		h.mu.Lock()
		h.revokes = append(h.revokes, revokeEvent{lane: c.Lane, releasedAt: now, lastOffset: last})
		return
	}
	if _, ok := h.firstAt[c.Lane]; !ok {
		h.firstAt[c.Lane] = time.Now()
	}
	for _, r := range c.Records {
		r.Data = bytes.Clone(r.Data)
		h.recs[c.Lane] = append(h.recs[c.Lane], r)
	}
}

// runSource starts src with res and a pipeline-playing harness.
func runSource(t testing.TB, src *Source, res *memResumer, tune func(*harness)) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, src: src, res: res, cancel: cancel, done: make(chan error, 1),
		recs: map[string][]streamd.Record{}, firstAt: map[string]time.Time{}}
	if tune != nil {
		tune(h)
	}
	out := make(chan ingest.Chunk, 2)
	go func() { h.done <- src.Run(ctx, res, out); close(out) }()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for c := range out {
			h.chunk(c)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-drained
	})
	return h
}

// stop cancels Run and returns its error (bounded).
func (h *harness) stop() error {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		return err
	case <-time.After(60 * time.Second):
		h.t.Fatal("Run did not return within 60s of cancel")
		return nil
	}
}

// count returns the number of records received.
func (h *harness) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, rs := range h.recs {
		n += len(rs)
	}
	return n
}

// records returns a copy of the records of lane.
func (h *harness) records(lane string) []streamd.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]streamd.Record(nil), h.recs[lane]...)
}

// records returns n records spread round-robin over parts partitions of
// topic, value {"i":N}, key k-N, with a header.
func makeRecords(topic string, parts, n, first int) []*kgo.Record {
	out := make([]*kgo.Record, n)
	for i := range out {
		k := first + i
		out[i] = &kgo.Record{
			Topic: topic, Partition: int32(k % parts),
			Key:     []byte(fmt.Sprintf("k-%d", k)),
			Value:   []byte(fmt.Sprintf(`{"i":%d}`, k)),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}},
		}
	}
	return out
}

// produce writes recs to their partitions.
func produce(t testing.TB, k *testenv.KafkaPeer, recs []*kgo.Record) {
	t.Helper()
	k.Produce(t, recs, kgo.RecordPartitioner(kgo.ManualPartitioner()))
}

// testConfig is a quick-failover config for kfake.
func testConfig(k *testenv.KafkaPeer, group string, topics ...string) Config {
	return Config{
		Brokers: k.Addrs, Topics: topics, Group: group,
		SessionTimeout: 3 * time.Second, RebalanceTimeout: 10 * time.Second,
		RevokeTimeout: 8 * time.Second, CommitInterval: 100 * time.Millisecond,
		ConnectTimeout: 10 * time.Second, FetchMaxWait: 100 * time.Millisecond,
		Logger: testLogger(),
	}
}

var dbgLogger *slog.Logger

func testLogger() *slog.Logger {
	if dbgLogger != nil {
		return dbgLogger
	}
	return slog.New(slog.NewTextHandler(testWriter{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testWriter discards; tests that inspect logs use their own buffer.
type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) { return len(p), nil }

// streamdChunk is ingest.Chunk, short for channels in tests.
type streamdChunk = ingest.Chunk
