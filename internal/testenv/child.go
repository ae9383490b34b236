package testenv

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Child is a process a test started (a streamd under test), with its
// stderr kept for assertions and failure logs.
type Child struct {
	name   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

// StartChild runs bin with args, env added to the test's environment. It
// fails the test if the process exits within its first half second (a bad
// config, a missing peer). The process is SIGKILLed at cleanup if still
// running, and the tail of its stderr is logged when the test failed.
func StartChild(t testing.TB, bin, name string, env []string, args ...string) *Child {
	t.Helper()
	c := &Child{name: name, stderr: &lockedBuffer{unbounded: true}, done: make(chan struct{})}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("%s stderr (tail):\n%s", name, Tail(c.stderr.String(), 4000))
		}
	})
	select {
	case <-c.done:
		t.Fatalf("%s exited at start: %v\n%s", name, c.err, c.stderr.String())
	case <-time.After(500 * time.Millisecond):
	}
	return c
}

// Stderr returns what the process wrote to stderr so far.
func (c *Child) Stderr() string { return c.stderr.String() }

// Kill sends SIGKILL and waits for the process to end.
func (c *Child) Kill(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", c.name, err)
	}
	<-c.done
}

// Stop sends SIGTERM and fails the test unless the process exits cleanly
// within the given time.
func (c *Child) Stop(t testing.TB, within time.Duration) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop %s: %v", c.name, err)
	}
	select {
	case <-c.done:
		if c.err != nil {
			t.Fatalf("%s exited with %v after SIGTERM\n%s", c.name, c.err, Tail(c.stderr.String(), 4000))
		}
	case <-time.After(within):
		t.Fatalf("%s did not exit within %v of SIGTERM", c.name, within)
	}
}

// WaitFor polls cond every 20ms and fails the test if it does not hold
// within timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Tail returns the last n bytes of s, marked with "…" when cut.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
