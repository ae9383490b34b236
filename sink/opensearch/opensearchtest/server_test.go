package opensearchtest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"
	"github.com/opensearch-project/opensearch-go/v4/opensearchutil"

	"github.com/streamd/streamd/sink/opensearch/opensearchtest"
)

func client(t *testing.T, s *opensearchtest.Server, user, pass string, gzip bool) *opensearchapi.Client {
	t.Helper()
	c, err := opensearchapi.NewClient(opensearchapi.Config{Client: opensearch.Config{
		Addresses: []string{s.URL}, Username: user, Password: pass,
		CompressRequestBody: gzip, DisableRetry: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func bulk(t *testing.T, c *opensearchapi.Client, body string) *opensearchapi.BulkResp {
	t.Helper()
	resp, err := c.Bulk(context.Background(), opensearchapi.BulkReq{Body: strings.NewReader(body)})
	if err != nil {
		t.Fatalf("bulk: %v", err)
	}
	return resp
}

// outcome flattens a bulk response to "action:status[:error type]" per item.
func outcome(resp *opensearchapi.BulkResp) []string {
	var out []string
	for _, m := range resp.Items {
		for a, it := range m {
			s := fmt.Sprintf("%s:%d", a, it.Status)
			if it.Error != nil {
				s += ":" + it.Error.Type
			}
			out = append(out, s)
		}
	}
	return out
}

func TestBulkWithOfficialClient(t *testing.T) {
	tests := []struct {
		name   string
		gzip   bool
		body   string
		want   []string
		errors bool
	}{
		{
			name: "index create update delete",
			body: `{"index":{"_index":"sales","_id":"1"}}
{"region":"EU","qty":2,"price":19.90}
{"create":{"_index":"sales","_id":"2"}}
{"region":"US","qty":1}
{"index":{"_index":"sales","_id":"1"}}
{"region":"EU","qty":3,"price":19.90}
{"update":{"_index":"sales","_id":"2"}}
{"doc":{"qty":5}}
{"delete":{"_index":"sales","_id":"3"}}
{"create":{"_index":"sales","_id":"3"}}
{"region":"APAC","qty":7}
{"delete":{"_index":"sales","_id":"3"}}
`,
			want: []string{"index:201", "create:201", "index:200", "update:200", "delete:404", "create:201", "delete:200"},
		},
		{
			name: "gzip body, conflict, mapping error, missing update",
			gzip: true,
			body: `{"index":{"_index":"sales","_id":"1"}}
{"region":"EU","qty":2,"meta":{"src":"a"}}
{"create":{"_index":"sales","_id":"1"}}
{"region":"EU","qty":2}
{"index":{"_index":"sales","_id":"2"}}
{"region":"EU","qty":"many"}
{"index":{"_index":"sales","_id":"3"}}
{"region":"EU","meta":"flat"}
{"index":{"_index":"sales","_id":"4"}}
{"region":{"name":"EU"}}
{"update":{"_index":"sales","_id":"9"}}
{"doc":{"qty":1}}
{"update":{"_index":"sales","_id":"9"}}
{"doc":{"qty":1},"doc_as_upsert":true}
{"index":{"_index":"Sales","_id":"1"}}
{"a":1}
{"index":{"_index":"sales","_id":"5"}}
{"qty":"12","region":7}
`,
			want: []string{"index:201", "create:409:version_conflict_engine_exception",
				"index:400:mapper_parsing_exception", "index:400:mapper_parsing_exception", "index:400:mapper_parsing_exception",
				"update:404:document_missing_exception", "update:201", "index:400:invalid_index_name_exception", "index:201"},
			errors: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := opensearchtest.New(t, opensearchtest.Options{Username: "admin", Password: "s3cret"})
			c := client(t, s, "admin", "s3cret", tc.gzip)
			resp := bulk(t, c, tc.body)
			if got := outcome(resp); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("items:\n got %v\nwant %v", got, tc.want)
			}
			if resp.Errors != tc.errors {
				t.Fatalf("errors = %v, want %v", resp.Errors, tc.errors)
			}
			if tc.gzip && s.Stats().GzipRequests != 1 {
				t.Fatalf("gzip requests = %d, want 1", s.Stats().GzipRequests)
			}
		})
	}
}

func TestGetAndCount(t *testing.T) {
	s := opensearchtest.New(t, opensearchtest.Options{})
	c := client(t, s, "", "", false)
	var body strings.Builder
	for i := range 30 {
		fmt.Fprintf(&body, "{\"index\":{\"_index\":\"sales-2026-03-%02d\",\"_id\":\"t/%d\"}}\n{\"n\":%d}\n", 1+i%3, i, i)
	}
	if resp := bulk(t, c, body.String()); resp.Errors {
		t.Fatalf("unexpected errors: %v", outcome(resp))
	}
	ctx := context.Background()
	if _, err := c.Indices.Refresh(ctx, &opensearchapi.IndicesRefreshReq{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		indices []string
		want    int
	}{{nil, 30}, {[]string{"sales-*"}, 30}, {[]string{"sales-2026-03-02"}, 10}, {[]string{"sales-2026-03-01", "sales-2026-03-03"}, 20}} {
		cr, err := c.Indices.Count(ctx, &opensearchapi.IndicesCountReq{Indices: tc.indices})
		if err != nil {
			t.Fatal(err)
		}
		if cr.Count != tc.want {
			t.Errorf("count %v = %d, want %d", tc.indices, cr.Count, tc.want)
		}
	}
	if _, err := c.Indices.Count(ctx, &opensearchapi.IndicesCountReq{Indices: []string{"nope"}}); err == nil {
		t.Error("count of a missing index: no error")
	}
	// The id holds a slash: the client must escape it and the fake unescape.
	got, err := c.Document.Get(ctx, opensearchapi.DocumentGetReq{Index: "sales-2026-03-02", DocumentID: "t%2F4"})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Found || string(got.Source) != `{"n":4}` || got.Version != 1 {
		t.Fatalf("get = found %v source %s version %d", got.Found, got.Source, got.Version)
	}
	if _, err := c.Document.Get(ctx, opensearchapi.DocumentGetReq{Index: "sales-2026-03-02", DocumentID: "missing"}); err == nil {
		t.Error("get of a missing document: no error")
	}
	info, err := c.Info(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version.Distribution != "opensearch" {
		t.Errorf("distribution %q", info.Version.Distribution)
	}
	if n := len(s.Documents("sales-2026-03-0[12]")); n != 20 {
		t.Errorf("Documents(pattern) = %d, want 20", n)
	}
}

func TestBulkIndexerWithRejections(t *testing.T) {
	// The official BulkIndexer reports each item's outcome: with 10% of
	// items rejected, the documents stored are exactly the items it saw
	// succeed, and every failure is a 429 es_rejected_execution_exception.
	s := opensearchtest.New(t, opensearchtest.Options{Seed: 7, RejectItems: 0.1})
	c := client(t, s, "", "", true)
	var ok, rejected atomic.Int64
	bi, err := opensearchutil.NewBulkIndexer(opensearchutil.BulkIndexerConfig{
		Client: c, Index: "docs", NumWorkers: 2, FlushBytes: 4 << 10,
		OnError: func(_ context.Context, err error) { t.Errorf("bulk indexer: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 500 {
		err := bi.Add(ctx, opensearchutil.BulkIndexerItem{
			Action: "index", DocumentID: fmt.Sprint(i), Body: strings.NewReader(fmt.Sprintf(`{"i":%d}`, i)),
			OnSuccess: func(context.Context, opensearchutil.BulkIndexerItem, opensearchapi.BulkRespItem) { ok.Add(1) },
			OnFailure: func(_ context.Context, _ opensearchutil.BulkIndexerItem, r opensearchapi.BulkRespItem, err error) {
				if r.Status != 429 || r.Error == nil || r.Error.Type != "es_rejected_execution_exception" {
					t.Errorf("failure status %d error %+v %v", r.Status, r.Error, err)
				}
				rejected.Add(1)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := bi.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if rejected.Load() == 0 || st.Rejected != rejected.Load() {
		t.Fatalf("rejected %d, fake says %d", rejected.Load(), st.Rejected)
	}
	if got := int64(len(s.Documents("docs"))); got != ok.Load() || ok.Load()+rejected.Load() != 500 {
		t.Fatalf("documents %d, ok %d, rejected %d", got, ok.Load(), rejected.Load())
	}
	if bs := bi.Stats(); bs.NumFlushed == 0 || st.GzipRequests == 0 {
		t.Fatalf("indexer stats %+v, gzip requests %d", bs, st.GzipRequests)
	}
}

func TestFaultsAndAuth(t *testing.T) {
	s := opensearchtest.New(t, opensearchtest.Options{Username: "u", Password: "p", MaxBodyBytes: 256})
	post := func(user, pass, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/_bulk", strings.NewReader(body))
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	doc := "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"x\":1}\n"
	tests := []struct {
		name   string
		setup  func()
		user   string
		body   string
		status int
		substr string
	}{
		{"no credentials", nil, "", doc, 401, "security_exception"},
		{"wrong password", nil, "x", doc, 401, "security_exception"},
		{"injected 503", func() { s.FailNext(1, 503) }, "u", doc, 503, "unavailable_shards_exception"},
		{"injected 429", func() { s.FailNext(1, 429) }, "u", doc, 429, "es_rejected_execution_exception"},
		{"too large", nil, "u", strings.Repeat(doc, 10), 413, "content_too_long_exception"},
		{"no trailing newline", nil, "u", strings.TrimSuffix(doc, "\n"), 400, "terminated by a newline"},
		{"unknown action", nil, "u", "{\"upsert\":{\"_index\":\"a\"}}\n{}\n", 400, "expected one of"},
		{"ok after faults", nil, "u", doc, 200, `"errors":false`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			pass := "p"
			if tc.user == "x" {
				tc.user, pass = "u", "wrong"
			}
			status, body := post(tc.user, pass, tc.body)
			if status != tc.status || !strings.Contains(body, tc.substr) {
				t.Fatalf("status %d body %s; want %d containing %q", status, body, tc.status, tc.substr)
			}
		})
	}
	if _, ok := s.Doc("a", "1"); !ok {
		t.Fatal("document of the successful request missing")
	}
	st := s.Stats()
	if st.AuthFailures != 2 || st.RequestFaults != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRejectionsAreSeeded(t *testing.T) {
	run := func() []string {
		s := opensearchtest.New(t, opensearchtest.Options{Seed: 42, RejectItems: 0.3})
		c := client(t, s, "", "", false)
		var body bytes.Buffer
		for i := range 50 {
			fmt.Fprintf(&body, "{\"index\":{\"_index\":\"x\",\"_id\":\"%d\"}}\n{}\n", i)
		}
		return outcome(bulk(t, c, body.String()))
	}
	a, b := run(), run()
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatal("same seed, different rejections")
	}
	if !strings.Contains(strings.Join(a, ","), "429:es_rejected_execution_exception") {
		t.Fatal("no rejection at 30%")
	}
}

func TestStartRejectsBadProbability(t *testing.T) {
	if _, err := opensearchtest.Start(opensearchtest.Options{RejectItems: 1.5}); err == nil {
		t.Fatal("no error")
	}
}
