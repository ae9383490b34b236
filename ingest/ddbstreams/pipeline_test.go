package ddbstreams_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/ingest/ddbstreams"
	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pipeline"
	"github.com/streamd/streamd/sink/objstore"
	"github.com/streamd/streamd/sink/parquet"
	"github.com/streamd/streamd/transform"
	"github.com/streamd/streamd/window"
)

// cdcProgram is the change-log schema: the change's own fields, the
// flattened attributes (quantity exact in decimal(38,9)) and both images as
// JSON.
func cdcProgram(t testing.TB) *transform.Program {
	t.Helper()
	str := streamd.Type{Kind: streamd.KindString}
	p, err := transform.Compile(transform.Spec{Format: "jsonl", Columns: []transform.ColumnSpec{
		{Name: "op", Type: str},
		{Name: "pk", Type: str},
		{Name: "ver", Type: streamd.Type{Kind: streamd.KindInt64}},
		{Name: "quantity", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 38, Scale: 9}},
		{Name: "sequence_number", Type: str},
		{Name: "event_time", Type: streamd.Type{Kind: streamd.KindTimestamp}},
		{Name: "new_image", Type: streamd.Type{Kind: streamd.KindJSON}},
		{Name: "old_image", Type: streamd.Type{Kind: streamd.KindJSON}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// qty is the exact quantity of a key's version: 20 integer and 9 fraction
// digits, the last one never 0 (DynamoDB drops trailing zeros).
func qty(key, ver int) string {
	if key == 7 && ver == 1 {
		return "12345678901234567890.123456789"
	}
	return fmt.Sprintf("1%019d.%08d%d", key*10+ver, key, 1+ver%9)
}

// writer applies puts, updates and deletes to keys and logs, per key, the
// changes it made in order ("insert:1", "modify:2", "remove:2", ...).
type writer struct {
	db    *dynamodb.Client
	table string
	done  atomic.Int64
	mu    sync.Mutex
	log   map[string][]string
}

func (w *writer) note(pk, change string) {
	w.mu.Lock()
	w.log[pk] = append(w.log[pk], change)
	w.mu.Unlock()
	w.done.Add(1)
}

// key runs the changes of key i: insert v1; every 3rd key modify to v2;
// every 5th delete; every 10th insert again as v3.
func (w *writer) key(ctx context.Context, i int) error {
	pk := fmt.Sprintf("item-%05d", i)
	item := func(ver int) map[string]dbtypes.AttributeValue {
		return map[string]dbtypes.AttributeValue{
			"pk": &dbtypes.AttributeValueMemberS{Value: pk}, "ver": &dbtypes.AttributeValueMemberN{Value: strconv.Itoa(ver)},
			"quantity": &dbtypes.AttributeValueMemberN{Value: qty(i, ver)},
			"tags":     &dbtypes.AttributeValueMemberSS{Value: []string{"a", fmt.Sprint(i % 7)}},
		}
	}
	if _, err := w.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(w.table), Item: item(1)}); err != nil {
		return err
	}
	w.note(pk, "insert:1")
	ver := 1
	if i%3 == 0 {
		ver = 2
		_, err := w.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(w.table),
			Key:              map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: pk}},
			UpdateExpression: aws.String("SET ver = :v, quantity = :q"),
			ExpressionAttributeValues: map[string]dbtypes.AttributeValue{
				":v": &dbtypes.AttributeValueMemberN{Value: "2"}, ":q": &dbtypes.AttributeValueMemberN{Value: qty(i, 2)}}})
		if err != nil {
			return err
		}
		w.note(pk, "modify:2")
	}
	if i%5 == 0 {
		_, err := w.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(w.table),
			Key: map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: pk}}})
		if err != nil {
			return err
		}
		w.note(pk, fmt.Sprintf("remove:%d", ver))
		if i%10 == 0 {
			if _, err := w.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(w.table), Item: item(3)}); err != nil {
				return err
			}
			w.note(pk, "insert:3")
		}
	}
	return nil
}

// TestPipelineChangeLogExactlyOnce drives the source inside the real
// pipeline (transform program, Parquet sink on a local directory, file
// checkpoint store) while a writer changes 10k items, forces a shard
// rollover midway, stops the pipeline hard (no drain) and restarts it. The
// Parquet change log then holds every change once, in per-key order, and
// replaying it gives the table's final state, item by item.
func TestPipelineChangeLogExactlyOnce(t *testing.T) {
	db := peer.Client()
	table := createTable(t, db)
	const keys = 10000
	w := &writer{db: db, table: table, log: map[string][]string{}}
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	var wg sync.WaitGroup
	werr := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < keys; i += 4 {
				if err := w.key(wctx, i); err != nil {
					werr <- err
					return
				}
			}
		}()
	}
	writerDone := make(chan struct{})
	go func() { wg.Wait(); close(writerDone) }()

	dir := t.TempDir()
	store := checkpoint.NewFileStore(filepath.Join(dir, "state"))
	outDir := filepath.Join(dir, "out")
	start := func(drain time.Duration) (*pipeline.Pipeline, context.CancelFunc, chan error) {
		src, err := ddbstreams.New(db, peer.StreamsClient(), fastConfig(table))
		if err != nil {
			t.Fatal(err)
		}
		pq, err := parquet.New(objstore.NewLocal(outDir), "cdc", parquet.Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := pipeline.New(pipeline.Config{Name: "cdc", Source: src, Processor: cdcProgram(t), Sink: pq, Store: store,
			Window: window.Policy{MaxRecords: 700, MaxAge: 300 * time.Millisecond}, DrainTimeout: drain})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		return p, cancel, done
	}

	// Run 1: until the writer is halfway, roll the shards over, go on
	// until more is committed, then stop hard (a drain of 1ms abandons
	// what is in flight).
	p1, cancel1, done1 := start(time.Millisecond)
	testenv.WaitFor(t, 120*time.Second, "the writer to get halfway", func() bool { return w.done.Load() >= 8000 })
	peer.TriggerShardRollovers(t)
	base := p1.Stats().Written
	testenv.WaitFor(t, 120*time.Second, "commits after the rollover", func() bool { return p1.Stats().Written >= base+2000 })
	cancel1()
	if err := <-done1; err != nil {
		t.Logf("hard stop: %v", err) // abandoned in-flight batches are expected
	}
	// Run 2: restart on the same checkpoints and output until everything
	// the writer did is in the change log.
	select {
	case <-writerDone:
	case err := <-werr:
		t.Fatalf("writer: %v", err)
	case <-time.After(180 * time.Second):
		t.Fatal("writer did not finish")
	}
	total := int(w.done.Load())
	_, cancel2, done2 := start(20 * time.Second)
	var rows []outcheck.Row
	testenv.WaitFor(t, 180*time.Second, fmt.Sprintf("%d rows", total), func() bool {
		var err error
		rows, err = outcheck.ReadParquetDir(outDir)
		if err != nil {
			t.Fatal(err)
		}
		return len(rows) >= total
	})
	cancel2()
	if err := <-done2; err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	rows, err := outcheck.ReadParquetDir(outDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != total {
		t.Fatalf("%d rows in the change log, the writer made %d changes", len(rows), total)
	}

	// Exactly once, per-key order.
	bySeq := map[string]bool{}
	byKey := map[string][]outcheck.Row{}
	for _, r := range rows {
		if bySeq[r["sequence_number"]] {
			t.Fatalf("sequence number %s twice in the change log", r["sequence_number"])
		}
		bySeq[r["sequence_number"]] = true
		byKey[r["pk"]] = append(byKey[r["pk"]], r)
	}
	lanes := map[string]bool{}
	states, err := store.Lanes(context.Background(), "cdc")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		lanes[st.Lane] = true
	}
	if len(lanes) < 2 {
		t.Fatalf("committed lanes %v: want the parent and the child of the rollover", lanes)
	}
	final := map[string]string{}
	for pk, rs := range byKey {
		sort.Slice(rs, func(i, j int) bool {
			return streamd.Position{Seq: rs[i]["sequence_number"]}.Compare(streamd.Position{Seq: rs[j]["sequence_number"]}) < 0
		})
		var seen []string
		for _, r := range rs {
			seen = append(seen, r["op"]+":"+r["ver"])
			// Replay: insert/modify upsert the new image, remove deletes.
			switch r["op"] {
			case "insert", "modify":
				final[pk] = r["ver"] + "/" + r["quantity"]
				var img map[string]json.RawMessage
				if err := json.Unmarshal([]byte(r["new_image"]), &img); err != nil || string(img["quantity"]) != r["quantity"] {
					t.Fatalf("%s: new_image %s does not carry quantity %s (%v)", pk, r["new_image"], r["quantity"], err)
				}
			case "remove":
				delete(final, pk)
				if r["new_image"] != outcheck.Null || r["old_image"] == outcheck.Null {
					t.Fatalf("%s: remove with new_image %s, old_image %s", pk, r["new_image"], r["old_image"])
				}
			default:
				t.Fatalf("%s: op %q", pk, r["op"])
			}
		}
		if fmt.Sprint(seen) != fmt.Sprint(w.log[pk]) {
			t.Fatalf("%s: change log %v, writer did %v", pk, seen, w.log[pk])
		}
	}
	if len(byKey) != keys {
		t.Fatalf("%d keys in the change log, want %d", len(byKey), keys)
	}

	// The replayed state is the table's, item by item.
	scanned := map[string]string{}
	in := &dynamodb.ScanInput{TableName: aws.String(table)}
	for {
		out, err := db.Scan(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			pk := it["pk"].(*dbtypes.AttributeValueMemberS).Value
			scanned[pk] = it["ver"].(*dbtypes.AttributeValueMemberN).Value + "/" + it["quantity"].(*dbtypes.AttributeValueMemberN).Value
		}
		if out.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	if len(scanned) != len(final) {
		t.Fatalf("table holds %d items, the replayed change log %d", len(scanned), len(final))
	}
	for pk, want := range scanned {
		if final[pk] != want {
			t.Fatalf("%s: replayed %q, table %q", pk, final[pk], want)
		}
	}
	// N values survive exactly into decimal(38,9).
	if got := byKey["item-00007"][0]["quantity"]; got != "12345678901234567890.123456789" {
		t.Fatalf("quantity of item-00007 = %s, want 12345678901234567890.123456789", got)
	}
}
