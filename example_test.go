package streamd_test

import (
	"fmt"

	"github.com/streamd/streamd"
)

// A decoder appends rows straight into typed column vectors; an operator
// removes rows with Keep and accounts for them, so the batch reconciles.
func ExampleBatch() {
	schema, _ := streamd.NewSchema(
		streamd.Field{Name: "id", Type: streamd.Type{Kind: streamd.KindString}},
		streamd.Field{Name: "price", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 10, Scale: 2}},
	)
	b := streamd.NewBatch(schema, "data/sales.jsonl")
	for i, line := range []string{"A", "B", "C"} {
		pos := streamd.Position{Offset: int64(i * 10)}
		b.NoteRead(pos, 10)
		b.Cols[0].AppendBytes([]byte(line))
		b.Cols[1].AppendInt64(int64(1999 + i)) // unscaled: 19.99, 20.00, 20.01
		b.AddRowMeta(pos, 0)
	}
	b.Keep([]bool{true, false, true})
	b.Filtered++
	fmt.Println(b.Len(), "rows, reconciled:", b.Accounted(), "range:", b.From, "-", b.To)
	fmt.Println(string(streamd.AppendRowJSON(nil, b, 1)))
	// Output:
	// 2 rows, reconciled: true range: 0 - 20
	// {"id":"C","price":20.01}
}
