package dynamodb_test

import (
	"context"
	"testing"

	"github.com/streamd/streamd/sink/sinktest"
)

// BenchmarkSinkWrite writes batches of 2000 items (12 attributes, about
// 300 bytes each) into a DynamoDB Local table and reports items/s. DynamoDB
// Local is the bottleneck, not the sink: the number bounds what a test can
// push, not what DynamoDB takes.
func BenchmarkSinkWrite(b *testing.B) {
	table := createTable(b, "id:S")
	s, _ := newSink(b, peer.Client(), table, nil)
	recs := sinktest.Records(0, 2000)
	for b.Loop() {
		b.StopTimer()
		batch := sinktest.NewBatch(b, 0, recs, 0)
		b.StartTimer()
		if err := s.Write(context.Background(), sinktest.IntentOf(batch), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "items/s")
}
