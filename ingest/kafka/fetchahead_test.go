package kafka

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/internal/testenv"
)

func TestFetchQueue(t *testing.T) {
	item := func(off int64, bytes int) polled {
		return polled{p: kgo.FetchTopicPartition{Topic: "t", FetchPartition: kgo.FetchPartition{
			Records: []*kgo.Record{{Offset: off}}}}, bytes: bytes}
	}
	tests := []struct {
		name     string
		limit    int
		push     []polled
		wantRoom bool // waitRoom returns before ctx ends
	}{
		{"empty has room", 10, nil, true},
		{"under the limit has room", 10, []polled{item(0, 4), item(1, 5)}, true},
		{"at the limit waits", 10, []polled{item(0, 4), item(1, 6)}, false},
		{"over the limit waits", 10, []polled{item(0, 40)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newFetchQueue(tc.limit)
			q.push(tc.push)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if got := q.waitRoom(ctx); got != tc.wantRoom {
				t.Fatalf("waitRoom = %v, want %v", got, tc.wantRoom)
			}
			// Items come out in order and free their bytes.
			for i, want := range tc.push {
				got, ok := q.pop(context.Background())
				if !ok || got.p.Records[0].Offset != want.p.Records[0].Offset {
					t.Fatalf("pop %d = %v, %v; want offset %d", i, got.p.Records, ok, want.p.Records[0].Offset)
				}
			}
			if q.bytes != 0 || len(q.items) != 0 {
				t.Fatalf("drained queue holds %d bytes, %d items", q.bytes, len(q.items))
			}
			ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel2()
			if !q.waitRoom(ctx2) {
				t.Fatal("drained queue has no room")
			}
			if _, ok := q.pop(ctx2); ok {
				t.Fatal("pop of an empty queue returned an item")
			}
		})
	}
}

func TestFetchQueueWakesWaiters(t *testing.T) {
	q := newFetchQueue(1)
	popped := make(chan int64)
	go func() {
		it, ok := q.pop(context.Background())
		if !ok {
			popped <- -1
			return
		}
		popped <- it.p.Records[0].Offset
	}()
	time.Sleep(20 * time.Millisecond) // the popper waits on an empty queue
	q.push([]polled{{p: kgo.FetchTopicPartition{FetchPartition: kgo.FetchPartition{Records: []*kgo.Record{{Offset: 7}}}}, bytes: 5}})
	select {
	case off := <-popped:
		if off != 7 {
			t.Fatalf("popped offset %d, want 7", off)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a push did not wake the waiting pop")
	}
	q.push([]polled{{bytes: 5}})
	room := make(chan bool)
	go func() { room <- q.waitRoom(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	select {
	case <-room:
		t.Fatal("waitRoom returned while the queue is full")
	default:
	}
	if _, ok := q.pop(context.Background()); !ok {
		t.Fatal("pop failed")
	}
	select {
	case ok := <-room:
		if !ok {
			t.Fatal("waitRoom = false")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a pop did not wake the waiting fetcher")
	}
}

// TestSendDropsRecordsRevokedWhileQueued plays a revoke that happens while
// polled records of the lane wait in the queue (or are being sent): the
// records being sent come before the Revoked chunk, and the queued ones,
// polled under the old assignment, are never sent.
func TestSendDropsRecordsRevokedWhileQueued(t *testing.T) {
	out := make(chan ingest.Chunk) // unbuffered: each send waits for the reader
	r := &runner{
		cfg: Config{ChunkRecords: 2, RevokeTimeout: 5 * time.Second},
		log: slog.New(slog.DiscardHandler), out: out,
		lanes: map[string]*laneState{"t/0": {topic: "t", partition: 0, owned: true, next: -1, hwm: -1}},
	}
	recs := func(from, n int64) []*kgo.Record {
		rs := make([]*kgo.Record, n)
		for i := range rs {
			rs[i] = &kgo.Record{Topic: "t", Offset: from + int64(i), Value: []byte("{}")}
		}
		return rs
	}
	first, ok := r.tag(kgo.FetchTopicPartition{Topic: "t", FetchPartition: kgo.FetchPartition{Records: recs(0, 4)}})
	if !ok {
		t.Fatal("tag refused an owned lane")
	}
	queued, _ := r.tag(kgo.FetchTopicPartition{Topic: "t", FetchPartition: kgo.FetchPartition{Records: recs(4, 4)}})

	ctx := context.Background()
	sent := make(chan bool)
	go func() { sent <- r.send(ctx, first) }()
	c := <-out // the first of two chunks is taken; the sender waits with the second
	if len(c.Records) != 2 || c.Records[0].Pos.Offset != 0 {
		t.Fatalf("first chunk = %+v", c.Records)
	}
	released := make(chan struct{})
	go func() {
		r.releaseLanes([]string{"t/0"}, 5*time.Second, false, "revoked")
		close(released)
	}()
	// The rest of the chunk being sent comes before the Revoked chunk.
	c = <-out
	if c.Revoked || len(c.Records) != 2 || c.Records[0].Pos.Offset != 2 {
		t.Fatalf("second chunk = %+v (revoked %v), want offsets 2-3 before the revoke", c.Records, c.Revoked)
	}
	if !<-sent {
		t.Fatal("send = false")
	}
	c = <-out
	if !c.Revoked || c.Lane != "t/0" {
		t.Fatalf("third chunk = %+v, want the Revoked chunk of t/0", c)
	}
	close(c.Released)
	<-released

	// Reassigned (epoch unchanged by assignment): the records polled under
	// the old assignment are still dropped.
	r.mu.Lock()
	r.lanes["t/0"].owned = true
	r.mu.Unlock()
	go func() { sent <- r.send(ctx, queued) }()
	select {
	case c := <-out:
		t.Fatalf("sent %+v of a revoked assignment", c.Records)
	case ok := <-sent:
		if !ok {
			t.Fatal("send = false")
		}
	}
	// Records polled under the new assignment flow.
	fresh, ok := r.tag(kgo.FetchTopicPartition{Topic: "t", FetchPartition: kgo.FetchPartition{Records: recs(4, 1)}})
	if !ok {
		t.Fatal("tag refused the reassigned lane")
	}
	go func() { sent <- r.send(ctx, fresh) }()
	c = <-out
	if len(c.Records) != 1 || c.Records[0].Pos.Offset != 4 {
		t.Fatalf("after reassignment got %+v, want offset 4", c.Records)
	}
	<-sent
}

// TestCaughtUpCommitsAtOnce: a lane whose durable position reaches the
// high watermark gets its group offset committed at once; one that is
// behind waits for the commit interval.
func TestCaughtUpCommitsAtOnce(t *testing.T) {
	k := testenv.Kafka(t)
	k.CreateTopic(t, "cu", 2)
	produce(t, k, makeRecords("cu", 2, 40, 0)) // 20 per partition
	cfg := testConfig(k, "gcu", "cu")
	cfg.CommitInterval = time.Hour // only catching up commits in this test
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := runSource(t, src, newResumer(), nil)
	testenv.WaitFor(t, 30*time.Second, "40 records", func() bool { return h.count() >= 40 })

	// Behind: cu/0 durable up to 11 of 0..19: nothing is committed.
	src.Committed(context.Background(), "cu/0", streamd.Position{Offset: 11})
	time.Sleep(500 * time.Millisecond)
	if got := k.GroupOffsets(t, "gcu"); len(got["cu"]) != 0 {
		t.Fatalf("a lane behind its high watermark was committed before the interval: %v", got)
	}
	// Caught up: cu/1 durable up to its last record 19.
	src.Committed(context.Background(), "cu/1", streamd.Position{Offset: 19})
	testenv.WaitFor(t, 10*time.Second, "the caught-up lane's group offset", func() bool {
		return k.GroupOffsets(t, "gcu")["cu"][1] == 20
	})
	// Pending offsets ride along: cu/0's 12 went with the same commit.
	if got := k.GroupOffsets(t, "gcu")["cu"][0]; got != 12 {
		t.Errorf("group offset of cu/0 = %d, want 12 (committed with the caught-up lane)", got)
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRecordSlabs(t *testing.T) {
	tests := []struct {
		n       int
		class   int
		wantCap int
	}{
		{1, 0, 64},
		{64, 0, 64},
		{65, 1, 128},
		{1000, 4, 1024},
		{1024, 4, 1024},
		{1 << 16, 10, 1 << 16},
		{1<<16 + 1, -1, 1<<16 + 1},
	}
	p := &recordSlabs{}
	for _, tc := range tests {
		if got := slabClass(tc.n); got != tc.class {
			t.Errorf("slabClass(%d) = %d, want %d", tc.n, got, tc.class)
		}
		s := p.GetRecords(tc.n)
		if len(s) != 0 || cap(s) != tc.wantCap {
			t.Errorf("GetRecords(%d): len %d cap %d, want 0, %d", tc.n, len(s), cap(s), tc.wantCap)
		}
		p.PutRecords(s)
	}
	// A slab not made here (odd capacity) is not pooled.
	p.PutRecords(make([]kgo.Record, 0, 100))
	for range 10 {
		if s := p.GetRecords(100); cap(s) != 128 {
			t.Fatalf("GetRecords(100) returned cap %d: a foreign slab was pooled", cap(s))
		}
	}
}
