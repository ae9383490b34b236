package testenv

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

//go:embed kinesalite/streamd-kinesalite.js
var kinesaliteLauncher []byte

// KinesisPeer is a running kinesalite (Kinesis Data Streams) bound to
// 127.0.0.1, in memory. Streams become ACTIVE 50 ms after a create,
// split, merge or shard-count update.
type KinesisPeer struct {
	// Endpoint is the base URL of the Kinesis API, http://127.0.0.1:PORT.
	Endpoint string
	// Region is the region clients sign for (PeerRegion).
	Region string

	dir      string
	stop     func()
	stopOnce sync.Once
	out      *lockedBuffer
}

// FindKinesalite returns node's path and the node_modules directory holding
// kinesalite: $STREAMD_NODE_MODULES, else the repository's
// .cache/npm/node_modules.
func FindKinesalite() (node, modules string, err error) {
	return findNodeModule("kinesalite", "kinesalite")
}

// findNodeModule returns node's path and the node_modules directory
// holding pkg (a path below node_modules): $STREAMD_NODE_MODULES, else the
// repository's .cache/npm/node_modules. Errors name what and the install
// hint.
func findNodeModule(what, pkg string) (node, modules string, err error) {
	node, err = exec.LookPath("node")
	if err != nil {
		return "", "", fmt.Errorf("find %s: node not on PATH: %s", what, PeersInstallHint)
	}
	modules = os.Getenv("STREAMD_NODE_MODULES")
	if modules == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", "", fmt.Errorf("find %s: %w: %s", what, err, PeersInstallHint)
		}
		modules = filepath.Join(root, ".cache", "npm", "node_modules")
	}
	if !fileExists(filepath.Join(modules, pkg, "package.json")) {
		return "", "", fmt.Errorf("find %s: no %s in %s: %s", what, pkg, modules, PeersInstallHint)
	}
	return node, modules, nil
}

// Kinesis starts kinesalite on 127.0.0.1 and waits until it listens. It is
// killed by PID when the test ends. A missing node or kinesalite fails the
// test with PeersInstallHint; it is never skipped.
func Kinesis(t testing.TB) *KinesisPeer {
	t.Helper()
	p, err := StartKinesis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		out := p.Stop()
		if t.Failed() {
			t.Logf("kinesalite output:\n%s", out)
		}
	})
	return p
}

// StartKinesis is Kinesis for callers without a testing.TB: the caller must
// call Stop.
func StartKinesis() (*KinesisPeer, error) {
	node, modules, err := FindKinesalite()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := startKinesis(node, modules)
		if err == nil {
			return p, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("start kinesalite: %w", lastErr)
}

func startKinesis(node, modules string) (*KinesisPeer, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "streamd-kinesalite-")
	if err != nil {
		return nil, fmt.Errorf("make kinesalite directory: %w", err)
	}
	script := filepath.Join(work, "streamd-kinesalite.js")
	if err := os.WriteFile(script, kinesaliteLauncher, 0o644); err != nil {
		os.RemoveAll(work)
		return nil, fmt.Errorf("write kinesalite launcher: %w", err)
	}
	cmd := exec.Command(node, script, fmt.Sprint(ports[0]))
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	out := &lockedBuffer{}
	ready := make(chan struct{})
	cmd.Stdout = &readyWriter{out: out, marker: "streamd-kinesalite ready", ready: ready}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		os.RemoveAll(work)
		return nil, fmt.Errorf("start %s: %w", node, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
		os.RemoveAll(work)
	}
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case <-ready:
	case <-exited:
		os.RemoveAll(work)
		return nil, fmt.Errorf("kinesalite exited before it was ready: %s", out.String())
	case <-timer.C:
		stop()
		return nil, fmt.Errorf("kinesalite not ready after 30s: %s", out.String())
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		stop()
		return nil, fmt.Errorf("kinesalite does not accept connections on %s: %v: %s", addr, err, out.String())
	}
	c.Close()
	return &KinesisPeer{Endpoint: "http://" + addr, Region: PeerRegion, dir: work, stop: stop, out: out}, nil
}

// Stop kills the server by PID, waits for it and returns its output.
func (p *KinesisPeer) Stop() string {
	p.stopOnce.Do(p.stop)
	return p.out.String()
}

// Config returns an aws.Config for the peer that does not read the
// environment (see DynamoDBPeer.Config).
func (p *KinesisPeer) Config() aws.Config {
	return (&DynamoDBPeer{Region: p.Region}).Config()
}

// Client returns a Kinesis client for the peer.
func (p *KinesisPeer) Client() *kinesis.Client {
	return kinesis.NewFromConfig(p.Config(), func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(p.Endpoint)
	})
}

// Env returns the environment (KEY=VALUE) that points the AWS SDK's default
// configuration of a child process at the peer: static credentials,
// region, AWS_ENDPOINT_URL_KINESIS, no shared config files, no CA bundle.
// It combines with DynamoDBPeer.Env (the shared variables agree).
func (p *KinesisPeer) Env() []string {
	return append(awsPeerEnv(p.dir), "AWS_ENDPOINT_URL_KINESIS="+p.Endpoint)
}

// SetEnv applies Env to the test process for the rest of the test.
func (p *KinesisPeer) SetEnv(t testing.TB) {
	t.Helper()
	setEnv(t, p.Env())
}

// CreateStream creates stream with shards shards and waits until it is
// ACTIVE; it fails the test on error.
func (p *KinesisPeer) CreateStream(t testing.TB, stream string, shards int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := p.Client()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatalf("create stream %q: %v", stream, err)
	}
	if err := WaitStreamActive(ctx, c, stream); err != nil {
		t.Fatal(err)
	}
}

// WaitStreamActive polls DescribeStreamSummary (every 20 ms, bounded by
// ctx) until stream is ACTIVE.
func WaitStreamActive(ctx context.Context, c *kinesis.Client, stream string) error {
	for {
		out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return nil
		}
		var rnf *types.ResourceNotFoundException
		if err != nil && !errors.As(err, &rnf) && ctx.Err() == nil {
			return fmt.Errorf("wait for stream %q: %w", stream, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for stream %q to become active: %w", stream, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
