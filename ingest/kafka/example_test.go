package kafka_test

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/kafka"
)

// noCheckpoints is a Resumer with an empty checkpoint store.
type noCheckpoints struct{}

func (noCheckpoints) Resume(context.Context, string) (streamd.Position, bool, error) {
	return streamd.Position{}, false, nil
}

// ExampleSource consumes a topic as a group member and plays the
// pipeline's part: it reads chunks, reports a durable commit, and
// releases the lanes the source hands back at shutdown.
func ExampleSource() {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	pr, _ := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	for _, v := range []string{`{"id":1}`, `{"id":2}`, `{"id":3}`} {
		pr.ProduceSync(context.Background(), &kgo.Record{Topic: "orders", Value: []byte(v)})
	}
	pr.Close()

	src, err := kafka.New(kafka.Config{Brokers: c.ListenAddrs(), Topics: []string{"orders"}, Group: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan ingest.Chunk)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, noCheckpoints{}, out); close(out) }()
	read := 0
	for ch := range out {
		if ch.Revoked { // shutdown hands every lane back
			fmt.Println("released", ch.Lane)
			close(ch.Released)
			continue
		}
		for _, r := range ch.Records {
			fmt.Println(ch.Lane, r.Pos, string(r.Data))
			read++
		}
		if read == 3 {
			// The pipeline committed the batch durably: mirror it upstream.
			src.Committed(ctx, ch.Lane, ch.Records[len(ch.Records)-1].Pos)
			cancel()
		}
	}
	fmt.Println("run:", <-done)
	// Output:
	// orders/0 0 {"id":1}
	// orders/0 1 {"id":2}
	// orders/0 2 {"id":3}
	// released orders/0
	// run: <nil>
}
