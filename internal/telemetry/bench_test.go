package telemetry_test

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/internal/telemetry"
	"github.com/streamd/streamd/window"
)

// BenchmarkFlushed is the Observer's cost per committed batch of 10,000
// rows (the event-time scan is the part that grows with the batch).
func BenchmarkFlushed(b *testing.B) {
	m, err := telemetry.NewMetrics(prometheus.NewRegistry(), telemetry.WithoutRuntimeCollectors())
	if err != nil {
		b.Fatal(err)
	}
	secs := make([]int64, 10000)
	for i := range secs {
		secs[i] = int64(1_700_000_000 + i)
	}
	t := &testing.T{}
	batch := spec{lane: "a", eventSecs: secs, filtered: 10, dead: 5, bytesPerRecord: 160}.build(t)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m.Flushed("sales", window.ReasonRecords, batch, 20*time.Millisecond)
	}
	b.ReportMetric(float64(batch.Read)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRedactingHandler is the cost a log line pays for redaction.
func BenchmarkRedactingHandler(b *testing.B) {
	for _, tc := range []struct {
		name    string
		secrets []string
	}{{"none", nil}, {"three", []string{"Key-Pa55word", "Url-Pa55word", "tok-8f3a9c"}}} {
		b.Run(tc.name, func(b *testing.B) {
			log := slog.New(telemetry.NewRedactingHandler(slog.NewJSONHandler(io.Discard, nil), telemetry.NewRedactor(tc.secrets...)))
			err := errors.New("write sink: post https://search:9200/_bulk: connection refused")
			b.ReportAllocs()
			for b.Loop() {
				log.Warn("flush failed; retrying", slog.String("lane", "data/a.jsonl"), slog.Int("attempt", 2),
					slog.Duration("backoff", time.Second), slog.Any("error", err))
			}
		})
	}
}
