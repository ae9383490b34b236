package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamd/streamd/internal/salesgen"
	"github.com/streamd/streamd/internal/testenv"
)

// TestS3ReplayThroughFaultsExactlyOnce reads sales files from MinIO and
// writes Parquet and dead letters back to MinIO, with every request passing
// a proxy that injects 500s, 503 SlowDown, slow responses and dropped
// connections, and with the process SIGKILLed a few times. The objects in
// the bucket must hold every record exactly once, with no partial objects.
func TestS3ReplayThroughFaultsExactlyOnce(t *testing.T) {
	peer := testenv.MinIO(t)
	peer.CreateBucket(t, "raw")
	peer.CreateBucket(t, "lake")
	client := peer.Client(peer.Endpoint)
	ctx := context.Background()

	// Inputs: two plain files and one gzip file.
	var truths []salesgen.Truth
	for i := 0; i < 3; i++ {
		var buf bytes.Buffer
		tr, err := salesgen.Write(&buf, 15000, salesgen.Options{Seed: int64(i + 10), FirstID: i * 15000,
			FilteredEvery: 41, MalformedEvery: 157, UncastableEvery: 199})
		if err != nil {
			t.Fatal(err)
		}
		truths = append(truths, tr...)
		key := fmt.Sprintf("sales/2026/part-%d.jsonl", i)
		body := buf.Bytes()
		if i == 2 {
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(body)
			zw.Close()
			body, key = z.Bytes(), key+".gz"
		}
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("raw"), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}

	proxy := testenv.NewFaultProxy(t, peer.Endpoint, testenv.Faults{Seed: uint64(time.Now().UnixNano()),
		InternalError: 0.06, SlowDown: 0.04, Slow: 0.03, SlowDelay: 300 * time.Millisecond, DropRequest: 0.03, DropResponse: 0.03})

	dir := t.TempDir()
	cfg := fmt.Sprintf(`state_dir: %[1]s/state
pipelines:
  - name: sales
    source: {type: file, paths: ["s3://raw/sales/2026/*.jsonl*"], format: jsonl}
%[2]s    window: {max_records: 4000}
    sink: {type: parquet, path: "s3://lake/curated/sales", partition_by: [region], compression: zstd}
    dead_letter: {path: "s3://lake/dlq/sales"}
`, dir, salesSchema)
	cfgPath := filepath.Join(dir, "s3.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), peer.Env(proxy.URL)...)

	for kill := 0; kill < 3; kill++ {
		cmd := exec.Command(streamdBin, "run", "--config", cfgPath)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(300+kill*400) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	cmd := exec.Command(streamdBin, "run", "--config", cfgPath)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("final run: %v\n%s", err, out.String())
	}
	counts := proxy.Counts()
	t.Logf("faults injected: %s; %s", counts, lastLine(out.String()))
	if counts.Injected() == 0 {
		t.Fatal("the proxy injected no faults")
	}

	// Download what the bucket holds, straight from MinIO, and check it.
	local := filepath.Join(dir, "download")
	var keys []string
	pager := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String("lake")})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	for _, key := range keys {
		if !strings.HasSuffix(key, ".parquet") && !strings.HasSuffix(key, ".jsonl") {
			t.Errorf("bucket holds a non-final object %q", key)
			continue
		}
		obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("lake"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		rel := strings.Replace(strings.Replace(key, "curated/sales/", "out/", 1), "dlq/sales/", "dlq/", 1)
		p := filepath.Join(local, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	uploads, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("lake")})
	if err != nil {
		t.Fatal(err)
	}
	if len(uploads.Uploads) > 0 {
		t.Errorf("%d multipart uploads left open", len(uploads.Uploads))
	}
	checkExactlyOnce(t, local, truths)
}
