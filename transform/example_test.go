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

// An Evolver infers the schema from the records: a new field becomes a new
// nullable column and an integer column meeting a fraction widens.
func ExampleEvolver() {
	ev, err := transform.NewEvolver(transform.EvolveOptions{})
	if err != nil {
		panic(err)
	}
	recs := []streamd.Record{
		{Data: []byte(`{"id":"a","qty":1}`), Pos: streamd.Position{Offset: 0}},
		{Data: []byte(`{"id":"b","qty":2.5,"coupon":"X1"}`), Pos: streamd.Position{Offset: 1}},
		{Data: []byte(`{"id":"c","qty":"lots"}`), Pos: streamd.Position{Offset: 2}},
	}
	b := ev.Process("lane-1", nil, recs)
	// The pipeline settles each segment in position order.
	b, err = ev.Settle("lane-1", b)
	if err != nil {
		panic(err)
	}
	fmt.Println(b.Schema.Fingerprint())
	for i := range b.Len() {
		fmt.Println(string(streamd.AppendRowJSON(nil, b, i)))
	}
	fmt.Println("dead:", b.Dead[0].Error)
	// Output:
	// id:string,qty:float64,coupon:string
	// {"id":"a","qty":1,"coupon":null}
	// {"id":"b","qty":2.5,"coupon":"X1"}
	// dead: column "qty": cannot cast "lots" to float64
}
