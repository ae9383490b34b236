package s3store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/sink/objstore/objstoretest"
	"github.com/streamd/streamd/sink/objstore/s3store"
)

// recorder is a FaultProxy Match hook that records the headers of requests
// and injects nothing.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, query string
	header        http.Header
}

func (r *recorder) match(req *http.Request) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, recorded{req.Method, req.URL.RawQuery, req.Header.Clone()})
	return false
}

// writes returns the recorded PutObject, CreateMultipartUpload and
// CompleteMultipartUpload requests, by kind.
func (r *recorder) writes() map[string][]http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]http.Header{}
	for _, q := range r.reqs {
		switch {
		case q.method == http.MethodPut && !strings.Contains(q.query, "partNumber"):
			out["PutObject"] = append(out["PutObject"], q.header)
		case q.method == http.MethodPost && strings.Contains(q.query, "uploads"):
			out["CreateMultipartUpload"] = append(out["CreateMultipartUpload"], q.header)
		case q.method == http.MethodPost && strings.Contains(q.query, "uploadId"):
			out["CompleteMultipartUpload"] = append(out["CompleteMultipartUpload"], q.header)
		}
	}
	return out
}

func TestIfNoneMatch(t *testing.T) {
	peer := testenv.MinIO(t)
	direct := fastClient(peer, peer.Endpoint)
	cases := []struct {
		name string
		size int
	}{
		{"single", 1000},
		{"multipart", 2*minPart + 17},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bucket := "inm-" + c.name
			peer.CreateBucket(t, bucket)
			rec := &recorder{}
			proxy := testenv.NewFaultProxy(t, peer.Endpoint, testenv.Faults{Match: rec.match})
			s := s3store.New(fastClient(peer, proxy.URL), bucket, "p",
				s3store.WithIfNoneMatch(true), s3store.WithPartSize(minPart))
			data := objstoretest.RandomBytes(uint64(10+i), c.size)
			ctx := context.Background()
			if err := s.Put(ctx, "obj", bytes.NewReader(data)); err != nil {
				t.Fatalf("first Put: %v", err)
			}
			// A redo writes the same bytes: S3 answers 412, the store
			// compares and succeeds.
			if err := s.Put(ctx, "obj", bytes.NewReader(data)); err != nil {
				t.Fatalf("identical redo: %v", err)
			}
			// Different content must fail and leave the object alone;
			// same length, one byte changed, and a different length.
			other := bytes.Clone(data)
			other[len(other)/2] ^= 1
			for _, d := range [][]byte{other, data[:len(data)-1]} {
				err := s.Put(ctx, "obj", bytes.NewReader(d))
				if !errors.Is(err, s3store.ErrObjectDiffers) {
					t.Fatalf("Put of different content = %v, want ErrObjectDiffers", err)
				}
				if !strings.Contains(err.Error(), "p/obj") {
					t.Fatalf("error %q does not name the key", err)
				}
			}
			if got := objstoretest.MustGet(t, s3store.New(direct, bucket, "p"), "obj"); !bytes.Equal(got, data) {
				t.Fatal("the original object was overwritten")
			}
			if u := listUploads(t, direct, bucket); len(u) != 0 {
				t.Fatalf("multipart uploads left: %q", u)
			}
			// The condition is on the request that makes the object
			// visible.
			kind := "PutObject"
			if c.size > minPart {
				kind = "CompleteMultipartUpload"
			}
			hs := rec.writes()[kind]
			if len(hs) < 4 {
				t.Fatalf("%d %s requests recorded, want 4", len(hs), kind)
			}
			for _, h := range hs {
				if h.Get("If-None-Match") != "*" {
					t.Fatalf("%s without If-None-Match: *: %v", kind, h)
				}
			}
		})
	}

	t.Run("LostResponse", func(t *testing.T) {
		// The PutObject succeeds but its response is lost; the retry gets
		// 412, which must count as success since the bytes are the same.
		bucket := "inm-lost"
		peer.CreateBucket(t, bucket)
		var puts sync.Once
		proxy := testenv.NewFaultProxy(t, peer.Endpoint, testenv.Faults{
			DropResponse: 1,
			Match: func(r *http.Request) bool {
				hit := false
				if r.Method == http.MethodPut {
					puts.Do(func() { hit = true })
				}
				return hit
			},
		})
		s := s3store.New(fastClient(peer, proxy.URL), bucket, "", s3store.WithIfNoneMatch(true))
		data := objstoretest.RandomBytes(7, 5000)
		if err := s.Put(context.Background(), "obj", bytes.NewReader(data)); err != nil {
			t.Fatalf("Put with a lost response: %v", err)
		}
		if proxy.Counts().DropResponse != 1 {
			t.Fatalf("counts %v, want one dropped response", proxy.Counts())
		}
		if got := objstoretest.MustGet(t, s3store.New(direct, bucket, ""), "obj"); !bytes.Equal(got, data) {
			t.Fatal("object differs")
		}
	})

	t.Run("Off", func(t *testing.T) {
		bucket := "inm-off"
		peer.CreateBucket(t, bucket)
		s := s3store.New(direct, bucket, "")
		objstoretest.MustPut(t, s, "obj", []byte("a"))
		objstoretest.MustPut(t, s, "obj", []byte("b"))
		if got := objstoretest.MustGet(t, s, "obj"); string(got) != "b" {
			t.Fatalf("without If-None-Match a Put replaces: got %q", got)
		}
	})
}

func TestSSE(t *testing.T) {
	// MinIO serves SSE-S3 and SSE-KMS once a KMS is configured; a static
	// key (MINIO_KMS_SECRET_KEY, inherited by the server from this
	// process) is enough.
	key := bytes.Repeat([]byte{7}, 32)
	t.Setenv("MINIO_KMS_SECRET_KEY", "streamd-key:"+base64.StdEncoding.EncodeToString(key))
	peer := testenv.MinIO(t)
	direct := fastClient(peer, peer.Endpoint)
	peer.CreateBucket(t, "sse")
	cases := []struct {
		name string
		sse  s3store.SSE
		want types.ServerSideEncryption
		hdrs map[string]string
	}{
		{"s3", s3store.SSE{Type: s3store.SSES3}, types.ServerSideEncryptionAes256,
			map[string]string{"X-Amz-Server-Side-Encryption": "AES256"}},
		{"kms", s3store.SSE{Type: s3store.SSEKMS, KMSKeyID: "streamd-key"}, types.ServerSideEncryptionAwsKms,
			map[string]string{"X-Amz-Server-Side-Encryption": "aws:kms", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "streamd-key"}},
	}
	for _, c := range cases {
		for _, size := range []int{100, 2*minPart + 1} {
			rec := &recorder{}
			proxy := testenv.NewFaultProxy(t, peer.Endpoint, testenv.Faults{Match: rec.match})
			s := s3store.New(fastClient(peer, proxy.URL), "sse", c.name, s3store.WithSSE(c.sse), s3store.WithPartSize(minPart))
			data := objstoretest.RandomBytes(uint64(size), size)
			objstoretest.MustPut(t, s, "obj", data)
			head, err := direct.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("sse"), Key: aws.String(s.Key("obj"))})
			if err != nil {
				t.Fatal(err)
			}
			if head.ServerSideEncryption != c.want {
				t.Errorf("%s/%d: object encryption %q, want %q", c.name, size, head.ServerSideEncryption, c.want)
			}
			if got := objstoretest.MustGet(t, s3store.New(direct, "sse", c.name), "obj"); !bytes.Equal(got, data) {
				t.Errorf("%s/%d: read back differs", c.name, size)
			}
			kind := "PutObject"
			if size > minPart {
				kind = "CreateMultipartUpload"
			}
			hs := rec.writes()[kind]
			if len(hs) == 0 {
				t.Fatalf("%s/%d: no %s recorded", c.name, size, kind)
			}
			for k, v := range c.hdrs {
				if got := hs[0].Get(k); got != v {
					t.Errorf("%s/%d: %s header %s = %q, want %q", c.name, size, kind, k, got, v)
				}
			}
		}
	}

	t.Run("BucketKeyHeader", func(t *testing.T) {
		rec := &recorder{}
		proxy := testenv.NewFaultProxy(t, peer.Endpoint, testenv.Faults{Match: rec.match})
		s := s3store.New(fastClient(peer, proxy.URL), "sse", "bk",
			s3store.WithSSE(s3store.SSE{Type: s3store.SSEKMS, KMSKeyID: "streamd-key", BucketKey: true}))
		// MinIO may or may not honour bucket keys; the header is what
		// this store controls.
		_ = s.Put(context.Background(), "obj", strings.NewReader("x"))
		hs := rec.writes()["PutObject"]
		if len(hs) == 0 || hs[0].Get("X-Amz-Server-Side-Encryption-Bucket-Key-Enabled") != "true" {
			t.Fatalf("bucket key header not sent: %v", hs)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		for _, bad := range []s3store.SSE{
			{Type: s3store.SSES3, KMSKeyID: "k"},
			{Type: s3store.SSENone, BucketKey: true},
			{Type: "rot13"},
		} {
			if err := bad.Validate(); !errors.Is(err, s3store.ErrBadSSE) {
				t.Errorf("%+v.Validate() = %v", bad, err)
			}
			s := s3store.New(direct, "sse", "", s3store.WithSSE(bad))
			if err := s.Put(context.Background(), "x", strings.NewReader("x")); !errors.Is(err, s3store.ErrBadSSE) {
				t.Errorf("Put with %+v = %v, want ErrBadSSE", bad, err)
			}
			if _, err := s3store.Open(context.Background(), "s3://sse/x", nil, s3store.WithSSE(bad)); !errors.Is(err, s3store.ErrBadSSE) {
				t.Errorf("Open with %+v = %v, want ErrBadSSE", bad, err)
			}
		}
	})
}

func TestParseSSEType(t *testing.T) {
	cases := []struct {
		in   string
		want s3store.SSEType
		ok   bool
	}{
		{"", s3store.SSENone, true}, {"none", s3store.SSENone, true},
		{"s3", s3store.SSES3, true}, {"AES256", s3store.SSES3, true},
		{"kms", s3store.SSEKMS, true}, {"aws:kms", s3store.SSEKMS, true},
		{"sse-c", "", false},
	}
	for _, c := range cases {
		got, err := s3store.ParseSSEType(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSSEType(%q) = %q, %v", c.in, got, err)
		}
		if !c.ok && !errors.Is(err, s3store.ErrBadSSE) {
			t.Errorf("ParseSSEType(%q) error %v is not ErrBadSSE", c.in, err)
		}
	}
}
