package dynamodb_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/streamd/streamd/internal/testenv"
)

// peer is the DynamoDB Local every test and example of the package shares;
// each test uses its own table.
var peer *testenv.DynamoDBPeer

func TestMain(m *testing.M) {
	p, err := testenv.StartDynamoDB()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	peer = p
	// The Example configures its client from the environment, as streamd does.
	for _, kv := range p.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	code := m.Run()
	out := p.Stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "DynamoDB Local output:\n%s\n", out)
	}
	os.Exit(code)
}
