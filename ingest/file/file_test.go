package file_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/file"
)

// memResumer is a Resumer over a map, standing in for the checkpoint store.
type memResumer struct {
	mu  sync.Mutex
	pos map[string]streamd.Position
}

func (m *memResumer) Resume(_ context.Context, lane string) (streamd.Position, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pos[lane]
	return p, ok, nil
}

type laneResult struct {
	recs   []streamd.Record
	header string
	ends   int
}

type streamdPosition = streamd.Position

func collect(t *testing.T, src ingest.Source, res ingest.Resumer) (map[string]*laneResult, error) {
	t.Helper()
	out := make(chan ingest.Chunk, 4)
	errc := make(chan error, 1)
	go func() { errc <- src.Run(context.Background(), res, out); close(out) }()
	got := map[string]*laneResult{}
	for c := range out {
		r := got[c.Lane]
		if r == nil {
			r = &laneResult{}
			got[c.Lane] = r
		}
		for _, rec := range c.Records {
			rec.Data = bytes.Clone(rec.Data)
			r.recs = append(r.recs, rec)
		}
		r.header = string(c.Header)
		if c.End {
			r.ends++
		}
	}
	return got, <-errc
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if strings.HasSuffix(path, ".gz") {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(content))
		zw.Close()
		content = b.String()
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadsLinesWithOffsets(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.jsonl"), "{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}")
	write(t, filepath.Join(dir, "b.jsonl.gz"), "{\"b\":1}\n{\"b\":2}\n")
	src, err := file.New(file.Config{Paths: []string{filepath.Join(dir, "*.jsonl*")}, ChunkRecords: 2})
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, src, &memResumer{})
	if err != nil {
		t.Fatal(err)
	}
	a := got[filepath.Join(dir, "a.jsonl")]
	want := []struct {
		data string
		off  int64
	}{{`{"a":1}`, 0}, {`{"a":2}`, 9}, {`{"a":3}`, 18}}
	if a == nil || len(a.recs) != len(want) {
		t.Fatalf("lane a: got %+v", a)
	}
	for i, w := range want {
		if string(a.recs[i].Data) != w.data || a.recs[i].Pos.Offset != w.off {
			t.Errorf("record %d: got %q at %d, want %q at %d", i, a.recs[i].Data, a.recs[i].Pos.Offset, w.data, w.off)
		}
	}
	if a.ends != 1 {
		t.Errorf("lane a ended %d times, want 1", a.ends)
	}
	b := got[filepath.Join(dir, "b.jsonl.gz")]
	if b == nil || len(b.recs) != 2 || string(b.recs[1].Data) != `{"b":2}` || b.recs[1].Pos.Offset != 8 {
		t.Fatalf("gzip lane: got %+v", b)
	}
}

func TestResumeAfterCommittedPosition(t *testing.T) {
	dir := t.TempDir()
	var sb strings.Builder
	var offs []int64
	for i := 0; i < 100; i++ {
		offs = append(offs, int64(sb.Len()))
		fmt.Fprintf(&sb, "{\"n\":%d}\n", i)
	}
	for _, name := range []string{"x.jsonl", "x.jsonl.gz"} {
		p := filepath.Join(dir, name)
		write(t, p, sb.String())
		src, err := file.New(file.Config{Paths: []string{p}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := collect(t, src, &memResumer{pos: map[string]streamd.Position{p: {Offset: offs[41]}}})
		if err != nil {
			t.Fatal(err)
		}
		r := got[p]
		if len(r.recs) != 58 || string(r.recs[0].Data) != `{"n":42}` || r.recs[0].Pos.Offset != offs[42] {
			t.Fatalf("%s: resumed with %d records, first %q", name, len(r.recs), r.recs[0].Data)
		}
		// Resuming after the last record yields only the end of the lane.
		got, err = collect(t, src, &memResumer{pos: map[string]streamd.Position{p: {Offset: offs[99]}}})
		if err != nil {
			t.Fatal(err)
		}
		if r := got[p]; len(r.recs) != 0 || r.ends != 1 {
			t.Fatalf("%s: resumed at the end: got %d records, %d ends", name, len(r.recs), r.ends)
		}
	}
}

func TestOversizedLineIsMarkedNotFatal(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big.jsonl")
	long := strings.Repeat("x", 5000)
	write(t, p, "{\"ok\":1}\n"+long+"\n{\"ok\":2}\n"+strings.Repeat("y", 300000)+"\n{\"ok\":3}")
	src, err := file.New(file.Config{Paths: []string{p}, MaxRecordSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, src, &memResumer{})
	if err != nil {
		t.Fatal(err)
	}
	r := got[p]
	if len(r.recs) != 5 {
		t.Fatalf("got %d records, want 5", len(r.recs))
	}
	for i, wantErr := range []bool{false, true, false, true, false} {
		rec := r.recs[i]
		if (rec.Err != "") != wantErr {
			t.Errorf("record %d: err %q, want error=%v", i, rec.Err, wantErr)
		}
		if wantErr && (len(rec.Data) != 1000 || !strings.Contains(rec.Err, "exceeds max_record_size")) {
			t.Errorf("record %d: %d raw bytes, err %q", i, len(rec.Data), rec.Err)
		}
	}
	if string(r.recs[4].Data) != `{"ok":3}` || r.recs[4].Pos.Offset != int64(9+5001+9+300001) {
		t.Errorf("last record %q at %d", r.recs[4].Data, r.recs[4].Pos.Offset)
	}
}

func TestCSVHeaderTravelsWithEveryChunk(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.csv")
	write(t, p, "id,qty\n1,2\n3,4\n5,6\n")
	src, err := file.New(file.Config{Paths: []string{p}, Format: "csv"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, src, &memResumer{pos: map[string]streamd.Position{p: {Offset: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	r := got[p]
	if r.header != "id,qty" || len(r.recs) != 2 || string(r.recs[0].Data) != "3,4" {
		t.Fatalf("got header %q, records %+v", r.header, r.recs)
	}
}

func TestFailures(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "bad.jsonl.gz")
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(zw, "{\"n\":%d,\"pad\":\"%s\"}\n", i, strings.Repeat("z", i%50))
	}
	zw.Close()
	data := b.Bytes()
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(corrupt, data, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("NoMatch", func(t *testing.T) {
		src, err := file.New(file.Config{Paths: []string{filepath.Join(dir, "none-*.jsonl")}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = collect(t, src, &memResumer{})
		if !errors.Is(err, file.ErrNoFiles) {
			t.Fatalf("got %v, want ErrNoFiles", err)
		}
	})
	t.Run("BadConfig", func(t *testing.T) {
		for _, cfg := range []file.Config{{}, {Paths: []string{"x"}, Format: "xml"}, {Paths: []string{"[x"}}} {
			if _, err := file.New(cfg); err == nil {
				t.Errorf("config %+v: want an error", cfg)
			}
		}
	})
	t.Run("S3WithoutOpener", func(t *testing.T) {
		src, _ := file.New(file.Config{Paths: []string{"s3://bucket/x/*.jsonl"}})
		if _, err := collect(t, src, &memResumer{}); err == nil || !strings.Contains(err.Error(), "s3") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("CorruptGzipEndsLaneWithDeadLetter", func(t *testing.T) {
		src, _ := file.New(file.Config{Paths: []string{corrupt}})
		got, err := collect(t, src, &memResumer{})
		if err != nil {
			t.Fatal(err)
		}
		r := got[corrupt]
		last := r.recs[len(r.recs)-1]
		if r.ends != 1 || last.Err == "" || !strings.Contains(last.Err, "bad.jsonl.gz") {
			t.Fatalf("got %d records, %d ends, last err %q", len(r.recs), r.ends, last.Err)
		}
		for _, rec := range r.recs[:len(r.recs)-1] {
			if rec.Err != "" {
				t.Fatalf("unexpected error record %+v", rec)
			}
		}
	})
}

// flakyBucket serves one object whose transfer breaks after cut bytes on
// the first breaks Gets.
type flakyBucket struct {
	mu     sync.Mutex
	data   []byte
	cut    int
	breaks int
	gets   int
}

type brokenReader struct {
	r   *bytes.Reader
	n   int
	cut int
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n >= b.cut {
		return 0, errors.New("connection reset by peer")
	}
	if len(p) > b.cut-b.n {
		p = p[:b.cut-b.n]
	}
	n, err := b.r.Read(p)
	b.n += n
	return n, err
}

func (f *flakyBucket) Get(_ context.Context, name string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	if f.gets <= f.breaks {
		return io.NopCloser(&brokenReader{r: bytes.NewReader(f.data), cut: f.cut * f.gets}), nil
	}
	return io.NopCloser(bytes.NewReader(f.data)), nil
}

func (f *flakyBucket) List(_ context.Context, prefix string, fn func(string) error) error {
	return fn("in/sales.jsonl")
}

// numberedLines returns n JSON lines {"n":0} to {"n":n-1}.
func numberedLines(n int) []byte {
	var b []byte
	for i := range n {
		b = fmt.Appendf(b, "{\"n\":%d}\n", i)
	}
	return b
}

// readNumbered reads s3://b/in/*.jsonl from bucket, retrying broken
// transfers, in 100-record chunks, and fails unless its one object gave
// the n lines of numberedLines(n), in order and without errors, and ended
// once.
func readNumbered(t *testing.T, bucket file.ObjectReader, n int) {
	t.Helper()
	src, err := file.New(file.Config{Paths: []string{"s3://b/in/*.jsonl"}, ChunkRecords: 100, RetryBackoff: time.Millisecond,
		OpenBucket: func(context.Context, string) (file.ObjectReader, error) { return bucket, nil }})
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, src, &memResumer{})
	if err != nil {
		t.Fatal(err)
	}
	r := got["s3://b/in/sales.jsonl"]
	if len(r.recs) != n || r.ends != 1 {
		t.Fatalf("got %d records, %d ends; want %d, 1", len(r.recs), r.ends, n)
	}
	for i, rec := range r.recs {
		if want := fmt.Sprintf("{\"n\":%d}", i); string(rec.Data) != want || rec.Err != "" {
			t.Fatalf("record %d is %q (err %q), want %q", i, rec.Data, rec.Err, want)
		}
	}
}

func TestRemoteTransferBreaksAreResumed(t *testing.T) {
	data := numberedLines(5000)
	for _, breaks := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d breaks", breaks), func(t *testing.T) {
			fb := &flakyBucket{data: data, cut: 10000, breaks: breaks}
			readNumbered(t, fb, 5000)
			if fb.gets != breaks+1 {
				t.Fatalf("%d gets, want %d", fb.gets, breaks+1)
			}
		})
	}
	// A transfer that keeps breaking ends the lane with a dead letter.
	fb := &flakyBucket{data: data, cut: 1000, breaks: 100}
	src, _ := file.New(file.Config{Paths: []string{"s3://b/in/*.jsonl"}, ReadAttempts: 3, RetryBackoff: time.Millisecond,
		OpenBucket: func(context.Context, string) (file.ObjectReader, error) { return fb, nil }})
	got, err := collect(t, src, &memResumer{})
	if err != nil {
		t.Fatal(err)
	}
	r := got["s3://b/in/sales.jsonl"]
	last := r.recs[len(r.recs)-1]
	if fb.gets != 3 || !strings.Contains(last.Err, "connection reset") || r.ends != 1 {
		t.Fatalf("gets %d, last %+v", fb.gets, last)
	}
}

// rangedBucket is a flakyBucket that also serves ranged GETs, counting
// the bytes it transfers.
type rangedBucket struct {
	flakyBucket
	offsets []int64
	served  int64
}

func (r *rangedBucket) GetFrom(_ context.Context, name string, off int64) (io.ReadCloser, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gets++
	r.offsets = append(r.offsets, off)
	rest := r.data[min(off, int64(len(r.data))):]
	if r.gets <= r.breaks {
		return io.NopCloser(&countingReader{r: &brokenReader{r: bytes.NewReader(rest), cut: r.cut}, n: &r.served}), nil
	}
	return io.NopCloser(&countingReader{r: bytes.NewReader(rest), n: &r.served}), nil
}

func (r *rangedBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return r.GetFrom(ctx, name, 0)
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// TestRangedReopenReadsOnlyTheRest: a store that serves ranged GETs is
// reopened after the last record handed on, and a committed lane resumes
// there: the object is transferred about once, not once per attempt.
func TestRangedReopenReadsOnlyTheRest(t *testing.T) {
	data := numberedLines(5000)
	rb := &rangedBucket{flakyBucket: flakyBucket{data: data, cut: 10000, breaks: 4}}
	readNumbered(t, rb, 5000)
	if rb.gets != 5 || rb.offsets[0] != 0 || rb.offsets[4] == 0 || rb.served > int64(len(data))*12/10 {
		t.Fatalf("%d gets at offsets %v transferred %d bytes of a %d-byte object", rb.gets, rb.offsets, rb.served, len(data))
	}

	// A committed lane resumes with a ranged GET at its last record.
	rb2 := &rangedBucket{flakyBucket: flakyBucket{data: data}}
	src2, _ := file.New(file.Config{Paths: []string{"s3://b/in/*.jsonl"}, ChunkRecords: 100,
		OpenBucket: func(context.Context, string) (file.ObjectReader, error) { return rb2, nil }})
	at := int64(bytes.Index(data, []byte("{\"n\":4000}")))
	got, err := collect(t, src2, &memResumer{pos: map[string]streamd.Position{"s3://b/in/sales.jsonl": {Offset: at}}})
	if err != nil {
		t.Fatal(err)
	}
	r := got["s3://b/in/sales.jsonl"]
	if len(r.recs) != 999 || string(r.recs[0].Data) != "{\"n\":4001}" || r.recs[0].Pos.Offset != at+int64(len("{\"n\":4000}\n")) {
		t.Fatalf("resumed with %d records, first %q at %d", len(r.recs), r.recs[0].Data, r.recs[0].Pos.Offset)
	}
	if len(rb2.offsets) != 1 || rb2.offsets[0] != at {
		t.Fatalf("resume opened at %v, want [%d]", rb2.offsets, at)
	}
}
