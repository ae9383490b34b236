package kinesis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/internal/testenv"
)

// event is what the test producer puts: key k's n-th record.
type event struct {
	K string `json:"k"`
	N int64  `json:"n"`
}

// jsonProcessor decodes events into a two-column batch (k string, n int64)
// and dead-letters records the source marked or that do not decode.
type jsonProcessor struct{ schema *streamd.Schema }

func newProcessor(t testing.TB) *jsonProcessor {
	s, err := streamd.NewSchema(streamd.Field{Name: "k", Type: streamd.Type{Kind: streamd.KindString}},
		streamd.Field{Name: "n", Type: streamd.Type{Kind: streamd.KindInt64}})
	if err != nil {
		t.Fatal(err)
	}
	return &jsonProcessor{schema: s}
}

func (p *jsonProcessor) Schema() *streamd.Schema { return p.schema }

func (p *jsonProcessor) Process(lane string, _ []byte, recs []streamd.Record) *streamd.Batch {
	b := streamd.NewBatch(p.schema, lane)
	for _, r := range recs {
		b.NoteRead(r.Pos, len(r.Data))
		if r.Err != "" {
			b.AddDead(r.Pos, r.Err, r.Data)
			continue
		}
		var e event
		if err := json.Unmarshal(r.Data, &e); err != nil {
			b.AddDead(r.Pos, err.Error(), r.Data)
			continue
		}
		b.AddRowMeta(r.Pos, r.Time)
		b.Cols[0].AppendBytes([]byte(e.K))
		b.Cols[1].AppendInt64(e.N)
	}
	return b
}

// row is one written row.
type row struct {
	event
	lane   string
	pos    streamd.Position
	writer string
}

// memSink keeps the rows of every intent (a redo replaces them, as the
// deterministic object names of a real sink do) and the order in which
// intents were first written.
type memSink struct {
	writer  string
	shared  *memSinkData
	failing func(in streamd.Intent) error
}

type memSinkData struct {
	mu     sync.Mutex
	byKey  map[string][]row // intent key → rows
	order  []string         // intent keys in first-write order
	dead   []streamd.DeadLetter
	writes int
}

func newMemSink(writer string, shared *memSinkData) *memSink {
	if shared == nil {
		shared = &memSinkData{byKey: map[string][]row{}}
	}
	return &memSink{writer: writer, shared: shared}
}

func (s *memSink) Write(_ context.Context, in streamd.Intent, b *streamd.Batch) error {
	if s.failing != nil {
		if err := s.failing(in); err != nil {
			return err
		}
	}
	rows := make([]row, 0, b.Len())
	for i := 0; i < b.Len(); i++ {
		rows = append(rows, row{event: event{K: string(b.Cols[0].Bytes.At(i)), N: b.Cols[1].Int64[i]}, lane: in.Lane, pos: b.Pos[i], writer: s.writer})
	}
	k := fmt.Sprintf("%s|%s|%s", in.Lane, in.From, in.To)
	d := s.shared
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writes++
	if _, ok := d.byKey[k]; !ok {
		d.order = append(d.order, k)
		d.dead = append(d.dead, b.Dead...)
	}
	d.byKey[k] = rows
	return nil
}

func (s *memSink) Close(context.Context) error { return nil }

// rows returns every row in first-write order of its intent.
func (d *memSinkData) rows() []row {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []row
	for _, k := range d.order {
		out = append(out, d.byKey[k]...)
	}
	return out
}

func (d *memSinkData) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, rs := range d.byKey {
		n += len(rs)
	}
	return n
}

// checkExactlyOnceInOrder verifies that every key's events 0..perKey-1
// were written exactly once, in production order.
func checkExactlyOnceInOrder(t *testing.T, rows []row, keys, perKey int) {
	t.Helper()
	next := map[string]int64{}
	for _, r := range rows {
		if r.N != next[r.K] {
			t.Fatalf("key %s: got event %d (lane %s, %s), want %d: duplicated, lost or out of order", r.K, r.N, r.lane, r.pos, next[r.K])
		}
		next[r.K]++
	}
	if len(next) != keys {
		t.Fatalf("got %d keys, want %d", len(next), keys)
	}
	for k, n := range next {
		if n != int64(perKey) {
			t.Fatalf("key %s: got %d events, want %d", k, n, perKey)
		}
	}
}

// producer puts perKey events for each of keys partition keys, round by
// round (one event per key per round, PutRecords in one call), and calls
// reshard(round) before each round.
func produce(ctx context.Context, c *awskinesis.Client, stream string, keys, perKey int, reshard func(round int) error) error {
	for n := 0; n < perKey; n++ {
		if err := reshard(n); err != nil {
			return err
		}
		var entries []types.PutRecordsRequestEntry
		for k := 0; k < keys; k++ {
			b, _ := json.Marshal(event{K: fmt.Sprintf("key-%02d", k), N: int64(n)})
			entries = append(entries, types.PutRecordsRequestEntry{Data: b, PartitionKey: aws.String(fmt.Sprintf("key-%02d", k))})
		}
		out, err := c.PutRecords(ctx, &awskinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			return fmt.Errorf("put records: %w", err)
		}
		if aws.ToInt32(out.FailedRecordCount) > 0 {
			return fmt.Errorf("put records: %d failed", aws.ToInt32(out.FailedRecordCount))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// split splits shard at the middle of its hash key range.
func split(ctx context.Context, c *awskinesis.Client, stream, shard string) error {
	out, err := c.ListShards(ctx, &awskinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return err
	}
	for _, s := range out.Shards {
		if aws.ToString(s.ShardId) != shard {
			continue
		}
		lo, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
		hi, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
		mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
		if _, err := c.SplitShard(ctx, &awskinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: aws.String(shard), NewStartingHashKey: aws.String(mid.String())}); err != nil {
			return fmt.Errorf("split %s: %w", shard, err)
		}
		return testenv.WaitStreamActive(ctx, c, stream)
	}
	return fmt.Errorf("split: no shard %s", shard)
}

func merge(ctx context.Context, c *awskinesis.Client, stream, a, b string) error {
	if _, err := c.MergeShards(ctx, &awskinesis.MergeShardsInput{StreamName: aws.String(stream), ShardToMerge: aws.String(a), AdjacentShardToMerge: aws.String(b)}); err != nil {
		return fmt.Errorf("merge %s and %s: %w", a, b, err)
	}
	return testenv.WaitStreamActive(ctx, c, stream)
}

// lanes returns the distinct lanes of rows, sorted.
func lanes(rows []row) []string {
	set := map[string]bool{}
	for _, r := range rows {
		set[r.lane] = true
	}
	var out []string
	for l := range set {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}
