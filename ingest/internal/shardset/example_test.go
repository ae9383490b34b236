package shardset_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint/lease"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/internal/shardset"
)

// A stream whose shard "parent" was split into "child": the child is read
// only once every record of the parent is committed.
func ExampleSet() {
	leases := lease.NewLocal()
	records := map[string][]streamd.Record{
		"parent": {{Data: []byte("a"), Pos: streamd.Position{Seq: "1"}}, {Data: []byte("b"), Pos: streamd.Position{Seq: "2"}}},
		"child":  {{Data: []byte("c"), Pos: streamd.Position{Seq: "3"}}},
	}
	set := shardset.New(shardset.Config{
		Leases: leases,
		Log:    slog.New(slog.DiscardHandler),
		List: func(ctx context.Context) error {
			return leases.Sync(ctx, []lease.Shard{{ID: "parent"}, {ID: "child", Parents: []string{"parent"}}})
		},
		ListInterval: time.Minute,
		ListRetry:    func() time.Duration { return time.Second },
		ListFatal:    func(err error, _ bool) error { return err },
		// Both shards are closed: each is read to its end in one chunk.
		Read: func(ctx context.Context, r *shardset.Reader, _ ingest.Resumer, out chan<- ingest.Chunk) error {
			recs := records[r.Shard]
			select {
			case out <- ingest.Chunk{Lane: r.Shard, Records: recs, End: true}:
				r.Sent(ctx, recs, true)
			case <-ctx.Done():
			}
			return nil
		},
		ReadFailed: func(shard string, err error) error { return errors.Join(errors.New(shard), err) },
	})

	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan ingest.Chunk)
	done := make(chan error, 1)
	go func() { done <- set.Run(ctx, noResume{}, out) }()
	for range 2 {
		c := <-out
		fmt.Printf("%s: %d records, end %v\n", c.Lane, len(c.Records), c.End)
		// The pipeline wrote and committed the chunk.
		set.Committed(ctx, c.Lane, c.Records[len(c.Records)-1].Pos)
	}
	cancel()
	fmt.Println("run:", <-done)
	// Output:
	// parent: 2 records, end true
	// child: 1 records, end true
	// run: <nil>
}

// noResume resumes every shard from its start.
type noResume struct{}

func (noResume) Resume(context.Context, string) (streamd.Position, bool, error) {
	return streamd.Position{}, false, nil
}
