package transform_test

import (
	"fmt"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/transform"
)

func Example() {
	typ := func(s string) streamd.Type {
		t, err := streamd.ParseType(s)
		if err != nil {
			panic(err)
		}
		return t
	}
	prog, err := transform.Compile(transform.Spec{
		Format: "jsonl",
		Columns: []transform.ColumnSpec{
			{Name: "id", Type: typ("string")},
			{Name: "quantity", Type: typ("int32")},
			{Name: "unit_price", Type: typ("decimal(10,2)")},
			{Name: "total", Type: typ("decimal(12,2)"), Expr: "quantity * unit_price"},
		},
		Filters: []string{"quantity > 0"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	recs := []streamd.Record{
		{Data: []byte(`{"id":"a","quantity":3,"unit_price":"19.99"}`), Pos: streamd.Position{Offset: 0}},
		{Data: []byte(`{"id":"b","quantity":0,"unit_price":1}`), Pos: streamd.Position{Offset: 45}},
		{Data: []byte(`{"id":"c","quantity":"abc"}`), Pos: streamd.Position{Offset: 84}},
	}
	b := prog.Process("sales.jsonl", nil, recs)
	for i := 0; i < b.Len(); i++ {
		fmt.Println(string(streamd.AppendRowJSON(nil, b, i)))
	}
	for _, d := range b.Dead {
		fmt.Println("dead at", d.Pos, d.Error)
	}
	fmt.Println("read", b.Read, "filtered", b.Filtered, "accounted", b.Accounted())
	// Output:
	// {"id":"a","quantity":3,"unit_price":19.99,"total":59.97}
	// dead at 84 column "quantity": cannot cast "abc" to int32: not a number
	// read 3 filtered 1 accounted true
}
