package parquet

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/streamd/streamd"
)

// salesBatch builds an n-row batch of the sales schema used in DESIGN.md.
func salesBatch(tb testing.TB, n int) *streamd.Batch {
	tb.Helper()
	s := mustSchema(tb,
		"transaction_id:string", "customer_id:string", "product_id:string", "quantity:int32",
		"unit_price:decimal(10,2)", "transaction_date:date", "event_time:timestamp", "region:string",
		"total_amount:decimal(12,2)")
	b := streamd.NewBatch(s, "sales/0")
	regions := []string{"EU-WEST", "EU-CENTRAL", "US-EAST", "US-WEST", "AP-SOUTH"}
	const t0 = int64(1_704_067_200_000_000) // 2024-01-01T00:00:00Z in µs
	var scratch []byte
	for i := range n {
		c := b.Cols
		scratch = fmt.Appendf(scratch[:0], "txn-%010d", i)
		c[0].AppendBytes(scratch)
		scratch = fmt.Appendf(scratch[:0], "cust-%06d", (i*7919)%50000)
		c[1].AppendBytes(scratch)
		scratch = fmt.Appendf(scratch[:0], "prod-%04d", (i*31)%2000)
		c[2].AppendBytes(scratch)
		q := int32(1 + i%20)
		c[3].AppendInt32(q)
		price := int64(100 + (i*37)%99900)
		c[4].AppendInt64(price)
		ts := t0 + int64(i)*1_000_003
		c[5].AppendInt32(int32(ts / 86_400_000_000))
		c[6].AppendInt64(ts)
		c[7].AppendBytes([]byte(regions[i%len(regions)]))
		c[8].AppendInt64(price * int64(q))
		b.NoteRead(streamd.Position{Offset: int64(i)}, 160)
		b.AddRowMeta(streamd.Position{Offset: int64(i)}, ts)
	}
	return b
}

func BenchmarkEncodeSales(b *testing.B) {
	const rows = 100_000
	batch := salesBatch(b, rows)
	enc, err := NewEncoder(batch.Schema, EncoderOptions{Compression: Snappy})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := enc.Encode(io.Discard, batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// discardStore is an ObjectStore that drops what it is given.
type discardStore struct{ *memStore }

func (*discardStore) Put(_ context.Context, _ string, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

// BenchmarkSinkWriteSales measures a whole Sink.Write of 100k sales rows
// partitioned by region (5 partitions encoded in parallel).
func BenchmarkSinkWriteSales(b *testing.B) {
	const rows = 100_000
	batch := salesBatch(b, rows)
	s, err := New(&discardStore{newMemStore()}, "sales", Options{PartitionBy: []string{"region"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	in := intentOf(batch)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Write(context.Background(), in, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
