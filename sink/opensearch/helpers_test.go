package opensearch_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/sink"
	"github.com/streamd/streamd/sink/opensearch"
	"github.com/streamd/streamd/sink/opensearch/opensearchtest"
	"github.com/streamd/streamd/sink/sinktest"
)

// newSink returns a sink on fake with the test defaults (fast backoff) and
// tweaks applied.
func newSink(t testing.TB, fake *opensearchtest.Server, tweak func(*opensearch.Config)) (*opensearch.Sink, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := opensearch.Config{
		Pipeline: sinktest.Pipeline, URL: fake.URL, Index: "sales", ID: []string{"id"},
		BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond, RetryTimeout: 30 * time.Second,
		Registerer: reg,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := opensearch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, reg
}

// fakeReader reads back every document of the fake.
func fakeReader(fake *opensearchtest.Server) sinktest.Reader {
	return sinktest.ReaderFunc(func(context.Context) ([]sinktest.Row, error) {
		var rows []sinktest.Row
		for _, d := range fake.Documents("") {
			r, err := sinktest.DecodeRow(d.Source)
			if err != nil {
				return nil, err
			}
			rows = append(rows, r)
		}
		return rows, nil
	})
}

var _ sink.Sink = (*opensearch.Sink)(nil)
