package sidecar_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/sidecar"
)

// startSource runs a bare source (no pipeline) and returns its chunks.
func startSource(t *testing.T, cfg sidecar.Config, resume memResumer) (*sidecar.Source, <-chan ingest.Chunk) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	src, err := sidecar.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan ingest.Chunk, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, resume, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("source run: %v", err)
		}
	})
	select {
	case <-src.Ready():
	case err := <-done:
		t.Fatalf("source stopped: %v", err)
	}
	return src, out
}

func post(t *testing.T, url string, hdr map[string]string, body []byte) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func walSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func fhBody(t *testing.T, recs ...[]byte) []byte {
	t.Helper()
	type rec struct{ Data []byte }
	rs := make([]rec, len(recs))
	for i, r := range recs {
		rs[i] = rec{r}
	}
	b, err := json.Marshal(map[string]any{"DeliveryStreamName": "s", "Records": rs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	hTarget = "X-Amz-Target"
	batch   = "Firehose_20150804.PutRecordBatch"
	single  = "Firehose_20150804.PutRecord"
)

func TestIngestFormatsReachTheLane(t *testing.T) {
	dir := t.TempDir()
	src, out := startSource(t, sidecar.Config{Dir: dir}, nil)
	base := "http://" + src.Addr()
	cases := []struct {
		name string
		path string
		hdr  map[string]string
		body []byte
		want []string
	}{
		{"ndjson", "/ingest", nil, []byte("{\"a\":1}\n\n{\"a\":2}\r\n[3]"), []string{`{"a":1}`, `{"a":2}`, `[3]`}},
		{"array", "/ingest", nil, []byte(` [ {"a": 4}, "x", 5 ]`), []string{`{"a":4}`, `"x"`, `5`}},
		{"gzip ndjson", "/ingest", map[string]string{"Content-Encoding": "gzip"}, gz([]byte("{\"a\":6}\n{\"a\":7}\n")), []string{`{"a":6}`, `{"a":7}`}},
		{"put record strips one newline", "/", map[string]string{hTarget: single},
			[]byte(`{"DeliveryStreamName":"s","Record":{"Data":"` + base64.StdEncoding.EncodeToString([]byte("{\"a\":8}\n")) + `"}}`), []string{`{"a":8}`}},
		{"batch keeps inner newlines", "/", map[string]string{hTarget: batch}, fhBody(t, []byte("{\"a\":9}\r\n"), []byte("x\ny\n\n")), []string{`{"a":9}`, "x\ny\n"}},
	}
	var lastTime int64
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := post(t, base+tc.path, tc.hdr, tc.body)
			if code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			recs := collect(t, out, len(tc.want), 5*time.Second)
			if len(recs) != len(tc.want) {
				t.Fatalf("got %d records, want %d", len(recs), len(tc.want))
			}
			for i, r := range recs {
				if string(r.Data) != tc.want[i] {
					t.Errorf("record %d = %q, want %q", i, r.Data, tc.want[i])
				}
				if r.Time < lastTime || r.Time == 0 {
					t.Errorf("record %d time %d (previous %d)", i, r.Time, lastTime)
				}
				lastTime = r.Time
			}
			if tc.path == "/" && tc.hdr[hTarget] == batch {
				var resp struct {
					FailedPutCount   int
					Encrypted        bool
					RequestResponses []struct{ RecordId string }
				}
				if err := json.Unmarshal([]byte(body), &resp); err != nil {
					t.Fatal(err)
				}
				if resp.FailedPutCount != 0 || resp.Encrypted || len(resp.RequestResponses) != len(recs) {
					t.Fatalf("response %s", body)
				}
				for i, rr := range resp.RequestResponses {
					if rr.RecordId != recs[i].Pos.String() {
						t.Errorf("RecordId %q, record position %s", rr.RecordId, recs[i].Pos)
					}
				}
			}
		})
	}
}

func TestBadRequestsLeaveTheLogUntouched(t *testing.T) {
	dir := t.TempDir()
	src, out := startSource(t, sidecar.Config{Dir: dir, MaxRecordBytes: 100, MaxBodyBytes: 1000, MaxBatchRecords: 3, MaxBatchBytes: 150, WALMaxBytes: 1 << 20}, nil)
	base := "http://" + src.Addr()
	big := []byte(`"` + strings.Repeat("x", 120) + `"`)
	mid := []byte(`"` + strings.Repeat("y", 80) + `"`)
	cases := []struct {
		name   string
		path   string
		hdr    map[string]string
		body   []byte
		status int
		typ    string
	}{
		{"body too large", "/ingest", nil, bytes.Repeat([]byte("1\n"), 600), 413, "InvalidArgumentException"},
		{"gzip bomb", "/ingest", map[string]string{"Content-Encoding": "gzip"}, gz(bytes.Repeat([]byte("1\n"), 5000)), 413, "InvalidArgumentException"},
		{"record too large", "/ingest", nil, append(append([]byte("1\n"), big...), '\n'), 413, "InvalidArgumentException"},
		{"array record too large", "/ingest", nil, []byte("[1," + string(big) + "]"), 413, "InvalidArgumentException"},
		{"malformed ndjson line", "/ingest", nil, []byte("{\"a\":1}\n{\"a\":\n"), 400, "InvalidArgumentException"},
		{"malformed array", "/ingest", nil, []byte(`[{"a":1},`), 400, "InvalidArgumentException"},
		{"bad gzip", "/ingest", map[string]string{"Content-Encoding": "gzip"}, []byte("not gzip"), 400, "InvalidArgumentException"},
		{"unknown encoding", "/ingest", map[string]string{"Content-Encoding": "br"}, []byte("1"), 415, "InvalidArgumentException"},
		{"firehose malformed", "/", map[string]string{hTarget: batch}, []byte(`{"Records":[{"Data":`), 400, "InvalidArgumentException"},
		{"firehose bad base64", "/", map[string]string{hTarget: batch}, []byte(`{"Records":[{"Data":"***"}]}`), 400, "InvalidArgumentException"},
		{"firehose no record", "/", map[string]string{hTarget: single}, []byte(`{"DeliveryStreamName":"s"}`), 400, "InvalidArgumentException"},
		{"firehose empty batch", "/", map[string]string{hTarget: batch}, []byte(`{"Records":[]}`), 400, "InvalidArgumentException"},
		{"firehose empty data", "/", map[string]string{hTarget: batch}, fhBody(t, []byte("1"), []byte{}), 400, "InvalidArgumentException"},
		{"firehose record too large", "/", map[string]string{hTarget: single}, []byte(`{"Record":{"Data":"` + base64.StdEncoding.EncodeToString(big) + `"}}`), 400, "InvalidArgumentException"},
		{"firehose too many records", "/", map[string]string{hTarget: batch}, fhBody(t, []byte("1"), []byte("2"), []byte("3"), []byte("4")), 400, "InvalidArgumentException"},
		{"firehose batch bytes", "/", map[string]string{hTarget: batch}, fhBody(t, mid, mid), 400, "InvalidArgumentException"},
		{"firehose unknown op", "/", map[string]string{hTarget: "Firehose_20150804.DescribeDeliveryStream"}, []byte(`{}`), 400, "UnknownOperationException"},
		{"no target", "/", nil, []byte(`{}`), 404, "UnknownOperationException"},
	}
	before := walSize(t, dir)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := post(t, base+tc.path, tc.hdr, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			var e struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("error body %q: %v", body, err)
			}
			if e.Type != tc.typ || e.Message == "" || hdr.Get("X-Amzn-ErrorType") != tc.typ {
				t.Fatalf("error body %q, header %q; want __type %s and a message", body, hdr.Get("X-Amzn-ErrorType"), tc.typ)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/ingest", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /ingest: %d", resp.StatusCode)
	}
	if after := walSize(t, dir); after != before {
		t.Fatalf("the log grew from %d to %d bytes on refused requests", before, after)
	}
	select {
	case c := <-out:
		t.Fatalf("a refused request reached the lane: %+v", c)
	case <-time.After(200 * time.Millisecond):
	}
	// A good request still goes through.
	if code, _, body := post(t, base+"/ingest", nil, []byte("1\n2\n")); code != 200 {
		t.Fatalf("good request after bad ones: %d %s", code, body)
	}
	collect(t, out, 2, 5*time.Second)
}

func TestAuthToken(t *testing.T) {
	src, out := startSource(t, sidecar.Config{Dir: t.TempDir(), AuthToken: "s3cret"}, nil)
	base := "http://" + src.Addr()
	sigv4 := func(key string) string {
		return "AWS4-HMAC-SHA256 Credential=" + key + "/20260101/us-east-1/firehose/aws4_request, SignedHeaders=host, Signature=00"
	}
	cases := []struct {
		name string
		auth string
		code int
	}{
		{"none", "", 401},
		{"wrong bearer", "Bearer nope", 401},
		{"bearer prefix only", "Bearer s3cre", 401},
		{"wrong sigv4 key", sigv4("AKIDEXAMPLE"), 401},
		{"bearer", "Bearer s3cret", 200},
		{"sigv4 key", sigv4("s3cret"), 200},
	}
	ok := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.auth != "" {
				hdr["Authorization"] = tc.auth
			}
			code, _, body := post(t, base+"/ingest", hdr, []byte(`{"n":1}`))
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			if code == 200 {
				ok++
			}
		})
	}
	if recs := collect(t, out, ok, 5*time.Second); len(recs) != ok {
		t.Fatalf("%d records for %d accepted requests", len(recs), ok)
	}
}

// A full log answers 503 with Retry-After, writes nothing, and accepts
// again once the pipeline has committed and segments are deleted.
func TestFullLogBackpressureRecovers(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	sink := &memSink{}
	store := checkpoint.NewFileStore(filepath.Join(dir, "state"))
	cfg := sidecar.Config{Listen: freeAddr(t), Dir: filepath.Join(dir, "wal"), MaxBodyBytes: 4 << 10, WALMaxBytes: 64 << 10, SegmentBytes: 8 << 10,
		Registerer: reg, Pipeline: "side"}
	// Run the source without a pipeline first: nothing drains.
	src, err := sidecar.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan ingest.Chunk, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, memResumer{}, out) }()
	<-src.Ready()
	base := "http://" + src.Addr()
	line := []byte(`{"pad":"` + strings.Repeat("p", 100) + `"}` + "\n")
	body := bytes.Repeat(line, 30)
	accepted := 0
	var full bool
	for i := 0; i < 200; i++ {
		code, hdr, resp := post(t, base+"/ingest", nil, body)
		if code == 503 {
			if hdr.Get("Retry-After") == "" || !strings.Contains(resp, "ServiceUnavailableException") {
				t.Fatalf("503 without Retry-After or Firehose error: %v %s", hdr, resp)
			}
			full = true
			break
		}
		if code != 200 {
			t.Fatalf("status %d: %s", code, resp)
		}
		accepted++
	}
	if !full {
		t.Fatal("the log never filled")
	}
	size := walSize(t, cfg.Dir)
	if size > cfg.WALMaxBytes {
		t.Fatalf("log is %d bytes, over its budget %d", size, cfg.WALMaxBytes)
	}
	if code, _, _ := post(t, base+"/ingest", nil, body); code != 503 {
		t.Fatalf("still full: status %d", code)
	}
	if walSize(t, cfg.Dir) != size {
		t.Fatal("a 503 request changed the log")
	}
	if got := counterValue(t, reg, "streamd_sidecar_requests_total", "outcome", "unavailable"); got != 2 {
		t.Fatalf("unavailable requests metric %v, want 2", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Now with the pipeline: it drains, commits, segments go, the log accepts.
	r := startPipeline(t, sidecar.Config{Listen: cfg.Listen, Dir: cfg.Dir, MaxBodyBytes: 4 << 10, WALMaxBytes: 64 << 10, SegmentBytes: 8 << 10}, store, sink)
	deadline := time.Now().Add(20 * time.Second)
	var code int
	for time.Now().Before(deadline) {
		if code, _, _ = post(t, "http://"+cfg.Listen+"/ingest", nil, body); code == 200 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("log did not recover: last status %d", code)
	}
	accepted++
	for sink.total() < accepted*30 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	r.stop(t)
	if got := sink.total(); got != accepted*30 {
		t.Fatalf("sink has %d rows, want %d", got, accepted*30)
	}
	if size := walSize(t, cfg.Dir); size > 2*int64(cfg.SegmentBytes) {
		t.Fatalf("committed log still holds %d bytes", size)
	}
}

// counterValue returns the value of the counter name whose label has value.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// firehoseClient is an AWS SDK Firehose client pointed at the sidecar,
// without SDK retries: the caller retries and counts ambiguous failures.
func firehoseClient(addr string) *firehose.Client {
	return firehose.New(firehose.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://" + addr),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDSIDECAR", "secret", ""),
		HTTPClient:       awshttp.NewBuildableClient(),
		RetryMaxAttempts: 1,
	})
}

// putAll puts n records "{"id":i}" with PutRecordBatch in batches of 500
// from `workers` goroutines, retrying a failed batch until it is
// acknowledged (bounded). It returns the ids of batches that were retried
// after an ambiguous failure (sent, no answer): the only records allowed
// to appear twice.
func putAll(ctx context.Context, t *testing.T, cl *firehose.Client, n, workers int, acked *atomic.Int64) map[int]bool {
	t.Helper()
	type job struct{ from, to int }
	jobs := make(chan job)
	var mu sync.Mutex
	retried := map[int]bool{}
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				recs := make([]fhtypes.Record, 0, j.to-j.from)
				for i := j.from; i < j.to; i++ {
					recs = append(recs, fhtypes.Record{Data: fmt.Appendf(nil, "{\"id\":%d}\n", i)})
				}
				for attempt := 0; ; attempt++ {
					if attempt > 600 {
						errc <- fmt.Errorf("batch %d..%d not acknowledged after %d attempts", j.from, j.to, attempt)
						return
					}
					rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					out, err := cl.PutRecordBatch(rctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("events"), Records: recs})
					cancel()
					if err == nil {
						if aws.ToInt32(out.FailedPutCount) != 0 || len(out.RequestResponses) != len(recs) {
							errc <- fmt.Errorf("batch %d..%d: %d failed, %d responses", j.from, j.to, aws.ToInt32(out.FailedPutCount), len(out.RequestResponses))
							return
						}
						for _, rr := range out.RequestResponses {
							if _, err := streamd.ParsePosition(aws.ToString(rr.RecordId)); err != nil {
								errc <- fmt.Errorf("RecordId %q: %v", aws.ToString(rr.RecordId), err)
								return
							}
						}
						acked.Add(int64(len(recs)))
						break
					}
					if !refused(err) {
						// The request may have been appended before the
						// answer was lost: a retry may duplicate it.
						mu.Lock()
						for i := j.from; i < j.to; i++ {
							retried[i] = true
						}
						mu.Unlock()
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	for i := 0; i < n; i += 500 {
		jobs <- job{i, min(i+500, n)}
	}
	close(jobs)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	return retried
}

// refused reports whether err certainly means the request was not
// appended: the connection was refused, or the sidecar answered with an
// error status (it answers only after deciding).
func refused(err error) bool {
	if strings.Contains(err.Error(), "connection refused") {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() > 0
}

// The Firehose SDK client puts 100k records while the source and pipeline
// are stopped and restarted: every acknowledged record is in the output,
// and only records of requests retried after a lost answer may repeat.
func TestFirehoseClientExactlyOnceAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	store := checkpoint.NewFileStore(filepath.Join(dir, "state"))
	sink := &memSink{}
	cfg := sidecar.Config{Listen: freeAddr(t), Dir: filepath.Join(dir, "wal"), SegmentBytes: 256 << 10, Pipeline: "side"}
	r := startPipeline(t, cfg, store, sink)
	const total = 100000
	var acked atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	putDone := make(chan map[int]bool, 1)
	go func() { putDone <- putAll(ctx, t, firehoseClient(cfg.Listen), total, 4, &acked) }()

	restarts := 0
	for _, at := range []int64{20000, 50000, 80000} {
		for acked.Load() < at && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		r.stop(t)
		time.Sleep(100 * time.Millisecond) // clients meet a closed port meanwhile
		r = startPipeline(t, cfg, store, sink)
		restarts++
	}
	retried := <-putDone
	if acked.Load() != total {
		t.Fatalf("acknowledged %d of %d", acked.Load(), total)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(sink.counts()) < total && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	r.stop(t)
	counts := sink.counts()
	dups, dupAllowed := 0, 0
	for i := 0; i < total; i++ {
		c := counts[fmt.Sprintf(`{"id":%d}`, i)]
		switch {
		case c == 0:
			t.Fatalf("acknowledged record %d is not in the output", i)
		case c > 1 && !retried[i]:
			t.Fatalf("record %d written %d times though its request was never retried after a lost answer", i, c)
		case c > 1:
			dups += c - 1
		}
		if retried[i] {
			dupAllowed++
		}
	}
	if len(counts) != total {
		t.Fatalf("output has %d distinct records, want %d", len(counts), total)
	}
	t.Logf("%d restarts; %d records in retried-after-lost-answer requests, %d duplicates written", restarts, dupAllowed, dups)
}
