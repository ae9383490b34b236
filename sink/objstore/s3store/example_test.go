package s3store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/sink/objstore/s3store"
)

// TestMain starts a real MinIO for the Examples, which read their
// configuration from the environment as the daemon does. A missing MinIO
// fails the run.
func TestMain(m *testing.M) {
	peer, err := testenv.StartMinIO()
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3store tests:", err)
		os.Exit(1)
	}
	code := func() int {
		defer peer.Stop()
		for _, kv := range peer.Env(peer.Endpoint) {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
		if _, err := peer.Client(peer.Endpoint).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("example")}); err != nil {
			fmt.Fprintln(os.Stderr, "s3store tests: create bucket:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func ExampleOpen() {
	ctx := context.Background()
	// Region, credentials and the endpoint (AWS_ENDPOINT_URL_S3) come from
	// the SDK's default chain; here they point at a local MinIO.
	s, err := s3store.Open(ctx, "s3://example/streamd/out", slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	if err := s.Put(ctx, "date=2024-05-01/part-0.jsonl", strings.NewReader("{\"id\":1}\n")); err != nil {
		panic(err)
	}
	_ = s.List(ctx, "", func(name string) error {
		fmt.Println(name, "->", s.Key(name))
		return nil
	})
	rc, err := s.Get(ctx, "date=2024-05-01/part-0.jsonl")
	if err != nil {
		panic(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	fmt.Print(string(b))
	// Output:
	// date=2024-05-01/part-0.jsonl -> streamd/out/date=2024-05-01/part-0.jsonl
	// {"id":1}
}

func ExampleWithIfNoneMatch() {
	ctx := context.Background()
	s, err := s3store.Open(ctx, "s3://example/never-overwrite", nil, s3store.WithIfNoneMatch(true))
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Put(ctx, "a.txt", strings.NewReader("v1"))) // created
	fmt.Println(s.Put(ctx, "a.txt", strings.NewReader("v1"))) // a redo: same bytes
	err = s.Put(ctx, "a.txt", strings.NewReader("v2"))        // refused
	fmt.Println(errors.Is(err, s3store.ErrObjectDiffers))
	// Output:
	// <nil>
	// <nil>
	// true
}
