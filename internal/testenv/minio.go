package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Credentials and region of every S3Peer.
const (
	MinIOUser     = "streamd-test"
	MinIOPassword = "streamd-test-secret"
	MinIORegion   = "us-east-1"
)

// InstallHint is what a test prints when a peer binary is missing.
const InstallHint = "run `bash internal/testenv/install-peers.sh` from the repository root (it installs MinIO into .cache/bin)"

// S3Peer is a running MinIO server.
type S3Peer struct {
	// Endpoint is the server's base URL, http://127.0.0.1:PORT.
	Endpoint string
	// Addr is the host:port the server listens on.
	Addr string
	// Dir is the server's data directory.
	Dir string

	stop     func()
	stopOnce sync.Once
	out      *lockedBuffer
}

// FindMinIO returns the path of the minio binary: $STREAMD_MINIO_BIN,
// then $(go env GOPATH)/bin/minio, then minio on PATH, then the
// repository's .cache/bin/minio.
func FindMinIO() (string, error) {
	var tried []string
	if p := os.Getenv("STREAMD_MINIO_BIN"); p != "" {
		if isExec(p) {
			return p, nil
		}
		tried = append(tried, p+" ($STREAMD_MINIO_BIN)")
	}
	if gp := goPath(); gp != "" {
		p := filepath.Join(gp, "bin", "minio")
		if isExec(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	tried = append(tried, "minio on PATH")
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, ".cache", "bin", "minio")
		if isExec(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("find minio: not found (tried %s): %s", strings.Join(tried, ", "), InstallHint)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func goPath() string {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		if s := strings.TrimSpace(string(out)); s != "" {
			return strings.SplitN(s, string(os.PathListSeparator), 2)[0]
		}
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, "go")
	}
	return ""
}

// RepoRoot returns the directory holding the module's go.mod, found by
// walking up from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/streamd/streamd\n")) {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("find repository root: no go.mod of github.com/streamd/streamd above the working directory")
		}
		dir = up
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a process's output for failure messages.
type lockedBuffer struct {
	mu        sync.Mutex
	b         bytes.Buffer
	unbounded bool // keep everything (default: drop writes past 1 MiB)
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.unbounded && l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// MinIO starts a MinIO server on 127.0.0.1 with a fresh data directory and
// waits until it is ready. The server is killed (by PID) when the test
// ends. A missing binary fails the test with InstallHint.
func MinIO(t testing.TB) *S3Peer {
	t.Helper()
	p, err := StartMinIO()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		out := p.Stop()
		if t.Failed() {
			t.Logf("minio output:\n%s", out)
		}
	})
	return p
}

// StartMinIO is MinIO for callers without a testing.TB (a TestMain that
// runs Examples against a real peer): the caller must call Stop.
func StartMinIO() (*S3Peer, error) {
	bin, err := FindMinIO()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a port may be taken between FreePort and bind
		p, err := startMinIO(bin)
		if err == nil {
			return p, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("start minio: %w", lastErr)
}

// Stop kills the server by PID, waits for it, removes its data directory
// and returns its output.
func (p *S3Peer) Stop() string {
	p.stopOnce.Do(func() {
		p.stop()
		os.RemoveAll(p.Dir)
	})
	return p.out.String()
}

func startMinIO(bin string) (*S3Peer, error) {
	dir, err := os.MkdirTemp("", "streamd-minio-")
	if err != nil {
		return nil, fmt.Errorf("make minio directory: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	console := fmt.Sprintf("127.0.0.1:%d", ports[1])
	cmd := exec.Command(bin, "server", filepath.Join(dir, "data"), "--address", addr, "--console-address", console, "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+MinIOUser,
		"MINIO_ROOT_PASSWORD="+MinIOPassword,
		"MINIO_REGION="+MinIORegion,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
		"MINIO_CONFIG_DIR="+filepath.Join(dir, "config"),
		"HOME="+dir,
	)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	endpoint := "http://" + addr
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("minio exited before it was ready: %s", out.String())
		default:
		}
		resp, err := client.Get(endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			os.RemoveAll(dir)
			return nil, fmt.Errorf("minio not ready after 60s: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &S3Peer{Endpoint: endpoint, Addr: addr, Dir: dir, stop: stop, out: out}, nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Env returns the environment (KEY=VALUE) that points the AWS SDK's
// default configuration at endpoint: see SetEnv.
func (p *S3Peer) Env(endpoint string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + MinIOUser,
		"AWS_SECRET_ACCESS_KEY=" + MinIOPassword,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + MinIORegion,
		"AWS_ENDPOINT_URL_S3=" + endpoint,
		"AWS_ENDPOINT_URL=",
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + filepath.Join(p.Dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(p.Dir, "no-aws-credentials"),
		"AWS_CA_BUNDLE=",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// SetEnv points the AWS SDK's default configuration at endpoint (the peer's,
// or a proxy's in front of it) for the rest of the test: static
// credentials, region, AWS_ENDPOINT_URL_S3, no shared config files and no
// CA bundle (the endpoint is plain HTTP).
func (p *S3Peer) SetEnv(t testing.TB, endpoint string) {
	t.Helper()
	for _, kv := range p.Env(endpoint) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Config returns an aws.Config for the peer that does not read the
// environment: static credentials, the peer's region, and an HTTP client
// built with the SDK's buildable client (so a machine-wide AWS_CA_BUNDLE
// does not conflict with it).
func (p *S3Peer) Config() aws.Config {
	cfg := aws.Config{
		Region:      MinIORegion,
		Credentials: credentials.NewStaticCredentialsProvider(MinIOUser, MinIOPassword, ""),
		HTTPClient:  awshttp.NewBuildableClient(),
	}
	return cfg
}

// Client returns an S3 client for endpoint (the peer's or a proxy's in
// front of it) with path-style addressing and the SDK's default retryer.
func (p *S3Peer) Client(endpoint string) *s3.Client {
	return s3.NewFromConfig(p.Config(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	})
}

// CreateBucket creates bucket on the peer and fails the test on error.
func (p *S3Peer) CreateBucket(t testing.TB, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.Client(p.Endpoint).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %q: %v", bucket, err)
	}
}
