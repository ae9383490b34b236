package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/testenv"
)

// streamdBin is the binary built from cmd/streamd for these tests.
var streamdBin string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithStreamd(m, &streamdBin)) }

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is one running streamd process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *lockedBuf
	done   chan struct{}
	err    error
}

// start runs `streamd run --config cfg` with env added to the test's
// environment; the process is SIGKILLed at cleanup if still running.
func start(t testing.TB, name, cfg string, env []string) *proc {
	t.Helper()
	p := &proc{name: name, stderr: &lockedBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command(streamdBin, "run", "--config", cfg)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s stderr (tail):\n%s", name, tail(p.stderr.String(), 4000))
		}
	})
	// A binary without the dynamodb_streams wiring exits at once.
	select {
	case <-p.done:
		if strings.Contains(p.stderr.String(), "is not available in this build") {
			t.Fatalf("this streamd build has no dynamodb_streams source: wire it in cmd/streamd (buildSource case \"dynamodb_streams\") as ingest/ddbstreams/README.md shows\n%s", p.stderr.String())
		}
		t.Fatalf("%s exited at start: %v\n%s", name, p.err, p.stderr.String())
	case <-time.After(300 * time.Millisecond):
	}
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// kill sends SIGKILL and waits.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t testing.TB, within time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop %s: %v", p.name, err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s exited with %v after SIGTERM\n%s", p.name, p.err, tail(p.stderr.String(), 4000))
		}
	case <-time.After(within):
		t.Fatalf("%s did not exit within %v of SIGTERM", p.name, within)
	}
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
