package transform

import (
	"fmt"
	"testing"

	"github.com/streamd/streamd"
)

func mustType(tb testing.TB, s string) streamd.Type {
	tb.Helper()
	t, err := streamd.ParseType(s)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func salesSpec(tb testing.TB) Spec {
	return Spec{Format: "jsonl", Columns: []ColumnSpec{
		{Name: "transaction_id", Type: mustType(tb, "string")},
		{Name: "customer_id", Type: mustType(tb, "string")},
		{Name: "product_id", Type: mustType(tb, "string")},
		{Name: "quantity", Type: mustType(tb, "int32")},
		{Name: "unit_price", Type: mustType(tb, "decimal(10,2)")},
		{Name: "transaction_date", Type: mustType(tb, "date")},
		{Name: "event_time", Type: mustType(tb, "timestamp")},
		{Name: "region", Type: mustType(tb, "string")},
		{Name: "total_amount", Type: mustType(tb, "decimal(12,2)"), Expr: "quantity * unit_price"},
	}}
}

func salesRecords(n int) []streamd.Record {
	recs := make([]streamd.Record, n)
	off := int64(0)
	for i := range recs {
		line := fmt.Sprintf(`{"transaction_id":"T%09d","customer_id":"C%05d","product_id":"P%03d","quantity":%d,"unit_price":"%d.%02d","transaction_date":"2026-03-14","event_time":"2026-03-14T10:11:12.123Z","region":"EU-WEST"}`,
			i, i%100000, i%1000, i%10+1, i%100, i%100)
		recs[i] = streamd.Record{Data: []byte(line), Pos: streamd.Position{Offset: off}}
		off += int64(len(line)) + 1
	}
	return recs
}

// BenchmarkProcessSales measures decode + cast + the computed decimal
// column of the sales record on one goroutine, in chunks of 1024 records.
func BenchmarkProcessSales(b *testing.B) {
	p, err := Compile(salesSpec(b))
	if err != nil {
		b.Fatal(err)
	}
	recs := salesRecords(1024)
	bytes := 0
	for _, r := range recs {
		bytes += len(r.Data)
	}
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	for b.Loop() {
		out := p.Process("lane", nil, recs)
		if out.Len() != len(recs) {
			b.Fatalf("rows = %d, dead = %v", out.Len(), out.Dead[:1])
		}
	}
	b.ReportMetric(float64(b.N)*float64(len(recs))/b.Elapsed().Seconds(), "records/s")
}
