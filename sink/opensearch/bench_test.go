package opensearch_test

import (
	"context"
	"testing"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink/opensearch"
	"github.com/streamd/streamd/sink/opensearch/opensearchtest"
	"github.com/streamd/streamd/sink/sinktest"
)

// BenchmarkSinkWrite indexes batches of 5000 rows (12 columns, ~330 bytes
// of JSON each) into the fake, gzip on and off. It reports docs/s, the
// NDJSON bytes/s (SetBytes) and the bytes/s on the wire.
func BenchmarkSinkWrite(b *testing.B) {
	for _, tc := range []struct {
		name string
		gzip bool
	}{{"gzip", true}, {"plain", false}} {
		b.Run(tc.name, func(b *testing.B) {
			fake := opensearchtest.New(b, opensearchtest.Options{})
			s, _ := newSink(b, fake, func(c *opensearch.Config) { c.DisableGzip = !tc.gzip })
			recs := sinktest.Records(0, 5000)
			proto := sinktest.NewBatch(b, 0, recs, 0)
			raw := 0
			for i := range proto.Len() {
				raw += len(streamd.AppendRowJSON(nil, proto, i)) + 1
			}
			b.SetBytes(int64(raw))
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				batch := sinktest.NewBatch(b, 0, recs, 0)
				b.StartTimer()
				if err := s.Write(context.Background(), sinktest.IntentOf(batch), batch); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N*len(recs))/sec, "docs/s")
			b.ReportMetric(float64(fake.Stats().BulkBytes)/sec, "wire-B/s")
		})
	}
}
