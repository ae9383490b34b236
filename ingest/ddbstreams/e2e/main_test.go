package e2e

import (
	"os"
	"testing"

	"github.com/streamd/streamd/internal/testenv"
)

// streamdBin is the binary built from cmd/streamd for these tests.
var streamdBin string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithStreamd(m, &streamdBin)) }

// start runs `streamd run --config cfg` with env added to the test's
// environment (testenv.StartChild: SIGKILLed at cleanup).
func start(t testing.TB, name, cfg string, env []string) *testenv.Child {
	t.Helper()
	return testenv.StartChild(t, streamdBin, name, env, "run", "--config", cfg)
}
