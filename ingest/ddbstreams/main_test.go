package ddbstreams_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/ddbstreams"
	"github.com/streamd/streamd/internal/testenv"
)

// peer is the DynamoDB Local most tests share (each with its own table);
// tests that age stream records start their own.
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

var tableSeq atomic.Int64

// createTable creates a table keyed by the string attribute pk with a
// NEW_AND_OLD_IMAGES stream and returns its name.
func createTable(t testing.TB, db *dynamodb.Client) string {
	t.Helper()
	name := fmt.Sprintf("cdc-%d-%d", os.Getpid(), tableSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(name), BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	return name
}

func setStream(t testing.TB, db *dynamodb.Client, table string, on bool) {
	t.Helper()
	spec := &types.StreamSpecification{StreamEnabled: aws.Bool(on)}
	if on {
		spec.StreamViewType = types.StreamViewTypeNewAndOldImages
	}
	if _, err := db.UpdateTable(context.Background(), &dynamodb.UpdateTableInput{TableName: aws.String(table), StreamSpecification: spec}); err != nil {
		t.Fatalf("set stream enabled=%v: %v", on, err)
	}
}

func put(t testing.TB, db *dynamodb.Client, table, pk string, ver int, qty string) {
	t.Helper()
	_, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk}, "ver": &types.AttributeValueMemberN{Value: fmt.Sprint(ver)},
		"quantity": &types.AttributeValueMemberN{Value: qty},
	}})
	if err != nil {
		t.Errorf("put %s: %v", pk, err)
	}
}

// fastConfig polls quickly so tests finish in seconds.
func fastConfig(table string) ddbstreams.Config {
	return ddbstreams.Config{Table: table, RefreshInterval: 300 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		IdleInterval: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
}

// logBuffer collects a JSON slog log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// memResumer is a checkpoint store in memory: what harness committed.
type memResumer struct {
	mu  sync.Mutex
	pos map[string]streamd.Position
}

func (m *memResumer) Resume(_ context.Context, lane string) (streamd.Position, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pos[lane]
	return p, ok, nil
}

// harness runs a source outside a pipeline: every chunk is "committed" as
// soon as it arrives (Committed is called), and the records are kept.
type harness struct {
	src    *ddbstreams.Source
	res    *memResumer
	cancel context.CancelFunc
	done   chan error

	mu    sync.Mutex
	recs  []got
	ended map[string]bool
}

type got struct {
	lane string
	rec  streamd.Record
}

func runHarness(t testing.TB, src *ddbstreams.Source, res *memResumer) *harness {
	t.Helper()
	if res == nil {
		res = &memResumer{pos: map[string]streamd.Position{}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{src: src, res: res, cancel: cancel, done: make(chan error, 1), ended: map[string]bool{}}
	out := make(chan ingest.Chunk, 4)
	go func() { h.done <- src.Run(ctx, res, out); close(out) }()
	go func() {
		for c := range out {
			h.mu.Lock()
			for _, r := range c.Records {
				h.recs = append(h.recs, got{c.Lane, streamd.Record{Data: append([]byte(nil), r.Data...), Pos: r.Pos, Time: r.Time, Err: r.Err}})
			}
			if c.End {
				h.ended[c.Lane] = true
			}
			h.mu.Unlock()
			if n := len(c.Records); n > 0 {
				res.mu.Lock()
				res.pos[c.Lane] = c.Records[n-1].Pos
				res.mu.Unlock()
				src.Committed(context.Background(), c.Lane, c.Records[n-1].Pos)
			}
		}
	}()
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *harness) stop(t testing.TB) {
	h.cancel()
	select {
	case err, ok := <-h.done:
		if ok && err != nil {
			t.Errorf("source: %v", err)
		}
		h.done = make(chan error)
		close(h.done)
	case <-time.After(30 * time.Second):
		t.Error("source did not stop within 30s")
	}
}

func (h *harness) records() []got {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]got(nil), h.recs...)
}
