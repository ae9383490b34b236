package kinesis_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/streamd/streamd/internal/testenv"
)

// examplePeer is the kinesalite the Example reads from (the tests start
// their own); its environment is applied to the process as streamd's
// would be.
var examplePeer *testenv.KinesisPeer

func TestMain(m *testing.M) {
	p, err := testenv.StartKinesis()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	examplePeer = p
	for _, kv := range p.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	code := m.Run()
	p.Stop()
	os.Exit(code)
}
