package telemetry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/internal/telemetry"
	"github.com/streamd/streamd/window"
)

// Metrics is the pipeline's Observer: every committed batch moves the
// record counters, so read = written + filtered + deduplicated +
// dead_lettered holds at every scrape.
func ExampleMetrics() {
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, telemetry.WithoutRuntimeCollectors())
	if err != nil {
		fmt.Println(err)
		return
	}
	// pipeline.Config{..., Observer: m} makes the runtime do this.
	s, _ := streamd.NewSchema(streamd.Field{Name: "id", Type: streamd.Type{Kind: streamd.KindString}})
	b := streamd.NewBatch(s, "data/a.jsonl")
	for i, id := range []string{"a", "b", "a", "c"} {
		pos := streamd.Position{Offset: int64(10 * i)}
		b.NoteRead(pos, 10)
		if i == 2 {
			b.Deduplicated++
			continue
		}
		b.Cols[0].AppendBytes([]byte(id))
		b.AddRowMeta(pos, time.Date(2026, 3, 14, 12, 0, i, 0, time.UTC).UnixMicro())
	}
	m.Flushed("sales", window.ReasonEnd, b, 40*time.Millisecond)
	m.FlushFailed("sales", "data/a.jsonl", errors.New("write sink: timeout"))

	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			switch {
			case mt.GetCounter() != nil:
				fmt.Println(mf.GetName(), mt.GetCounter().GetValue())
			case mt.GetGauge() != nil && strings.Contains(mf.GetName(), "event_time"):
				fmt.Println(mf.GetName(), time.Unix(int64(mt.GetGauge().GetValue()), 0).UTC().Format(time.RFC3339))
			}
		}
	}
	// Output:
	// streamd_checkpoint_commits_total 1
	// streamd_pipeline_committed_event_time_seconds 2026-03-14T12:00:03Z
	// streamd_pipeline_input_bytes_total 40
	// streamd_pipeline_records_dead_lettered_total 0
	// streamd_pipeline_records_deduplicated_total 1
	// streamd_pipeline_records_filtered_total 0
	// streamd_pipeline_records_read_total 4
	// streamd_pipeline_records_written_total 3
	// streamd_sink_write_failures_total 1
	// streamd_window_batches_flushed_total 1
}

// Server answers /healthz while the process runs and /readyz only while
// every check passes and the process is not draining.
func ExampleServer() {
	reg := prometheus.NewRegistry()
	srv := telemetry.NewServer("127.0.0.1:0", reg, slog.New(slog.DiscardHandler))
	storeErr := errors.New("state_dir is not writable")
	var broken atomic.Bool // set by the test, read by the server's goroutine
	srv.AddCheck("checkpoint_store", func(context.Context) error {
		if broken.Load() {
			return storeErr
		}
		return nil
	})
	if err := srv.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(context.Background())

	get := func(path string) {
		resp, err := http.Get("http://" + srv.Addr() + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		_, _ = io.Copy(&body, resp.Body)
		fmt.Println(path, resp.StatusCode, strings.TrimSpace(body.String()))
	}
	get("/healthz")
	get("/readyz")
	broken.Store(true)
	get("/readyz")
	broken.Store(false)
	srv.SetDraining(true) // on SIGTERM
	get("/readyz")
	get("/healthz")
	// Output:
	// /healthz 200 ok
	// /readyz 200 {"status":"ok","draining":false,"checks":{"checkpoint_store":"ok"}}
	// /readyz 503 {"status":"unavailable","draining":false,"failing":["checkpoint_store"],"checks":{"checkpoint_store":"state_dir is not writable"}}
	// /readyz 503 {"status":"draining","draining":true,"checks":{"checkpoint_store":"ok"}}
	// /healthz 200 ok
}

// RedactingHandler keeps configured secrets out of every log line.
func ExampleRedactingHandler() {
	r := telemetry.NewRedactor("s3cr3t-pw")
	h := slog.NewJSONHandler(&stdout{}, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	log := slog.New(telemetry.NewRedactingHandler(h, r))
	log.Error("bulk failed", slog.Any("error", errors.New("POST https://admin:s3cr3t-pw@search:9200/_bulk: EOF")))
	// Output:
	// {"level":"ERROR","msg":"bulk failed","error":"POST https://admin:[REDACTED]@search:9200/_bulk: EOF"}
}

// stdout lets an Example's handler print to the checked output.
type stdout struct{}

func (stdout) Write(p []byte) (int, error) { fmt.Print(string(p)); return len(p), nil }

func ExampleMemoryLimit() {
	// memory_limit from the config wins; 0 falls back to GOMEMLIMIT, then
	// the container's cgroup limit.
	budget := telemetry.MemoryLimit(512 << 20)
	fmt.Println(budget>>20, "MiB")
	// Output:
	// 512 MiB
}
