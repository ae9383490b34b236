package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/testenv"
)

// streamdBin is the binary built from cmd/streamd for these tests.
var streamdBin string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithStreamd(m, &streamdBin)) }

// TestSharedStreamSurvivesKillAndReshard: two streamd processes share a
// 4-shard stream through leases in the DynamoDB checkpoint table; shard 0
// is split and shards 2+3 merged while a producer writes; one process is
// SIGKILLed mid-stream (its leases expire and move) and restarted. In the
// end every record is in the Parquet output exactly once, and each key's
// records are in production order within every file.
func TestSharedStreamSurvivesKillAndReshard(t *testing.T) {
	const stream, keys, perKey = "clicks", 24, 150
	kin := testenv.Kinesis(t)
	ddb := testenv.DynamoDB(t)
	kin.CreateStream(t, stream, 4)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, stream)
	env := append(kin.Env(), ddb.Env()...)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := kin.Client()
	prod := make(chan error, 1)
	go func() {
		prod <- produce(ctx, c, stream, keys, perKey, func(n int) error {
			switch n {
			case perKey / 3:
				return split(ctx, c, stream, "shardId-000000000000")
			case 2 * perKey / 3:
				return merge(ctx, c, stream, "shardId-000000000002", "shardId-000000000003")
			}
			return nil
		})
	}()

	p1 := start(t, "p1", cfg, env)
	p2 := start(t, "p2", cfg, env)
	out := filepath.Join(dir, "out")
	rows := func() int {
		r, err := outcheck.ReadParquetDir(out)
		if err != nil {
			return 0
		}
		return len(r)
	}
	testenv.WaitFor(t, 2*time.Minute, "a first share of the records", func() bool { return rows() >= keys*perKey/4 })
	p1.Kill(t) // open intents, leases held until they expire
	p1 = start(t, "p1-restarted", cfg, env)
	if err := <-prod; err != nil {
		t.Fatalf("produce: %v", err)
	}
	testenv.WaitFor(t, 3*time.Minute, "every record", func() bool { return rows() >= keys*perKey })
	p1.Stop(t, 40*time.Second)
	p2.Stop(t, 40*time.Second)

	all, err := outcheck.ReadParquetDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if tmp, err := outcheck.TempFiles(out); err != nil || len(tmp) > 0 {
		t.Errorf("temporary files left visible: %v %v", tmp, err)
	}
	seen := map[string]int{}
	lastInFile := map[string]int64{}
	for _, r := range all {
		id := r["k"] + "/" + r["n"]
		seen[id]++
		n, err := strconv.ParseInt(r["n"], 10, 64)
		if err != nil {
			t.Fatalf("row %v: %v", r, err)
		}
		fk := r["_file"] + "|" + r["k"]
		if last, ok := lastInFile[fk]; ok && n <= last {
			t.Errorf("file %s: key %s goes from %d to %d", r["_file"], r["k"], last, n)
		}
		lastInFile[fk] = n
	}
	for k := 0; k < keys; k++ {
		for n := 0; n < perKey; n++ {
			id := fmt.Sprintf("key-%02d/%d", k, n)
			if seen[id] != 1 {
				t.Errorf("record %s written %d times, want once", id, seen[id])
			}
		}
	}
	if len(all) != keys*perKey {
		t.Errorf("%d rows, want %d", len(all), keys*perKey)
	}
}

func writeConfig(t *testing.T, dir, stream string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir: %[1]s/state
checkpoint: {store: dynamodb, table: streamd-e2e}
shutdown_timeout: 20s
pipelines:
  - name: clicks
    source: {type: kinesis, stream: %[2]s, start: trim_horizon}
    schema:
      - {name: k, type: string}
      - {name: n, type: int64}
    window: {max_records: 300, max_age: 300ms}
    sink: {type: parquet, path: %[1]s/out}
    dead_letter: {path: %[1]s/dlq}
`, dir, stream)
	p := filepath.Join(dir, "streamd.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs `streamd run --config cfg` with env added to the test's
// environment (testenv.StartChild: SIGKILLed at cleanup).
func start(t *testing.T, name, cfg string, env []string) *testenv.Child {
	t.Helper()
	return testenv.StartChild(t, streamdBin, name, env, "run", "--config", cfg)
}

// produce puts perKey events {k, n} for each of keys partition keys, one
// PutRecords per round, calling reshard(round) first.
func produce(ctx context.Context, c *awskinesis.Client, stream string, keys, perKey int, reshard func(int) error) error {
	for n := 0; n < perKey; n++ {
		if err := reshard(n); err != nil {
			return err
		}
		var entries []types.PutRecordsRequestEntry
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("key-%02d", k)
			b, _ := json.Marshal(map[string]any{"k": key, "n": n})
			entries = append(entries, types.PutRecordsRequestEntry{Data: b, PartitionKey: aws.String(key)})
		}
		out, err := c.PutRecords(ctx, &awskinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			return err
		}
		if aws.ToInt32(out.FailedRecordCount) > 0 {
			return fmt.Errorf("put records: %d failed", aws.ToInt32(out.FailedRecordCount))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

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
			return err
		}
		return testenv.WaitStreamActive(ctx, c, stream)
	}
	return fmt.Errorf("split: no shard %s", shard)
}

func merge(ctx context.Context, c *awskinesis.Client, stream, a, b string) error {
	if _, err := c.MergeShards(ctx, &awskinesis.MergeShardsInput{StreamName: aws.String(stream), ShardToMerge: aws.String(a), AdjacentShardToMerge: aws.String(b)}); err != nil {
		return err
	}
	return testenv.WaitStreamActive(ctx, c, stream)
}
