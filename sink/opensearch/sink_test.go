package opensearch_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink"
	"github.com/streamd/streamd/sink/opensearch"
	"github.com/streamd/streamd/sink/opensearch/opensearchtest"
	"github.com/streamd/streamd/sink/sinktest"
)

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (sink.Sink, sinktest.Reader) {
		fake := opensearchtest.New(t, opensearchtest.Options{})
		s, _ := newSink(t, fake, func(c *opensearch.Config) { c.BulkBytes = 64 << 10 })
		return s, fakeReader(fake)
	}, sinktest.WithPoison(func(r *sinktest.Record) {
		// payload is mapped as an object by the first row that has one; a
		// string there is a mapper_parsing_exception.
		r.Payload = `"not an object"`
	}))
}

func write(t *testing.T, s *opensearch.Sink, b *streamd.Batch) error {
	t.Helper()
	err := s.Write(context.Background(), sinktest.IntentOf(b), b)
	if !b.Accounted() {
		t.Fatalf("batch does not reconcile: read %d rows %d filtered %d dead %d", b.Read, b.Len(), b.Filtered, len(b.Dead))
	}
	return err
}

// TestItemRejections is the proof: with 5% of items answered 429 every
// document is present exactly once, and mapping errors are dead-lettered
// with the cluster's reason.
func TestItemRejections(t *testing.T) {
	fake := opensearchtest.New(t, opensearchtest.Options{Seed: 5, RejectItems: 0.05})
	s, reg := newSink(t, fake, func(c *opensearch.Config) { c.BulkBytes = 32 << 10; c.Concurrency = 3 })
	var want []sinktest.Row
	for k := range 5 {
		recs := sinktest.Records(k*1000, 1000)
		bad := map[int]bool{}
		for i := 10 + k; i < 1000; i += 97 {
			recs[i].Payload = "[1,2]" // payload holds objects: numbers in it conflict
			bad[i] = true
		}
		b := sinktest.NewBatch(t, k*1000, recs, 0)
		all := sinktest.RowsOf(t, b)
		if err := write(t, s, b); err != nil {
			t.Fatal(err)
		}
		if len(b.Dead) != len(bad) {
			t.Fatalf("batch %d: %d dead letters, want %d", k, len(b.Dead), len(bad))
		}
		for _, d := range b.Dead {
			if !strings.Contains(d.Error, "mapper_parsing_exception") || !strings.Contains(d.Error, "payload") {
				t.Fatalf("dead letter reason %q does not name the mapping error and field", d.Error)
			}
		}
		for i, r := range all {
			if !bad[i] {
				want = append(want, r)
			}
		}
	}
	st := fake.Stats()
	if st.Rejected < 100 {
		t.Fatalf("only %d items rejected: the fault injection did not run", st.Rejected)
	}
	docs := fake.Documents("sales")
	for _, d := range docs {
		if d.Version != 1 {
			t.Fatalf("document %s written %d times", d.ID, d.Version)
		}
	}
	got, _ := fakeReader(fake).ReadAll(context.Background())
	if d := sinktest.Diff(got, want); d != "" {
		t.Fatal(d)
	}
	retries := metric(t, reg, "streamd_opensearch_item_retries_total", "status", "429")
	if retries != float64(st.Rejected) {
		t.Fatalf("retry metric %v, fake rejected %d", retries, st.Rejected)
	}
	t.Logf("%d documents, %d items rejected and retried, %d mapping errors, %d requests", len(docs), st.Rejected, st.MappingErrors, st.BulkRequests)
}

// metric returns the sum of the samples of the counter family name in reg,
// those with the label value when label is not "".
func metric(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label != "" {
				match := false
				for _, l := range m.GetLabel() {
					match = match || l.GetName() == label && l.GetValue() == value
				}
				if !match {
					continue
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestAddressing(t *testing.T) {
	sch, _ := streamd.NewSchema(
		streamd.Field{Name: "id", Type: streamd.Type{Kind: streamd.KindString}},
		streamd.Field{Name: "part", Type: streamd.Type{Kind: streamd.KindInt32}},
		streamd.Field{Name: "day", Type: streamd.Type{Kind: streamd.KindDate}},
		streamd.Field{Name: "at", Type: streamd.Type{Kind: streamd.KindTimestamp}},
		streamd.Field{Name: "region", Type: streamd.Type{Kind: streamd.KindString}},
		streamd.Field{Name: "v", Type: streamd.Type{Kind: streamd.KindInt64}},
	)
	type row struct {
		id     *string
		part   int32
		day    int32
		region *string
		v      int64
	}
	str := func(s string) *string { return &s }
	batch := func(rows []row) *streamd.Batch {
		b := streamd.NewBatch(sch, "topic/3")
		for i, r := range rows {
			pos := streamd.Position{Offset: int64(10 + i)}
			b.NoteRead(pos, 10)
			b.AddRowMeta(pos, 0)
			if r.id == nil {
				b.Cols[0].AppendNull()
			} else {
				b.Cols[0].AppendBytes([]byte(*r.id))
			}
			b.Cols[1].AppendInt32(r.part)
			b.Cols[2].AppendInt32(r.day)
			b.Cols[3].AppendInt64(int64(r.day)*86_400_000_000 + 3_600_000_000)
			if r.region == nil {
				b.Cols[4].AppendNull()
			} else {
				b.Cols[4].AppendBytes([]byte(*r.region))
			}
			b.Cols[5].AppendInt64(r.v)
		}
		return b
	}
	long := strings.Repeat("x", 600)
	sum := sha256.Sum256([]byte(long))
	tests := []struct {
		name  string
		index string
		id    []string
		rows  []row
		want  []string // index/_id=v of every document
		dead  []string // substrings of the dead-letter reasons
	}{
		{
			name: "single id column, last write wins", index: "sales", id: []string{"id"},
			rows: []row{{id: str("a/1"), v: 1}, {id: str("b"), v: 2}, {id: str("a/1"), v: 3}},
			want: []string{"sales/a/1=3", "sales/b=2"},
		},
		{
			name: "composite id escaped", index: "sales", id: []string{"id", "part"},
			rows: []row{{id: str("a|b"), part: 1, v: 1}, {id: str("a"), part: 0, v: 2}, {id: str(`c\`), part: 7, v: 3}},
			want: []string{`sales/a\|b|1=1`, `sales/a|0=2`, `sales/c\\|7=3`},
		},
		{
			name: "null id dead-lettered, long id hashed", index: "sales", id: []string{"id"},
			rows: []row{{id: nil, v: 1}, {id: str(long), v: 2}},
			want: []string{"sales/sha256-" + hex.EncodeToString(sum[:]) + "=2"},
			dead: []string{`id column "id" is null`},
		},
		{
			name: "no id columns: lane and position", index: "sales",
			rows: []row{{id: str("a"), v: 1}, {id: str("a"), v: 2}},
			want: []string{"sales/" + streamd.LaneToken("topic/3") + "-10=1", "sales/" + streamd.LaneToken("topic/3") + "-11=2"},
		},
		{
			name: "index template from a date and a string", index: "sales-{region}-{day}", id: []string{"id"},
			rows: []row{{id: str("a"), day: 20526, region: str("EU West"), v: 1}, {id: str("b"), day: 20527, region: str("us/east"), v: 2}, {id: str("c"), region: nil, v: 3}},
			want: []string{"sales-eu_west-2026-03-14/a=1", "sales-us_east-2026-03-15/b=2"},
			dead: []string{`index template column "region" is null`},
		},
		{
			name: "index template with a time layout", index: "logs-{at:2006.01}", id: []string{"id"},
			rows: []row{{id: str("a"), day: 20526, v: 1}, {id: str("b"), day: 20560, v: 2}},
			want: []string{"logs-2026.03/a=1", "logs-2026.04/b=2"},
		},
		{
			name: "index template with an integer", index: "p{part}", id: []string{"id"},
			rows: []row{{id: str("a"), part: -4, v: 1}},
			want: []string{"p-4/a=1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := opensearchtest.New(t, opensearchtest.Options{})
			s, _ := newSink(t, fake, func(c *opensearch.Config) { c.Index, c.ID = tc.index, tc.id })
			b := batch(tc.rows)
			if err := write(t, s, b); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range fake.Documents("") {
				var src struct{ V int64 }
				json.Unmarshal(d.Source, &src)
				got = append(got, fmt.Sprintf("%s/%s=%d", d.Index, d.ID, src.V))
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("documents\n got %q\nwant %q", got, tc.want)
			}
			if len(b.Dead) != len(tc.dead) {
				t.Fatalf("dead letters %+v, want %q", b.Dead, tc.dead)
			}
			for i, d := range b.Dead {
				if !strings.Contains(d.Error, tc.dead[i]) {
					t.Errorf("dead letter %q, want %q", d.Error, tc.dead[i])
				}
			}
		})
	}
}

func TestRequestFaults(t *testing.T) {
	recs := sinktest.Records(0, 300)
	tests := []struct {
		name    string
		opts    opensearchtest.Options
		setup   func(*opensearchtest.Server)
		tweak   func(*opensearch.Config)
		wantErr error
		check   func(t *testing.T, fake *opensearchtest.Server, b *streamd.Batch)
	}{
		{
			name:  "whole-request 503 and 429 are retried",
			setup: func(f *opensearchtest.Server) { f.FailNext(2, 503); f.FailNext(2, 429) },
			check: func(t *testing.T, f *opensearchtest.Server, _ *streamd.Batch) {
				if st := f.Stats(); st.RequestFaults != 4 || len(f.Documents("")) != 300 {
					t.Fatalf("faults %d, documents %d", st.RequestFaults, len(f.Documents("")))
				}
			},
		},
		{
			name:    "wrong password fails the write",
			opts:    opensearchtest.Options{Username: "admin", Password: "right"},
			tweak:   func(c *opensearch.Config) { c.Username, c.Password = "admin", "wrong" },
			wantErr: opensearch.ErrRejected,
		},
		{
			name:  "basic auth",
			opts:  opensearchtest.Options{Username: "admin", Password: "right"},
			tweak: func(c *opensearch.Config) { c.Username, c.Password = "admin", "right" },
			check: func(t *testing.T, f *opensearchtest.Server, _ *streamd.Batch) {
				if n := len(f.Documents("")); n != 300 {
					t.Fatalf("documents %d", n)
				}
			},
		},
		{
			name:    "persistent 429 exhausts the retries",
			opts:    opensearchtest.Options{RejectItems: 1},
			tweak:   func(c *opensearch.Config) { c.RetryTimeout = 200 * time.Millisecond },
			wantErr: opensearch.ErrRetriesExhausted,
		},
		{
			name:  "small bulk size splits requests, no gzip",
			tweak: func(c *opensearch.Config) { c.BulkBytes = 8 << 10; c.DisableGzip = true },
			check: func(t *testing.T, f *opensearchtest.Server, _ *streamd.Batch) {
				st := f.Stats()
				if st.BulkRequests < 10 || st.GzipRequests != 0 || len(f.Documents("")) != 300 {
					t.Fatalf("stats %+v", st)
				}
			},
		},
		{
			name: "gzip by default",
			check: func(t *testing.T, f *opensearchtest.Server, _ *streamd.Batch) {
				st := f.Stats()
				if st.BulkRequests != 1 || st.GzipRequests != 1 || st.BulkBytes > 40<<10 {
					t.Fatalf("stats %+v", st)
				}
			},
		},
		{
			name: "413 splits the request until it fits",
			opts: opensearchtest.Options{MaxBodyBytes: 20 << 10},
			check: func(t *testing.T, f *opensearchtest.Server, _ *streamd.Batch) {
				if n := len(f.Documents("")); n != 300 {
					t.Fatalf("documents %d", n)
				}
			},
			tweak: func(c *opensearch.Config) { c.DisableGzip = true },
		},
		{
			name:  "a document over the cluster's limit is dead-lettered",
			opts:  opensearchtest.Options{MaxBodyBytes: 100},
			tweak: func(c *opensearch.Config) { c.DisableGzip = true },
			check: func(t *testing.T, f *opensearchtest.Server, b *streamd.Batch) {
				if len(b.Dead) != 300 || !strings.Contains(b.Dead[0].Error, "413") {
					t.Fatalf("%d dead, first %+v", len(b.Dead), b.Dead[0])
				}
			},
		},
		{
			name:  "a template column routes each row to its own index",
			tweak: func(c *opensearch.Config) { c.Index = "s{id}" },
			check: func(t *testing.T, f *opensearchtest.Server, b *streamd.Batch) {
				if len(f.Indices()) != 300 {
					t.Fatalf("%d indices", len(f.Indices()))
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := opensearchtest.New(t, tc.opts)
			if tc.setup != nil {
				tc.setup(fake)
			}
			s, _ := newSink(t, fake, tc.tweak)
			b := sinktest.NewBatch(t, 0, recs, 0)
			err := write(t, s, b)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("write: %v, want %v", err, tc.wantErr)
			}
			if err != nil && (b.Len() != 300 || len(b.Dead) != 0) {
				t.Fatalf("failed write changed the batch: %d rows %d dead", b.Len(), len(b.Dead))
			}
			if tc.check != nil {
				tc.check(t, fake, b)
			}
		})
	}
}

func TestCreateActionRedo(t *testing.T) {
	// With write-once create, a redo meets its own documents as 409s, which
	// count as success.
	fake := opensearchtest.New(t, opensearchtest.Options{})
	s, reg := newSink(t, fake, func(c *opensearch.Config) { c.Action = opensearch.ActionCreate; c.ID = nil })
	for range 2 {
		b := sinktest.NewBatch(t, 0, sinktest.Records(0, 50), 0)
		if err := write(t, s, b); err != nil {
			t.Fatal(err)
		}
		if b.Len() != 50 || len(b.Dead) != 0 {
			t.Fatalf("%d rows %d dead", b.Len(), len(b.Dead))
		}
	}
	if st := fake.Stats(); st.Conflicts != 50 || len(fake.Documents("")) != 50 {
		t.Fatalf("conflicts %d documents %d", st.Conflicts, len(fake.Documents("")))
	}
	if v := metric(t, reg, "streamd_opensearch_documents_total", "outcome", "indexed"); v != 100 {
		t.Fatalf("indexed metric %v", v)
	}
}

func TestSigV4(t *testing.T) {
	fake := opensearchtest.New(t, opensearchtest.Options{})
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "token")
	var signed, bad int
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
		// Re-sign a copy with the same inputs; the signatures must agree.
		check, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
		check.ContentLength = int64(len(body))
		auth := r.Header.Get("Authorization")
		if i := strings.Index(auth, "SignedHeaders="); i >= 0 {
			list, _, _ := strings.Cut(auth[i+len("SignedHeaders="):], ",")
			for _, h := range strings.Split(list, ";") {
				if h != "host" && h != "content-length" {
					check.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
				}
			}
		}
		c, _ := creds.Retrieve(r.Context())
		if err == nil && r.Header.Get("X-Amz-Content-Sha256") == hash && r.Header.Get("X-Amz-Security-Token") == "token" &&
			v4.NewSigner().SignHTTP(r.Context(), c, check, hash, "aoss", "eu-west-1", when) == nil &&
			check.Header.Get("Authorization") == r.Header.Get("Authorization") {
			signed++
		} else {
			bad++
			http.Error(w, `{"error":{"type":"security_exception","reason":"bad signature"},"status":403}`, http.StatusForbidden)
			return
		}
		r2, _ := http.NewRequest(r.Method, fake.URL+r.URL.RequestURI(), strings.NewReader(string(body)))
		r2.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(r2)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(proxy.Close)
	s, err := opensearch.New(opensearch.Config{
		Pipeline: sinktest.Pipeline, URL: proxy.URL, Index: "sales", ID: []string{"id"},
		SigV4: &opensearch.SigV4{Service: "aoss", Region: "eu-west-1", Credentials: creds},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	b := sinktest.NewBatch(t, 0, sinktest.Records(0, 20), 0)
	if err := write(t, s, b); err != nil {
		t.Fatal(err)
	}
	if signed != 1 || bad != 0 || len(fake.Documents("")) != 20 {
		t.Fatalf("signed %d bad %d documents %d", signed, bad, len(fake.Documents("")))
	}
	// A wrong region fails the signature check: the check can fail.
	s2, _ := opensearch.New(opensearch.Config{
		Pipeline: sinktest.Pipeline, URL: proxy.URL, Index: "sales",
		SigV4: &opensearch.SigV4{Service: "aoss", Region: "us-east-1", Credentials: creds},
	})
	if err := write(t, s2, sinktest.NewBatch(t, 0, sinktest.Records(0, 2), 0)); !errors.Is(err, opensearch.ErrRejected) || bad != 1 {
		t.Fatalf("wrong region: %v (bad %d)", err, bad)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ok := opensearch.Config{Pipeline: "p", URL: "http://127.0.0.1:9200", Index: "sales"}
	creds := aws.AnonymousCredentials{}
	tests := []struct {
		name  string
		tweak func(*opensearch.Config)
	}{
		{"no pipeline", func(c *opensearch.Config) { c.Pipeline = "" }},
		{"bad url", func(c *opensearch.Config) { c.URL = "localhost:9200" }},
		{"no index", func(c *opensearch.Config) { c.Index = "" }},
		{"uppercase index", func(c *opensearch.Config) { c.Index = "Sales" }},
		{"unclosed template", func(c *opensearch.Config) { c.Index = "sales-{day" }},
		{"index starts with _", func(c *opensearch.Config) { c.Index = "_sales" }},
		{"repeated id", func(c *opensearch.Config) { c.ID = []string{"a", "a"} }},
		{"bad action", func(c *opensearch.Config) { c.Action = "upsert" }},
		{"sigv4 and basic", func(c *opensearch.Config) {
			c.Username = "u"
			c.SigV4 = &opensearch.SigV4{Region: "r", Credentials: creds}
		}},
		{"sigv4 bad service", func(c *opensearch.Config) {
			c.SigV4 = &opensearch.SigV4{Service: "s3", Region: "r", Credentials: creds}
		}},
		{"sigv4 no region", func(c *opensearch.Config) { c.SigV4 = &opensearch.SigV4{Credentials: creds} }},
		{"negative bulk", func(c *opensearch.Config) { c.BulkBytes = -1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.tweak(&c)
			if _, err := opensearch.New(c); !errors.Is(err, opensearch.ErrBadConfig) {
				t.Fatalf("New: %v, want ErrBadConfig", err)
			}
		})
	}
	if _, err := opensearch.New(ok); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}

func TestWriteChecks(t *testing.T) {
	fake := opensearchtest.New(t, opensearchtest.Options{})
	tests := []struct {
		name  string
		tweak func(*opensearch.Config)
		in    func(streamd.Intent) streamd.Intent
		close bool
		want  error
	}{
		{"unknown id column", func(c *opensearch.Config) { c.ID = []string{"nope"} }, nil, false, opensearch.ErrBadConfig},
		{"unknown template column", func(c *opensearch.Config) { c.Index = "s-{nope}" }, nil, false, opensearch.ErrBadConfig},
		{"template on json", func(c *opensearch.Config) { c.Index = "s-{payload}" }, nil, false, opensearch.ErrBadConfig},
		{"layout on a string", func(c *opensearch.Config) { c.Index = "s-{id:2006}" }, nil, false, opensearch.ErrBadConfig},
		{"other pipeline", nil, func(in streamd.Intent) streamd.Intent { in.Pipeline = "other"; return in }, false, opensearch.ErrIntentMismatch},
		{"closed", nil, nil, true, opensearch.ErrClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSink(t, fake, tc.tweak)
			if tc.close {
				s.Close(context.Background())
			}
			b := sinktest.NewBatch(t, 0, sinktest.Records(0, 3), 0)
			in := sinktest.IntentOf(b)
			if tc.in != nil {
				in = tc.in(in)
			}
			if err := s.Write(context.Background(), in, b); !errors.Is(err, tc.want) {
				t.Fatalf("Write: %v, want %v", err, tc.want)
			}
		})
	}
	if n := len(fake.Documents("")); n != 0 {
		t.Fatalf("%d documents written by failed writes", n)
	}
}
