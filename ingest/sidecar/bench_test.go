package sidecar_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/sidecar"
)

// BenchmarkIngestNDJSON500 posts NDJSON batches of 500 sales-sized records
// from parallel clients; every request is acknowledged after its group
// commit's fsync. The lane is drained and committed as it is read, so
// segments are deleted as in a running pipeline.
func BenchmarkIngestNDJSON500(b *testing.B) {
	src, err := sidecar.New(sidecar.Config{Listen: "127.0.0.1:0", Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan ingest.Chunk, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, memResumer{}, out) }()
	go func() {
		for c := range out {
			if n := len(c.Records); n > 0 {
				src.Committed(ctx, c.Lane, c.Records[n-1].Pos)
			}
		}
	}()
	<-src.Ready()
	var body bytes.Buffer
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&body, `{"transaction_id":"T%09d","customer_id":"C0001234","product_id":"P0042","quantity":3,"unit_price":"19.99","transaction_date":"2026-11-23","event_time":"2026-11-23T10:00:00Z","region":"EU-WEST"}`+"\n", i)
	}
	payload := body.Bytes()
	url := "http://" + src.Addr() + "/ingest"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	b.SetBytes(int64(len(payload)))
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(url, "application/x-ndjson", bytes.NewReader(payload))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	el := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el, "requests/s")
	b.ReportMetric(float64(b.N*500)/el, "records/s")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	close(out)
}
