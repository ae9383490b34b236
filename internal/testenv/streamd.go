package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RunWithStreamd is a TestMain body for end-to-end tests: it builds the
// streamd binary from cmd/streamd into a temporary directory, stores its
// path in *bin, runs the tests and removes the binary. STREAMD_E2E_BIN, when
// set, names a prebuilt binary to run instead. It returns the exit code for
// os.Exit.
func RunWithStreamd(m *testing.M, bin *string) int {
	if b := os.Getenv("STREAMD_E2E_BIN"); b != "" {
		*bin = b
		return m.Run()
	}
	root, err := RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build streamd:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "streamd-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "build streamd:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "streamd")
	build := exec.Command("go", "build", "-o", *bin, "./cmd/streamd")
	build.Dir = root
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build streamd:", err)
		return 1
	}
	return m.Run()
}
