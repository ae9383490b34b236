package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/sink"
	"github.com/streamd/streamd/sink/objstore/objstoretest"
	"github.com/streamd/streamd/sink/objstore/s3store"
)

const minPart = 5 << 20

// fastClient is an S3 client for endpoint with the store's retry policy but
// short backoffs, so fault tests run quickly.
func fastClient(peer *testenv.S3Peer, endpoint string) *s3.Client {
	return s3.NewFromConfig(peer.Config(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.Retryer = s3store.NewRetryer(10, 50*time.Millisecond)
	})
}

func listUploads(t testing.TB, c *s3.Client, bucket string) []string {
	t.Helper()
	out, err := c.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key)+"#"+aws.ToString(u.UploadId))
	}
	return keys
}

func TestS3(t *testing.T) {
	peer := testenv.MinIO(t)
	direct := fastClient(peer, peer.Endpoint)
	var n atomic.Int64
	newBucket := func(t *testing.T) string {
		b := fmt.Sprintf("b%03d", n.Add(1))
		peer.CreateBucket(t, b)
		return b
	}

	t.Run("Acceptance", func(t *testing.T) {
		objstoretest.Run(t, func(t *testing.T) sink.ObjectStore {
			b := newBucket(t)
			t.Cleanup(func() {
				if u := listUploads(t, direct, b); len(u) != 0 {
					t.Errorf("multipart uploads left behind: %q", u)
				}
			})
			return s3store.New(direct, b, "some/prefix", s3store.WithPartSize(minPart), s3store.WithConcurrency(2))
		})
	})

	t.Run("AcceptanceWholeBucket", func(t *testing.T) {
		objstoretest.Run(t, func(t *testing.T) sink.ObjectStore {
			return s3store.New(direct, newBucket(t), "", s3store.WithPartSize(minPart))
		})
	})

	t.Run("PrefixIsolation", func(t *testing.T) {
		b := newBucket(t)
		a := s3store.New(direct, b, "/a/")
		other := s3store.New(direct, b, "ab")
		objstoretest.MustPut(t, a, "x", []byte("1"))
		objstoretest.MustPut(t, other, "y", []byte("2"))
		if got := objstoretest.MustList(t, a, ""); len(got) != 1 || got[0] != "x" {
			t.Fatalf("List under a/ = %q", got)
		}
		if a.Key("x") != "a/x" {
			t.Fatalf("Key = %q", a.Key("x"))
		}
		objstoretest.AssertMissing(t, other, "x")
	})

	t.Run("MissingBucketIsNotErrNotExist", func(t *testing.T) {
		s := s3store.New(direct, "no-such-bucket", "")
		_, err := s.Get(context.Background(), "x")
		if err == nil || errors.Is(err, sink.ErrNotExist) {
			t.Fatalf("Get from a missing bucket = %v, want an error that is not ErrNotExist", err)
		}
		if err := s.Put(context.Background(), "x", strings.NewReader("x")); err == nil {
			t.Fatal("Put into a missing bucket succeeded")
		}
	})

	t.Run("FailedMultipartIsAborted", func(t *testing.T) {
		// Every UploadPart after the first fails for good: the manager
		// gives up, and no upload, part or object may remain.
		b := newBucket(t)
		var parts atomic.Int64
		proxy := testenv.NewFaultProxy(t, peer.Endpoint, testenv.Faults{
			InternalError: 1,
			Match: func(r *http.Request) bool {
				return r.Method == http.MethodPut && r.URL.Query().Has("partNumber") && parts.Add(1) > 1
			},
		})
		c := s3.NewFromConfig(peer.Config(), func(o *s3.Options) {
			o.BaseEndpoint = aws.String(proxy.URL)
			o.UsePathStyle = true
			o.Retryer = s3store.NewRetryer(3, 10*time.Millisecond)
		})
		s := s3store.New(c, b, "", s3store.WithPartSize(minPart), s3store.WithConcurrency(1))
		err := s.Put(context.Background(), "big", bytes.NewReader(objstoretest.RandomBytes(1, 3*minPart)))
		if err == nil {
			t.Fatal("Put succeeded although parts failed")
		}
		if proxy.Counts().InternalError == 0 {
			t.Fatal("the proxy injected nothing")
		}
		objstoretest.AssertMissing(t, s3store.New(direct, b, ""), "big")
		if u := listUploads(t, direct, b); len(u) != 0 {
			t.Fatalf("failed Put left multipart uploads: %q", u)
		}
	})

	t.Run("StrayUploadsSwept", func(t *testing.T) {
		// A CreateMultipartUpload whose response is lost is retried; the
		// first upload exists on the server but the manager never learns
		// its ID. The store must find and abort it.
		b := newBucket(t)
		var creates atomic.Int64
		proxy := testenv.NewFaultProxy(t, peer.Endpoint, testenv.Faults{
			DropResponse: 1, Seed: 1,
			Match: func(r *http.Request) bool {
				return r.Method == http.MethodPost && r.URL.Query().Has("uploads") && creates.Add(1) == 1
			},
		})
		s := s3store.New(fastClient(peer, proxy.URL), b, "", s3store.WithPartSize(minPart))
		data := objstoretest.RandomBytes(2, 2*minPart+1)
		objstoretest.MustPut(t, s, "obj", data)
		if proxy.Counts().DropResponse != 1 {
			t.Fatalf("counts %v, want one dropped response", proxy.Counts())
		}
		if got := objstoretest.MustGet(t, s3store.New(direct, b, ""), "obj"); !bytes.Equal(got, data) {
			t.Fatal("object differs")
		}
		if u := listUploads(t, direct, b); len(u) != 0 {
			t.Fatalf("orphaned uploads left: %q", u)
		}
	})

	t.Run("Faults", func(t *testing.T) { testFaults(t, peer, newBucket(t)) })
}

// testFaults puts many random objects, small and multipart, through a proxy
// that injects every kind of fault; every object must end up complete and
// byte-identical, with no partial object listed and no upload left.
func testFaults(t *testing.T, peer *testenv.S3Peer, bucket string) {
	proxy := testenv.NewFaultProxy(t, peer.Endpoint, testenv.Faults{
		Seed:          42,
		InternalError: 0.08,
		SlowDown:      0.08,
		Slow:          0.05,
		SlowDelay:     100 * time.Millisecond,
		DropRequest:   0.08,
		DropResponse:  0.06,
		MaxFaults:     2000,
	})
	s := s3store.New(fastClient(peer, proxy.URL), bucket, "out", s3store.WithPartSize(minPart), s3store.WithConcurrency(2))
	type obj struct {
		name string
		data []byte
	}
	var objs []obj
	for i := range 64 {
		size := 1 + (i*7919)%200000
		if i%8 == 0 {
			size = 2*minPart + i*1000 // multipart
		}
		objs = append(objs, obj{fmt.Sprintf("k=%d/part-%03d.parquet", i%3, i), objstoretest.RandomBytes(uint64(1000+i), size)})
	}
	var wg sync.WaitGroup
	var failedPuts atomic.Int64
	sem := make(chan struct{}, 4)
	for _, o := range objs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			// A Put that gives up is redone, as the pipeline redoes an
			// intent; bounded.
			for attempt := 0; ; attempt++ {
				err := s.Put(context.Background(), o.name, bytes.NewReader(o.data))
				if err == nil {
					return
				}
				failedPuts.Add(1)
				if attempt == 5 {
					t.Errorf("Put %s failed 6 times: %v", o.name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	c := proxy.Counts()
	t.Logf("proxy: %v; Puts that gave up and were redone: %d", c, failedPuts.Load())
	if c.InternalError == 0 || c.SlowDown == 0 || c.DropRequest == 0 || c.DropResponse == 0 || c.Slow == 0 {
		t.Fatalf("not every fault kind was injected: %v", c)
	}
	proxy.SetEnabled(false)
	direct := fastClient(peer, peer.Endpoint)
	check := s3store.New(direct, bucket, "out")
	names := objstoretest.MustList(t, check, "")
	if len(names) != len(objs) {
		t.Errorf("listed %d objects, want %d: %q", len(names), len(objs), names)
	}
	for _, o := range objs {
		if got := objstoretest.MustGet(t, check, o.name); !bytes.Equal(got, o.data) {
			t.Errorf("%s: read %d bytes that differ from the %d put", o.name, len(got), len(o.data))
		}
	}
	if u := listUploads(t, direct, bucket); len(u) != 0 {
		t.Errorf("multipart uploads left behind: %q", u)
	}
}

func TestOpen(t *testing.T) {
	peer := testenv.MinIO(t)
	peer.CreateBucket(t, "opened")
	bundles := []string{""}
	// A machine-wide CA bundle must not break Open (the SDK refuses a
	// custom *http.Client with one set; Open uses the SDK's own).
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		bundles = append(bundles, "/etc/ssl/certs/ca-certificates.crt")
	}
	for _, bundle := range bundles {
		t.Run("ca_bundle="+bundle, func(t *testing.T) {
			peer.SetEnv(t, peer.Endpoint)
			t.Setenv("AWS_CA_BUNDLE", bundle)
			s, err := s3store.Open(context.Background(), "s3://opened/base/dir/", nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.Bucket() != "opened" || s.Prefix() != "base/dir/" {
				t.Fatalf("bucket %q prefix %q", s.Bucket(), s.Prefix())
			}
			objstoretest.MustPut(t, s, "x.jsonl", []byte("{}\n"))
			if got := objstoretest.MustGet(t, s3store.New(peer.Client(peer.Endpoint), "opened", "base"), "dir/x.jsonl"); string(got) != "{}\n" {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestOpenBadURL(t *testing.T) {
	for _, u := range []string{"", "s3://", "http://b/p", "s3:///p", "s3://b/p?x=1", "b/p", "s3://u@b/p"} {
		if _, err := s3store.Open(context.Background(), u, nil); !errors.Is(err, s3store.ErrBadURL) {
			t.Errorf("Open(%q) = %v, want ErrBadURL", u, err)
		}
	}
}

func TestParseURL(t *testing.T) {
	cases := []struct{ in, bucket, prefix string }{
		{"s3://b", "b", ""},
		{"s3://b/", "b", ""},
		{"s3://b/p", "b", "p"},
		{"s3://b/p/q/", "b", "p/q"},
	}
	for _, c := range cases {
		b, p, err := s3store.ParseURL(c.in)
		if err != nil || b != c.bucket || p != c.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", c.in, b, p, err, c.bucket, c.prefix)
		}
	}
}

func BenchmarkPut(b *testing.B) {
	peer := testenv.MinIO(b)
	peer.CreateBucket(b, "bench")
	s := s3store.New(peer.Client(peer.Endpoint), "bench", "")
	for _, size := range []int{64 << 10, 16 << 20} {
		data := objstoretest.RandomBytes(1, size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := s.Put(context.Background(), "obj", bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestGetFrom(t *testing.T) {
	peer := testenv.MinIO(t)
	peer.CreateBucket(t, "ranged")
	s := s3store.New(peer.Client(peer.Endpoint), "ranged", "p")
	body := []byte("0123456789abcdef")
	objstoretest.MustPut(t, s, "o.jsonl", body)
	ctx := context.Background()
	for _, tc := range []struct {
		off  int64
		want string
	}{{0, string(body)}, {-1, string(body)}, {10, "abcdef"}, {15, "f"}, {16, ""}, {1000, ""}} {
		rc, err := s.GetFrom(ctx, "o.jsonl", tc.off)
		if err != nil {
			t.Fatalf("GetFrom(%d): %v", tc.off, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != tc.want {
			t.Fatalf("GetFrom(%d) = %q, %v; want %q", tc.off, got, err, tc.want)
		}
	}
	if _, err := s.GetFrom(ctx, "missing.jsonl", 5); !errors.Is(err, sink.ErrNotExist) {
		t.Fatalf("GetFrom of a missing object = %v, want ErrNotExist", err)
	}
}
