package opensearch_test

import (
	"context"
	"fmt"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink/opensearch"
	"github.com/streamd/streamd/sink/opensearch/opensearchtest"
)

func ExampleSink() {
	// A fake cluster stands in for OpenSearch here.
	fake, err := opensearchtest.Start(opensearchtest.Options{Username: "admin", Password: "secret"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fake.Close()

	schema, _ := streamd.NewSchema(
		streamd.Field{Name: "transaction_id", Type: streamd.Type{Kind: streamd.KindString}},
		streamd.Field{Name: "transaction_date", Type: streamd.Type{Kind: streamd.KindDate}},
		streamd.Field{Name: "total_amount", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 12, Scale: 2}},
		streamd.Field{Name: "attrs", Type: streamd.Type{Kind: streamd.KindJSON}},
	)
	b := streamd.NewBatch(schema, "sales.jsonl")
	for i, attrs := range []string{`{"channel":"web"}`, `{"channel":"shop"}`, `"not an object"`} {
		pos := streamd.Position{Offset: int64(100 * i)}
		b.NoteRead(pos, 64)
		b.AddRowMeta(pos, 0)
		b.Cols[0].AppendBytes(fmt.Appendf(nil, "t%d", i))
		b.Cols[1].AppendInt32(20526 + int32(i%2)) // 2026-03-14, 03-15, 03-14
		b.Cols[2].AppendInt64(1990 + int64(i))
		b.Cols[3].AppendBytes([]byte(attrs))
	}

	s, err := opensearch.New(opensearch.Config{
		Pipeline: "sales", URL: fake.URL, Index: "sales-{transaction_date}", ID: []string{"transaction_id"},
		Username: "admin", Password: "secret",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close(context.Background())
	in := streamd.Intent{Pipeline: "sales", Lane: b.Lane, From: b.From, To: b.To}
	if err := s.Write(context.Background(), in, b); err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range fake.Documents("sales-*") {
		fmt.Printf("%s/%s %s\n", d.Index, d.ID, d.Source)
	}
	for _, d := range b.Dead {
		fmt.Printf("dead at %s: %.60s…\n", d.Pos, d.Error)
	}
	fmt.Println("written", b.Len(), "reconciled", b.Accounted())
	// Output:
	// sales-2026-03-14/t0 {"transaction_id":"t0","transaction_date":"2026-03-14","total_amount":19.90,"attrs":{"channel":"web"}}
	// sales-2026-03-15/t1 {"transaction_id":"t1","transaction_date":"2026-03-15","total_amount":19.91,"attrs":{"channel":"shop"}}
	// dead at 200: opensearch: mapper_parsing_exception: object mapping for [at…
	// written 2 reconciled true
}
