package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/checkpoint/checkpointtest"
	"github.com/streamd/streamd/checkpoint/dynamodb"
)

var tables atomic.Int64

func newTable(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("streamd-test-%d", tables.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dynamodb.EnsureTable(ctx, peer.Client(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestConformance(t *testing.T) {
	checkpointtest.Run(t, func(t *testing.T) checkpoint.Store {
		s := dynamodb.New(peer.Client(), dynamodb.Config{Table: newTable(t)})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestEnsureTable(t *testing.T) {
	ctx := context.Background()
	c := peer.Client()
	const table = "streamd-ensure"
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = dynamodb.EnsureTable(ctx, c, table) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent EnsureTable: %v", err)
		}
	}
	out, err := c.DescribeTable(ctx, &ddb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	if out.Table.TableStatus != types.TableStatusActive || len(out.Table.KeySchema) != 2 ||
		out.Table.BillingModeSummary == nil || out.Table.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Fatalf("table %+v: want ACTIVE, PAY_PER_REQUEST, key pipeline+lane", out.Table)
	}
	if err := dynamodb.EnsureTable(ctx, c, ""); err == nil {
		t.Fatal("EnsureTable with no name succeeded")
	}
}

func TestUnreachable(t *testing.T) {
	// A closed port: every call fails with an error naming the operation.
	c := ddb.NewFromConfig(peer.Config(), func(o *ddb.Options) {
		o.BaseEndpoint = aws.String("http://127.0.0.1:1")
		o.RetryMaxAttempts = 1
	})
	s := dynamodb.New(c, dynamodb.Config{Table: "x"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Load(ctx, "p", "l"); err == nil {
		t.Fatal("Load against a closed port succeeded")
	}
	if err := s.PutIntent(ctx, streamd.Intent{Pipeline: "p", Lane: "l", To: streamd.Position{Offset: 1}}); err == nil {
		t.Fatal("PutIntent against a closed port succeeded")
	}
	if err := s.EnsureTable(ctx); err == nil {
		t.Fatal("EnsureTable against a closed port succeeded")
	}
}

// heldFence is a Fence for one process that believes it holds every lane
// with owner/counter; setLease writes the table's lease attributes as a
// lease manager would.
type heldFence struct {
	owner   string
	counter int64
	held    bool
	calls   atomic.Int64
}

func (f *heldFence) Fenced(ctx context.Context, pipeline, lane string, write func(string, int64) error) error {
	f.calls.Add(1)
	if !f.held {
		return fmt.Errorf("lane %q: %w", lane, checkpoint.ErrFenced)
	}
	return write(f.owner, f.counter)
}

func setLease(t *testing.T, table, pipeline, lane, owner string, counter int64) {
	t.Helper()
	_, err := peer.Client().UpdateItem(context.Background(), &ddb.UpdateItemInput{
		TableName: aws.String(table),
		Key: map[string]types.AttributeValue{
			dynamodb.AttrPipeline: &types.AttributeValueMemberS{Value: pipeline},
			dynamodb.AttrLane:     &types.AttributeValueMemberS{Value: lane},
		},
		UpdateExpression:         aws.String("SET #o = :o, #c = :c"),
		ExpressionAttributeNames: map[string]string{"#o": dynamodb.AttrLeaseOwner, "#c": dynamodb.AttrLeaseCounter},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":o": &types.AttributeValueMemberS{Value: owner},
			":c": &types.AttributeValueMemberN{Value: strconv.FormatInt(counter, 10)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFencing(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	s := dynamodb.New(peer.Client(), dynamodb.Config{Table: table})
	f := &heldFence{owner: "worker-a", counter: 7, held: true}
	s.SetFence("p", f)
	pos := func(n int64) streamd.Position { return streamd.Position{Offset: n} }
	in := streamd.Intent{Pipeline: "p", Lane: "shard-1", From: pos(1), To: pos(10)}

	tests := []struct {
		name          string
		owner         string
		counter       int64
		held          bool
		wantFenced    bool
		wantCommitted bool
	}{
		{name: "no lease item", wantFenced: true, held: true},
		{name: "held by us", owner: "worker-a", counter: 7, held: true, wantCommitted: true},
		{name: "taken by another worker", owner: "worker-b", counter: 8, held: true, wantFenced: true},
		{name: "same owner, newer counter (re-taken after loss)", owner: "worker-a", counter: 9, held: true, wantFenced: true},
		{name: "fence says not held", owner: "worker-a", counter: 7, held: false, wantFenced: true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lane := fmt.Sprintf("shard-%d", i)
			in := in
			in.Lane = lane
			if tc.owner != "" {
				setLease(t, table, "p", lane, tc.owner, tc.counter)
			}
			f.held = tc.held
			err := s.PutIntent(ctx, in)
			if tc.wantFenced != errors.Is(err, checkpoint.ErrFenced) || (!tc.wantFenced && err != nil) {
				t.Fatalf("PutIntent = %v, want fenced=%v", err, tc.wantFenced)
			}
			if !tc.wantFenced {
				// Lose the lease between intent and commit.
				err = s.Commit(ctx, in, []byte("x"))
				if err != nil {
					t.Fatalf("Commit = %v", err)
				}
				setLease(t, table, "p", lane, "worker-b", tc.counter+1)
				next := streamd.Intent{Pipeline: "p", Lane: lane, From: pos(11), To: pos(20)}
				if err := s.PutIntent(ctx, next); !errors.Is(err, checkpoint.ErrFenced) {
					t.Fatalf("PutIntent after losing the lease = %v, want ErrFenced", err)
				}
				if err := s.Commit(ctx, next, nil); !errors.Is(err, checkpoint.ErrFenced) {
					t.Fatalf("Commit after losing the lease = %v, want ErrFenced", err)
				}
			}
			st, err := s.Load(ctx, "p", lane)
			if err != nil {
				t.Fatal(err)
			}
			if st.HasCommit != tc.wantCommitted || (tc.wantCommitted && st.Committed != in.To) {
				t.Fatalf("state %+v, want committed=%v at %s", st, tc.wantCommitted, in.To)
			}
		})
	}
	if f.calls.Load() == 0 {
		t.Fatal("the fence was never consulted")
	}
	// Without a fence the same lane is writable again (another pipeline's
	// store has none).
	s.SetFence("p", nil)
	if err := s.PutIntent(ctx, streamd.Intent{Pipeline: "p", Lane: "shard-1", From: pos(11), To: pos(20)}); err != nil {
		t.Fatalf("unfenced PutIntent: %v", err)
	}
}

func TestPutIntentRacesAnotherWriter(t *testing.T) {
	// Two stores (two processes without leases) race intents on one lane:
	// exactly one wins, the other sees ErrConflict; never both.
	ctx := context.Background()
	table := newTable(t)
	for round := 0; round < 5; round++ {
		lane := fmt.Sprintf("l%d", round)
		a := dynamodb.New(peer.Client(), dynamodb.Config{Table: table})
		b := dynamodb.New(peer.Client(), dynamodb.Config{Table: table})
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range []*dynamodb.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.PutIntent(ctx, streamd.Intent{Pipeline: "p", Lane: lane, From: streamd.Position{Offset: 0}, To: streamd.Position{Offset: int64(10 + i)}})
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, checkpoint.ErrConflict):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d writers won, want exactly 1 (%v)", round, ok, errs)
		}
	}
}

// TestCommitStateLimit: the largest state that fits commits and reads back
// whole from DynamoDB Local; one byte more fails with ErrStateTooLarge and
// leaves the lane as it was (intent still open, old state).
func TestCommitStateLimit(t *testing.T) {
	ctx := context.Background()
	s := dynamodb.New(peer.Client(), dynamodb.Config{Table: newTable(t)})
	in := streamd.Intent{Pipeline: "p", Lane: "l", From: streamd.Position{Offset: 0}, To: streamd.Position{Offset: 9}}
	if err := s.PutIntent(ctx, in); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, dynamodb.MaxOpStateBytes)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := s.Commit(ctx, in, big); err != nil {
		t.Fatalf("Commit of %d bytes: %v", len(big), err)
	}
	next := streamd.Intent{Pipeline: "p", Lane: "l", From: streamd.Position{Offset: 10}, To: streamd.Position{Offset: 19}}
	if err := s.PutIntent(ctx, next); err != nil {
		t.Fatal(err)
	}
	err := s.Commit(ctx, next, make([]byte, dynamodb.MaxOpStateBytes+1))
	if !errors.Is(err, dynamodb.ErrStateTooLarge) {
		t.Fatalf("Commit of one byte more = %v, want ErrStateTooLarge", err)
	}
	st, err := s.Load(ctx, "p", "l")
	if err != nil {
		t.Fatal(err)
	}
	if st.Committed.Offset != 9 || st.Intent == nil || *st.Intent != next || len(st.OpState) != len(big) || st.OpState[12345] != big[12345] {
		t.Fatalf("state after the refused commit: committed %s, intent %v, %d state bytes", st.Committed, st.Intent, len(st.OpState))
	}
}
