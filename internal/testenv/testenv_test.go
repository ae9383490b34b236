package testenv_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/streamd/streamd/internal/testenv"
)

func TestMinIO(t *testing.T) {
	peer := testenv.MinIO(t)
	if !strings.HasPrefix(peer.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoint %q is not on loopback", peer.Endpoint)
	}
	peer.CreateBucket(t, "bucket1")
	c := peer.Client(peer.Endpoint)
	ctx := context.Background()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket1"), Key: aws.String("k"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket1"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "hello" {
		t.Fatalf("got %q", b)
	}
	// A bucket that was not created does not exist: the peer is real.
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("nope"), Key: aws.String("k"), Body: strings.NewReader("x")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "NoSuchBucket" {
		t.Fatalf("put into a missing bucket = %v, want NoSuchBucket", err)
	}
}

func TestFindMinIOEnvOverride(t *testing.T) {
	t.Setenv("STREAMD_MINIO_BIN", "/nonexistent/minio")
	t.Setenv("PATH", "")
	t.Setenv("GOPATH", t.TempDir())
	t.Chdir(t.TempDir()) // no repository root above
	_, err := testenv.FindMinIO()
	if err == nil || !strings.Contains(err.Error(), "install-peers.sh") {
		t.Fatalf("FindMinIO with nothing installed = %v, want a hint naming install-peers.sh", err)
	}
}

// echo is a tiny upstream that reports the Host it saw and echoes the body.
func echo(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Host", r.Host)
		w.Write(bytes.Repeat(b, 4))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, c *http.Client, url, body string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestFaultProxyEachFault(t *testing.T) {
	up := echo(t)
	body := strings.Repeat("payload-", 1000)
	cases := []struct {
		name   string
		faults testenv.Faults
		check  func(t *testing.T, resp *http.Response, b []byte, err error)
		count  func(c testenv.FaultCounts) int64
	}{
		{"none", testenv.Faults{},
			func(t *testing.T, resp *http.Response, b []byte, err error) {
				if err != nil || resp.StatusCode != 200 || string(b) != strings.Repeat(body, 4) {
					t.Fatalf("passthrough: %v %v %d bytes", err, resp, len(b))
				}
			}, func(c testenv.FaultCounts) int64 { return c.Forwarded }},
		{"500", testenv.Faults{InternalError: 1},
			func(t *testing.T, resp *http.Response, b []byte, err error) {
				if err != nil || resp.StatusCode != 500 || !strings.Contains(string(b), "<Code>InternalError</Code>") {
					t.Fatalf("got %v %v %q", err, resp, b)
				}
			}, func(c testenv.FaultCounts) int64 { return c.InternalError }},
		{"503", testenv.Faults{SlowDown: 1},
			func(t *testing.T, resp *http.Response, b []byte, err error) {
				if err != nil || resp.StatusCode != 503 || !strings.Contains(string(b), "<Code>SlowDown</Code>") {
					t.Fatalf("got %v %v %q", err, resp, b)
				}
			}, func(c testenv.FaultCounts) int64 { return c.SlowDown }},
		{"drop request", testenv.Faults{DropRequest: 1},
			func(t *testing.T, resp *http.Response, b []byte, err error) {
				if err == nil {
					t.Fatalf("dropped request answered: %v", resp)
				}
			}, func(c testenv.FaultCounts) int64 { return c.DropRequest }},
		{"drop response", testenv.Faults{DropResponse: 1, Seed: 3},
			func(t *testing.T, resp *http.Response, b []byte, err error) {
				if err == nil {
					t.Fatalf("dropped response read whole: %v %d bytes", resp, len(b))
				}
			}, func(c testenv.FaultCounts) int64 { return c.DropResponse }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testenv.NewFaultProxy(t, up.URL, c.faults)
			client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
			for range 5 {
				resp, b, err := do(t, client, p.URL+"/x", body)
				c.check(t, resp, b, err)
			}
			got := p.Counts()
			if got.Requests != 5 || c.count(got) != 5 {
				t.Fatalf("counts %v, want 5 requests and 5 of this kind", got)
			}
		})
	}
}

func TestFaultProxySlowAndHost(t *testing.T) {
	up := echo(t)
	p := testenv.NewFaultProxy(t, up.URL, testenv.Faults{Slow: 1, SlowDelay: 150 * time.Millisecond})
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	start := time.Now()
	resp, b, err := do(t, client, p.URL+"/x", "ab")
	if err != nil || string(b) != "abababab" {
		t.Fatalf("slow request: %v %q", err, b)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Fatalf("slow request took only %v", time.Since(start))
	}
	if h := resp.Header.Get("X-Host"); h != strings.TrimPrefix(p.URL, "http://") {
		t.Fatalf("upstream saw Host %q, want the proxy's %q", h, p.URL)
	}
	if c := p.Counts(); c.Slow != 1 || c.Forwarded != 1 {
		t.Fatalf("counts %v", c)
	}
}

func TestFaultProxyBoundsAndSeed(t *testing.T) {
	up := echo(t)
	run := func(seed uint64, max int64) testenv.FaultCounts {
		p := testenv.NewFaultProxy(t, up.URL, testenv.Faults{Seed: seed, InternalError: 0.3, SlowDown: 0.3, MaxFaults: max})
		client := &http.Client{Transport: &http.Transport{Proxy: nil}}
		for range 40 {
			if _, _, err := do(t, client, p.URL+"/x", "z"); err != nil {
				t.Fatal(err)
			}
		}
		return p.Counts()
	}
	a, b := run(7, 0), run(7, 0)
	if a != b {
		t.Fatalf("same seed, different faults: %v vs %v", a, b)
	}
	if a.InternalError == 0 || a.SlowDown == 0 || a.Forwarded == 0 {
		t.Fatalf("40 requests at 30%%/30%% injected %v", a)
	}
	if c := run(7, 3); c.Injected() != 3 || c.Forwarded != 37 {
		t.Fatalf("MaxFaults 3: %v", c)
	}
	p := testenv.NewFaultProxy(t, up.URL, testenv.Faults{InternalError: 1})
	p.SetEnabled(false)
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	if resp, _, err := do(t, client, p.URL+"/x", "z"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("disabled proxy: %v %v", err, resp)
	}
}
