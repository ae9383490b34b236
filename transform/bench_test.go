package transform

import (
	"fmt"
	"strings"
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
	b.SetBytes(recordBytes(recs))
	b.ReportAllocs()
	for b.Loop() {
		out := p.Process("lane", nil, recs)
		if out.Len() != len(recs) {
			b.Fatalf("rows = %d, dead = %v", out.Len(), out.Dead[:1])
		}
	}
	b.ReportMetric(float64(b.N)*float64(len(recs))/b.Elapsed().Seconds(), "records/s")
}

// benchChain measures a Chain's Apply on decoded sales batches of 1024
// rows (decoding is outside the timer).
func benchChain(b *testing.B, steps []Step) {
	p, err := Compile(salesSpec(b))
	if err != nil {
		b.Fatal(err)
	}
	chain, err := NewChain(p.Schema(), steps, ChainOptions{Pipeline: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	// Distinct transaction ids per iteration, so dedup keeps inserting.
	const n = 1024
	batches := make([]*streamd.Batch, 64)
	for k := range batches {
		recs := salesRecords(n)
		for i := range recs {
			recs[i].Data = []byte(strings.Replace(string(recs[i].Data), `"T0`, fmt.Sprintf(`"T%02d`, k), 1))
		}
		batches[k] = p.Process("lane", nil, recs)
	}
	b.ReportAllocs()
	rows := 0
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		src := batches[i%len(batches)]
		bt := *src
		bt.Cols = append([]streamd.Column(nil), src.Cols...)
		bt.Pos = append([]streamd.Position(nil), src.Pos...)
		bt.EventTime = append([]int64(nil), src.EventTime...)
		for c := range bt.Cols {
			bt.Cols[c].Valid = append([]bool(nil), src.Cols[c].Valid...)
		}
		b.StartTimer()
		if err := chain.Apply("lane", &bt); err != nil {
			b.Fatal(err)
		}
		rows += n
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDedup: dedup on transaction_id, every key new or a repeat of a
// key 64 batches earlier.
func BenchmarkDedup(b *testing.B) {
	benchChain(b, []Step{{Dedup: &DedupSpec{Keys: []string{"transaction_id"}}}})
}

// BenchmarkQuality: the config contract's three rules plus a regexp.
func BenchmarkQuality(b *testing.B) {
	benchChain(b, []Step{{Quality: &QualitySpec{Action: "warn", Rules: []string{
		`IsComplete "customer_id"`, `ColumnValues "quantity" > 0`, `ColumnValues "quantity" <= 1000`,
		`ColumnValues "region" matches "[A-Z]+-[A-Z]+"`,
	}}}})
}

// BenchmarkOutliersIQR: rolling IQR per region over 100 values.
func BenchmarkOutliersIQR(b *testing.B) {
	benchChain(b, []Step{{Outliers: &OutlierSpec{Column: "unit_price", Method: "iqr", By: []string{"region"}, Action: "flag"}}})
}

// BenchmarkEvolverSales: the sales records with no declared schema, once
// the lane's schema has settled (the steady state: decode with the
// inferred schema, Settle keeps the result). Compare BenchmarkProcessSales.
func BenchmarkEvolverSales(b *testing.B) {
	ev, err := NewEvolver(EvolveOptions{})
	if err != nil {
		b.Fatal(err)
	}
	recs := salesRecords(1024)
	if _, err := ev.Settle("l", ev.Process("l", nil, recs)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(recordBytes(recs))
	b.ReportAllocs()
	for b.Loop() {
		out, err := ev.Settle("l", ev.Process("l", nil, recs))
		if err != nil || out.Len() != len(recs) {
			b.Fatalf("settle: %v, %d rows", err, out.Len())
		}
		ev.Recycle(out)
	}
	b.ReportMetric(float64(b.N)*float64(len(recs))/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkEvolverFold: a segment that brings a new field every 64
// records, so every call folds the records and decodes them again (the
// cost of a segment that evolves the schema).
func BenchmarkEvolverFold(b *testing.B) {
	recs := salesRecords(1024)
	for i := range recs {
		if i%64 == 0 {
			d := recs[i].Data
			recs[i].Data = append(append(d[:len(d)-1:len(d)-1], fmt.Sprintf(`,"extra_%d":1`, i)...), '}')
		}
	}
	b.SetBytes(recordBytes(recs))
	b.ReportAllocs()
	for b.Loop() {
		ev, _ := NewEvolver(EvolveOptions{})
		out, err := ev.Settle("l", ev.Process("l", nil, recs))
		if err != nil || out.Len() != len(recs) {
			b.Fatalf("settle: %v, %d rows", err, out.Len())
		}
	}
	b.ReportMetric(float64(b.N)*float64(len(recs))/b.Elapsed().Seconds(), "records/s")
}

// recordBytes is the raw size of recs, for b.SetBytes.
func recordBytes(recs []streamd.Record) int64 {
	n := 0
	for _, r := range recs {
		n += len(r.Data)
	}
	return int64(n)
}
