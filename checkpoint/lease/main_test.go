package lease_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamd/streamd/checkpoint/dynamodb"
	"github.com/streamd/streamd/internal/testenv"
)

// peer is the DynamoDB Local every test of the package shares; each test
// uses its own table.
var peer *testenv.DynamoDBPeer

func TestMain(m *testing.M) {
	p, err := testenv.StartDynamoDB()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	peer = p
	code := m.Run()
	out := p.Stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "DynamoDB Local output:\n%s\n", out)
	}
	os.Exit(code)
}

var tables atomic.Int64

func newTable(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("streamd-lease-%d", tables.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dynamodb.EnsureTable(ctx, peer.Client(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

func ensure(ctx context.Context, table string) error {
	return dynamodb.EnsureTable(ctx, peer.Client(), table)
}
