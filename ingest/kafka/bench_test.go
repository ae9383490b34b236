package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/internal/salesgen"
	"github.com/streamd/streamd/internal/testenv"
)

// BenchmarkKafkaSource measures the source alone: 1M sales-shaped JSON
// records (~160 B) pre-loaded into 4 kfake partitions, read by a fresh
// group each iteration into a pipeline stand-in that only counts.
func BenchmarkKafkaSource(b *testing.B) {
	const n, parts = 1_000_000, 4
	k := testenv.Kafka(b)
	k.CreateTopic(b, "bsales", parts)
	cl := k.Client(b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	for first := 0; first < n; first += 50_000 {
		recs, _ := salesRecords(b, "bsales", parts, 50_000, first, salesgen.Options{Seed: int64(first)})
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		cfg := testConfig(k, "bench-"+time.Now().Format("150405.000000000"), "bsales")
		src, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		out := make(chan ingest.Chunk, 2)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- src.Run(ctx, newResumer(), out) }()
		got := 0
		for got < n {
			c := <-out
			got += len(c.Records)
		}
		total += time.Since(start)
		cancel()
		go func() {
			for c := range out {
				if c.Released != nil {
					close(c.Released)
				}
			}
		}()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		close(out)
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "records/s")
}
