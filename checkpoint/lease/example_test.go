package lease_test

import (
	"context"
	"fmt"

	"github.com/streamd/streamd/checkpoint/lease"
)

// ExampleLocal shows the order a single process reads a resharded stream
// in: the child of a split starts only once its parent is finished.
func ExampleLocal() {
	ctx := context.Background()
	m := lease.NewLocal()
	m.Sync(ctx, []lease.Shard{{ID: "shard-0"}, {ID: "shard-1", Parents: []string{"shard-0"}}})
	ch, _ := m.Tick(ctx)
	fmt.Println("gained", ch.Gained)
	m.Finish(ctx, "shard-0") // read to its end and committed
	ch, _ = m.Tick(ctx)
	fmt.Println("gained", ch.Gained)
	// Output:
	// gained [shard-0]
	// gained [shard-1]
}

// ExampleTable balances four shards between two workers sharing a
// DynamoDB table.
func ExampleTable() {
	ctx := context.Background()
	table := "streamd-example-leases"
	if err := ensure(ctx, table); err != nil {
		panic(err)
	}
	var workers []*lease.Table
	for _, owner := range []string{"worker-a", "worker-b"} {
		m, err := lease.NewTable(lease.Config{Client: peer.Client(), Table: table, Pipeline: "clicks", Owner: owner})
		if err != nil {
			panic(err)
		}
		m.Sync(ctx, []lease.Shard{{ID: "s0"}, {ID: "s1"}, {ID: "s2"}, {ID: "s3"}})
		workers = append(workers, m)
	}
	for round := 0; round < 6; round++ { // a source ticks every m.Interval()
		for _, m := range workers {
			ch, err := m.Tick(ctx)
			if err != nil {
				panic(err)
			}
			for _, id := range ch.Yield { // the source lets the lane go first
				m.Release(ctx, id)
			}
		}
	}
	fmt.Println(len(workers[0].Held()), len(workers[1].Held()))
	// Output: 2 2
}
