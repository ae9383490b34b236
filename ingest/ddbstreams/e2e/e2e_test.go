package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/testenv"
)

// cdcSchema is the change-log schema as config YAML.
const cdcSchema = `    schema:
      - {name: op, type: string}
      - {name: pk, type: string}
      - {name: ver, type: int64}
      - {name: quantity, type: "decimal(38,9)"}
      - {name: sequence_number, type: string}
      - {name: event_time, type: timestamp}
      - {name: new_image, type: json}
      - {name: old_image, type: json}
`

func writeConfig(t testing.TB, dir, table string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir: %[1]s/state
shutdown_timeout: 20s
pipelines:
  - name: cdc
    source: {type: dynamodb_streams, table: %[2]s, start: trim_horizon}
%[3]s    window: {max_records: 500, max_age: 500ms}
    sink: {type: parquet, path: %[1]s/out, compression: snappy}
    dead_letter: {path: %[1]s/dlq}
`, dir, table, cdcSchema)
	p := filepath.Join(dir, "streamd.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func createTable(t testing.TB, db *dynamodb.Client, name string) {
	t.Helper()
	_, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName: aws.String(name), BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// qty is a key version's exact quantity (29 significant digits, the last
// never 0 so DynamoDB's normalisation keeps all of them).
func qty(key, ver int) string {
	if key == 3 && ver == 1 {
		return "12345678901234567890.123456789"
	}
	return fmt.Sprintf("1%019d.%08d%d", key*10+ver, key, 1+ver%9)
}

// writer changes keys and logs each key's changes in order.
type writer struct {
	db    *dynamodb.Client
	table string
	mu    sync.Mutex
	log   map[string][]string
	n     int
}

func (w *writer) note(pk, c string) {
	w.mu.Lock()
	w.log[pk] = append(w.log[pk], c)
	w.n++
	w.mu.Unlock()
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *writer) put(ctx context.Context, i, ver int) error {
	pk := fmt.Sprintf("item-%05d", i)
	_, err := w.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(w.table), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk}, "ver": &types.AttributeValueMemberN{Value: strconv.Itoa(ver)},
		"quantity": &types.AttributeValueMemberN{Value: qty(i, ver)},
	}})
	if err == nil {
		w.note(pk, fmt.Sprintf("insert:%d", ver))
	}
	return err
}

// key: insert v1; every 3rd key modify to v2; every 4th delete; every
// 8th insert again as v3.
func (w *writer) key(ctx context.Context, i int) error {
	pk := fmt.Sprintf("item-%05d", i)
	if err := w.put(ctx, i, 1); err != nil {
		return err
	}
	ver := 1
	if i%3 == 0 {
		ver = 2
		if _, err := w.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(w.table),
			Key:              map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}},
			UpdateExpression: aws.String("SET ver = :v, quantity = :q"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":v": &types.AttributeValueMemberN{Value: "2"}, ":q": &types.AttributeValueMemberN{Value: qty(i, 2)}}}); err != nil {
			return err
		}
		w.note(pk, "modify:2")
	}
	if i%4 == 0 {
		if _, err := w.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(w.table),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}}}); err != nil {
			return err
		}
		w.note(pk, fmt.Sprintf("remove:%d", ver))
		if i%8 == 0 {
			return w.put(ctx, i, 3)
		}
	}
	return nil
}

func (w *writer) run(ctx context.Context, from, to, workers int) error {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := from + g; i < to; i += workers {
				if err := w.key(ctx, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func readRows(t testing.TB, dir string) []outcheck.Row {
	t.Helper()
	rows, err := outcheck.ReadParquetDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing written yet
	}
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// checkChangeLog checks exactly once and per-key order against the
// writer's log, and that replaying the log gives the table's items.
func checkChangeLog(t testing.TB, rows []outcheck.Row, w *writer) {
	t.Helper()
	seqs := map[string]bool{}
	byKey := map[string][]outcheck.Row{}
	for _, r := range rows {
		if seqs[r["sequence_number"]] {
			t.Fatalf("sequence number %s twice in the change log", r["sequence_number"])
		}
		seqs[r["sequence_number"]] = true
		byKey[r["pk"]] = append(byKey[r["pk"]], r)
	}
	final := map[string]string{}
	for pk, rs := range byKey {
		sort.Slice(rs, func(i, j int) bool {
			return streamd.Position{Seq: rs[i]["sequence_number"]}.Compare(streamd.Position{Seq: rs[j]["sequence_number"]}) < 0
		})
		var seen []string
		for _, r := range rs {
			seen = append(seen, r["op"]+":"+r["ver"])
			if r["op"] == "remove" {
				delete(final, pk)
				continue
			}
			final[pk] = r["ver"] + "/" + r["quantity"]
			var img map[string]json.RawMessage
			if err := json.Unmarshal([]byte(r["new_image"]), &img); err != nil || string(img["quantity"]) != r["quantity"] {
				t.Fatalf("%s: new_image %s lacks quantity %s", pk, r["new_image"], r["quantity"])
			}
		}
		if fmt.Sprint(seen) != fmt.Sprint(w.log[pk]) {
			t.Fatalf("%s: change log %v, writer did %v", pk, seen, w.log[pk])
		}
	}
	if len(byKey) != len(w.log) {
		t.Fatalf("%d keys in the change log, writer changed %d", len(byKey), len(w.log))
	}
	scanned := map[string]string{}
	in := &dynamodb.ScanInput{TableName: aws.String(w.table)}
	for {
		out, err := w.db.Scan(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			scanned[it["pk"].(*types.AttributeValueMemberS).Value] = it["ver"].(*types.AttributeValueMemberN).Value + "/" + it["quantity"].(*types.AttributeValueMemberN).Value
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
}

// TestKillRestartAcrossRollover SIGKILLs streamd while a writer changes
// 3000 items and after a shard rollover, restarts it, and checks the
// change log.
func TestKillRestartAcrossRollover(t *testing.T) {
	peer := testenv.DynamoDB(t)
	db := peer.Client()
	createTable(t, db, "orders")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "orders")
	w := &writer{db: db, table: "orders", log: map[string][]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- w.run(ctx, 0, 3000, 3) }()

	p1 := start(t, "streamd-1", cfg, peer.Env())
	testenv.WaitFor(t, 120*time.Second, "1000 rows", func() bool { return len(readRows(t, filepath.Join(dir, "out"))) >= 1000 })
	peer.TriggerShardRollovers(t)
	n := w.count()
	testenv.WaitFor(t, 120*time.Second, "rows after the rollover", func() bool { return len(readRows(t, filepath.Join(dir, "out"))) >= n+300 })
	p1.Kill(t)
	if err := <-werr; err != nil {
		t.Fatalf("writer: %v", err)
	}
	total := w.count()
	p2 := start(t, "streamd-2", cfg, peer.Env())
	testenv.WaitFor(t, 120*time.Second, fmt.Sprintf("%d rows", total), func() bool { return len(readRows(t, filepath.Join(dir, "out"))) >= total })
	p2.Stop(t, 30*time.Second)
	rows := readRows(t, filepath.Join(dir, "out"))
	if len(rows) != total {
		t.Fatalf("%d rows, the writer made %d changes", len(rows), total)
	}
	checkChangeLog(t, rows, w)
	for _, r := range rows {
		if r["pk"] == "item-00003" && r["ver"] == "1" && r["quantity"] != "12345678901234567890.123456789" {
			t.Fatalf("quantity %s, want 12345678901234567890.123456789", r["quantity"])
		}
	}
}

// TestStreamReenabled disables and re-enables the table's stream while
// streamd runs: it follows the new stream, logs the gap naming both ARNs,
// and the change log holds everything but the changes made while the
// stream was off.
func TestStreamReenabled(t *testing.T) {
	peer := testenv.DynamoDB(t)
	db := peer.Client()
	createTable(t, db, "accounts")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "accounts")
	w := &writer{db: db, table: "accounts", log: map[string][]string{}}
	ctx := context.Background()
	desc, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("accounts")})
	if err != nil {
		t.Fatal(err)
	}
	oldARN := aws.ToString(desc.Table.LatestStreamArn)
	p := start(t, "streamd", cfg, peer.Env())
	if err := w.run(ctx, 0, 200, 2); err != nil {
		t.Fatal(err)
	}
	before := w.count()
	testenv.WaitFor(t, 60*time.Second, "the first stream's changes", func() bool { return len(readRows(t, filepath.Join(dir, "out"))) >= before })
	setStream := func(on bool) {
		spec := &types.StreamSpecification{StreamEnabled: aws.Bool(on)}
		if on {
			spec.StreamViewType = types.StreamViewTypeNewAndOldImages
		}
		if _, err := db.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String("accounts"), StreamSpecification: spec}); err != nil {
			t.Fatal(err)
		}
	}
	setStream(false)
	gap := &writer{db: db, table: "accounts", log: map[string][]string{}}
	if err := gap.run(ctx, 10000, 10020, 1); err != nil { // in no stream
		t.Fatal(err)
	}
	setStream(true)
	desc, err = db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("accounts")})
	if err != nil {
		t.Fatal(err)
	}
	newARN := aws.ToString(desc.Table.LatestStreamArn)
	if err := w.run(ctx, 200, 400, 2); err != nil {
		t.Fatal(err)
	}
	total := w.count()
	testenv.WaitFor(t, 90*time.Second, fmt.Sprintf("%d rows", total), func() bool { return len(readRows(t, filepath.Join(dir, "out"))) >= total })
	p.Stop(t, 30*time.Second)
	rows := readRows(t, filepath.Join(dir, "out"))
	if len(rows) != total {
		t.Fatalf("%d rows, want %d (the gap's %d changes are in no stream)", len(rows), total, gap.count())
	}
	for _, r := range rows {
		if _, inGap := gap.log[r["pk"]]; inGap {
			t.Fatalf("a change made while the stream was off is in the log: %v", r)
		}
	}
	// The gap's items exist in the table but not in the change log; leave
	// them out of the replay comparison.
	for pk := range gap.log {
		if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("accounts"),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}}}); err != nil {
			t.Fatal(err)
		}
	}
	checkChangeLog(t, rows, w)
	var reported bool
	for _, line := range strings.Split(p.Stderr(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, oldARN) && strings.Contains(line, newARN) {
			reported = true
		}
	}
	if !reported {
		t.Fatalf("no error log naming the old stream %s and the new %s", oldARN, newARN)
	}
}
