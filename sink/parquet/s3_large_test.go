package parquet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	pq "github.com/parquet-go/parquet-go"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/sink/objstore/s3store"
)

// s3Client is a client for endpoint with the store's retry policy and short
// backoffs.
func s3Client(peer *testenv.S3Peer, endpoint string) *s3.Client {
	return s3.NewFromConfig(peer.Config(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.Retryer = s3store.NewRetryer(10, 50*time.Millisecond)
	})
}

func openUploads(t testing.TB, c *s3.Client, bucket string) []string {
	t.Helper()
	out, err := c.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

// s3Object is an object read through ranged GETs, for reading footers
// without downloading whole files.
type s3Object struct {
	ctx         context.Context
	c           *s3.Client
	bucket, key string
}

func (o s3Object) ReadAt(p []byte, off int64) (int, error) {
	out, err := o.c.GetObject(o.ctx, &s3.GetObjectInput{
		Bucket: aws.String(o.bucket), Key: aws.String(o.key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1)),
	})
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	return io.ReadFull(out.Body, p)
}

// objectInfo returns an object's size, SHA-256 and row count (from its
// footer, read with parquet-go's reader).
func objectInfo(t testing.TB, c *s3.Client, bucket, key string) (int64, [32]byte, int64) {
	t.Helper()
	ctx := context.Background()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	out.Body.Close()
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	f, err := pq.OpenFile(s3Object{ctx, c, bucket, key}, n, pq.SkipPageIndex(true), pq.SkipBloomFilters(true))
	if err != nil {
		t.Fatalf("open parquet footer of %s: %v", key, err)
	}
	return n, [32]byte(h.Sum(nil)), f.NumRows()
}

// peakHeap samples the heap in use until stop is called, which returns
// the largest sample.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// largeRows is the row count of one large batch: with 1000-byte payloads
// (about 1022 bytes per row estimated) just under twice the default target,
// so each batch becomes two files of about 128 MiB.
const largeRows = 2 * DefaultTargetFileBytes / 1022 * 999 / 1000

// TestS3LargeFilesUnderFaults writes about 1 GiB of incompressible Parquet
// through the S3 store and a proxy injecting 500s, 503 SlowDowns, dropped
// requests and lost responses, with If-None-Match on. Every batch is split
// into two files near the 128 MiB target, streamed through multipart
// uploads. Every object must be complete and byte-identical to a local
// encoding of its rows, with no partial object and no open upload left.
func TestS3LargeFilesUnderFaults(t *testing.T) {
	batches := 4
	if raceEnabled {
		batches = 1 // the race detector slows encoding several times
	}
	peer := testenv.MinIO(t)
	peer.CreateBucket(t, "large")
	proxy := testenv.NewFaultProxy(t, peer.Endpoint, testenv.Faults{
		Seed:          6,
		InternalError: 0.04,
		SlowDown:      0.04,
		DropRequest:   0.04,
		DropResponse:  0.03,
		MaxFaults:     300,
	})
	store := s3store.New(s3Client(peer, proxy.URL), "large", "out", s3store.WithIfNoneMatch(true))
	s, err := New(store, "sales", Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	direct := s3Client(peer, peer.Endpoint)
	stopPeak := peakHeap()
	var total int64
	var redos int
	for k := range batches {
		b := blobBatch(t, uint64(100+k), k*largeRows, largeRows, 1000)
		in := intentOf(b)
		for attempt := 0; ; attempt++ {
			err := s.Write(context.Background(), in, b)
			if err == nil {
				break
			}
			redos++
			t.Logf("batch %d attempt %d failed, redoing: %v", k, attempt, err)
			if attempt == 4 {
				t.Fatalf("batch %d failed 5 times", k)
			}
		}
		// Verify this batch's files now, so that only one batch is in
		// memory at a time. The footer says where the split fell; the
		// bytes must be exactly a local encoding of those rows.
		enc, err := NewEncoder(b.Schema, EncoderOptions{RowGroupBytes: DefaultRowGroupBytes})
		if err != nil {
			t.Fatal(err)
		}
		base := "out/sales-" + streamd.LaneToken(in.Lane) + "-" + in.From.String() + "-" + in.To.String()
		first := 0
		for part := 1; part <= 2; part++ {
			key := fmt.Sprintf("%s-p%04d.parquet", base, part)
			size, sum, rows := objectInfo(t, direct, "large", key)
			if rows < largeRows/2-largeRows/100 || rows > largeRows/2+largeRows/100 {
				t.Errorf("%s: %d rows, want about half of %d", key, rows, largeRows)
			}
			if size < 120<<20 || size > DefaultTargetFileBytes {
				t.Errorf("%s: %d bytes, want just under the 128 MiB target", key, size)
			}
			h := sha256.New()
			if err := enc.Encode(h, b, allRows(b.Len())[first:first+int(rows)]); err != nil {
				t.Fatal(err)
			}
			if [32]byte(h.Sum(nil)) != sum {
				t.Errorf("%s differs from a local encoding of rows [%d,%d)", key, first, first+int(rows))
			}
			first += int(rows)
			total += size
			t.Logf("%s: %d bytes, %d rows", key, size, rows)
		}
		if first != b.Len() {
			t.Errorf("batch %d: files hold %d rows, batch %d", k, first, b.Len())
		}
		b = nil
		runtime.GC()
	}
	peak := stopPeak()
	c := proxy.Counts()
	t.Logf("%d MiB in %d files; proxy: %v; batch redos: %d; peak heap in use %d MiB", total>>20, 2*batches, c, redos, peak>>20)
	if c.InternalError == 0 || c.SlowDown == 0 || c.DropRequest == 0 || c.DropResponse == 0 {
		t.Errorf("not every fault kind was injected: %v", c)
	}
	if peak > 1200<<20 {
		t.Errorf("peak heap %d MiB", peak>>20)
	}
	proxy.SetEnabled(false)
	out, err := direct.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("large")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 2*batches {
		var keys []string
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		t.Errorf("bucket holds %d objects, want %d: %q", len(out.Contents), 2*batches, keys)
	}
	if u := openUploads(t, direct, "large"); len(u) != 0 {
		t.Errorf("multipart uploads left open: %q", u)
	}
}

// TestS3StreamFailures cuts large streamed files short, by cancellation
// and by an encoding error after row groups went out: no object and no
// multipart upload may remain. It also checks If-None-Match through the
// sink: a redo succeeds, different content for the same intent fails
// with ErrObjectDiffers and leaves the object untouched.
func TestS3StreamFailures(t *testing.T) {
	peer := testenv.MinIO(t)
	direct := s3Client(peer, peer.Endpoint)

	t.Run("Cancel", func(t *testing.T) {
		peer.CreateBucket(t, "cancel")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var parts atomic.Int64
		proxy := testenv.NewFaultProxy(t, peer.Endpoint, testenv.Faults{Match: func(r *http.Request) bool {
			if r.URL.Query().Has("partNumber") && parts.Add(1) == 2 {
				cancel()
			}
			return false
		}})
		s, err := New(s3store.New(s3Client(peer, proxy.URL), "cancel", ""), "sales", Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b := blobBatch(t, 7, 0, 48<<10, 1000) // ≈ 48 MiB: streamed, 6 parts
		err = s.Write(ctx, intentOf(b), b)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Write = %v, want context.Canceled", err)
		}
		if parts.Load() < 2 {
			t.Fatalf("cancelled before the upload started (%d parts)", parts.Load())
		}
		assertEmpty(t, direct, "cancel")
	})

	t.Run("EncodeError", func(t *testing.T) {
		peer.CreateBucket(t, "encerr")
		b := streamd.NewBatch(mustSchema(t, "id:int64", "amount:decimal(9,2)", "payload:binary"), "blobs/0")
		payload := bytes.Repeat([]byte("0123456789abcdef"), 64)
		const n = 32 << 10 // ≈ 33 MiB estimated
		for i := range n {
			b.Cols[0].AppendInt64(int64(i))
			v := int64(i)
			if i == n-1 {
				v = 1 << 40 // does not fit decimal(9,2): fails the last row group
			}
			b.Cols[1].AppendInt64(v)
			b.Cols[2].AppendBytes(payload)
			b.NoteRead(streamd.Position{Offset: int64(i)}, 1)
			b.AddRowMeta(streamd.Position{Offset: int64(i)}, 0)
		}
		var parts atomic.Int64
		proxy := testenv.NewFaultProxy(t, peer.Endpoint, testenv.Faults{Match: func(r *http.Request) bool {
			if r.URL.Query().Has("partNumber") {
				parts.Add(1)
			}
			return false
		}})
		s, err := New(s3store.New(s3Client(peer, proxy.URL), "encerr", "", s3store.WithPartSize(5<<20)), "sales",
			Options{Compression: None, RowGroupBytes: 8 << 20}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Write(context.Background(), intentOf(b), b)
		if !errors.Is(err, ErrBadValue) {
			t.Fatalf("Write = %v, want ErrBadValue", err)
		}
		if parts.Load() == 0 {
			t.Fatal("no part was uploaded before the error: the file was not streamed")
		}
		assertEmpty(t, direct, "encerr")
	})

	t.Run("IfNoneMatch", func(t *testing.T) {
		peer.CreateBucket(t, "inm")
		s, err := New(s3store.New(direct, "inm", "", s3store.WithIfNoneMatch(true)), "sales", Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b := blobBatch(t, 8, 0, 20<<10, 1000) // ≈ 20 MiB: streamed, multipart
		in := intentOf(b)
		ctx := context.Background()
		if err := s.Write(ctx, in, b); err != nil {
			t.Fatal(err)
		}
		key := "sales-" + streamd.LaneToken(in.Lane) + "-" + in.From.String() + "-" + in.To.String() + ".parquet"
		_, sum, _ := objectInfo(t, direct, "inm", key)
		if err := s.Write(ctx, in, b); err != nil {
			t.Fatalf("redo: %v", err)
		}
		other := blobBatch(t, 9, 0, 20<<10, 1000)
		err = s.Write(ctx, in, other)
		if !errors.Is(err, s3store.ErrObjectDiffers) || !strings.Contains(err.Error(), key) {
			t.Fatalf("Write of other content = %v, want ErrObjectDiffers naming %s", err, key)
		}
		if _, after, _ := objectInfo(t, direct, "inm", key); after != sum {
			t.Fatal("the existing object was changed")
		}
		if u := openUploads(t, direct, "inm"); len(u) != 0 {
			t.Fatalf("uploads left open: %q", u)
		}
	})
}

func assertEmpty(t *testing.T, c *s3.Client, bucket string) {
	t.Helper()
	out, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 0 {
		t.Errorf("objects visible after a failed write: %d", len(out.Contents))
	}
	if u := openUploads(t, c, bucket); len(u) != 0 {
		t.Errorf("multipart uploads left open: %q", u)
	}
}

// BenchmarkS3LargeFile encodes and uploads one file near the 128 MiB
// target to MinIO (no faults), reporting throughput of the object's bytes
// and the heap the sink used on top of the batch (peak heap in use minus
// the heap in use before the write).
func BenchmarkS3LargeFile(b *testing.B) {
	peer := testenv.MinIO(b)
	peer.CreateBucket(b, "bench")
	store := s3store.New(s3Client(peer, peer.Endpoint), "bench", "")
	s, err := New(store, "sales", Options{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	batch := blobBatch(b, 1, 0, largeRows/2, 1000)
	in := intentOf(batch)
	key := "sales-" + streamd.LaneToken(in.Lane) + "-" + in.From.String() + "-" + in.To.String() + ".parquet"
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	stop := peakHeap()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Write(context.Background(), in, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	peak := stop()
	head, err := store.Get(context.Background(), key)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, head)
	head.Close()
	b.SetBytes(n)
	b.ReportMetric(float64(peak-min(base, peak))/(1<<20), "sink-peak-heap-MiB")
	b.ReportMetric(float64(n)/(1<<20), "file-MiB")
}
