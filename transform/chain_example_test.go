package transform_test

import (
	"fmt"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/transform"
)

// ExampleChain runs a cleansing prefix inside Process and dedup + quality
// in a Chain (a pipeline.Operator), then carries the Chain's state over a
// restart with Snapshot and Restore.
func ExampleChain() {
	str := streamd.Type{Kind: streamd.KindString}
	steps := []transform.Step{
		{Trim: []string{"customer_id"}},
		{NullIfEmpty: []string{"customer_id"}},
		{Dedup: &transform.DedupSpec{Keys: []string{"id"}, TTL: time.Hour}},
		{Quality: &transform.QualitySpec{Rules: []string{`IsComplete "customer_id"`}}},
	}
	stateless, stateful := transform.SplitSteps(steps)
	prog, err := transform.Compile(transform.Spec{Format: "jsonl", Steps: stateless,
		Columns: []transform.ColumnSpec{{Name: "id", Type: str}, {Name: "customer_id", Type: str}}})
	if err != nil {
		panic(err)
	}
	chain, err := transform.NewChain(prog.Schema(), stateful, transform.ChainOptions{Pipeline: "sales"})
	if err != nil {
		panic(err)
	}
	batch := func(c *transform.Chain, lines ...string) {
		recs := make([]streamd.Record, len(lines))
		for i, l := range lines {
			recs[i] = streamd.Record{Data: []byte(l), Pos: streamd.Position{Offset: int64(i)}}
		}
		b := prog.Process("lane", nil, recs)
		if err := c.Apply("lane", b); err != nil {
			panic(err)
		}
		fmt.Printf("written %d, deduplicated %d", b.Len(), b.Deduplicated)
		for _, d := range b.Dead {
			fmt.Printf(", dead: %s", d.Error)
		}
		fmt.Println()
	}
	batch(chain, `{"id":"1","customer_id":"C1"}`, `{"id":"1","customer_id":"C1"}`, `{"id":"2","customer_id":"  "}`)
	state, err := chain.Snapshot("lane")
	if err != nil {
		panic(err)
	}

	restarted, err := transform.NewChain(prog.Schema(), stateful, transform.ChainOptions{Pipeline: "sales"})
	if err != nil {
		panic(err)
	}
	if err := restarted.Restore("lane", state); err != nil {
		panic(err)
	}
	batch(restarted, `{"id":"1","customer_id":"C1"}`, `{"id":"3","customer_id":"C3"}`)
	// Output:
	// written 1, deduplicated 1, dead: quality: failed rules [0: IsComplete "customer_id"]
	// written 1, deduplicated 1
}
