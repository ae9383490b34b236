package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/salesgen"
	"github.com/streamd/streamd/internal/testenv"
)

// streamdBin is the binary built from cmd/streamd for these tests.
var streamdBin string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithStreamd(m, &streamdBin)) }

// salesSchema is the contract's sales schema as config YAML.
const salesSchema = `    schema:
      - {name: transaction_id, type: string}
      - {name: customer_id, type: string}
      - {name: product_id, type: string}
      - {name: quantity, type: int32}
      - {name: unit_price, type: "decimal(10,2)"}
      - {name: transaction_date, type: date}
      - {name: event_time, type: timestamp}
      - {name: region, type: string}
      - {name: total_amount, type: "decimal(12,2)", expr: "quantity * unit_price"}
    transforms:
      - filter: "quantity > 0"
`

// writeConfig writes a kafka → Parquet config into dir and returns its
// path. source holds extra source keys ("{...}" inner text).
func writeConfig(t testing.TB, dir, name string, brokers []string, topic, group, window, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir: %[1]s/state
shutdown_timeout: 20s
pipelines:
  - name: sales
    source: {type: kafka, brokers: ["%[2]s"], topics: [%[3]s], group: %[4]s, start: earliest%[7]s}
%[5]s    window: %[6]s
    sink: {type: parquet, path: %[1]s/out, partition_by: [region], compression: snappy}
    dead_letter: {path: %[1]s/dlq}
`, dir, strings.Join(brokers, `","`), topic, group, salesSchema, window, extra)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs `streamd run --config cfg` (testenv.StartChild: SIGKILLed
// at cleanup).
func start(t testing.TB, name, cfg string) *testenv.Child {
	t.Helper()
	return testenv.StartChild(t, streamdBin, name, nil, "run", "--config", cfg)
}

// salesBatch returns n sales records with ids from firstID, spread
// round-robin over parts partitions of topic, keyed by transaction_id.
func salesBatch(topic string, parts, n, firstID int, o salesgen.Options) ([]*kgo.Record, []salesgen.Truth) {
	var buf bytes.Buffer
	o.FirstID = firstID
	o.Seed = int64(firstID + 1)
	truths, err := salesgen.Write(&buf, n, o)
	if err != nil {
		panic(err) // writing to a bytes.Buffer does not fail
	}
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	recs := make([]*kgo.Record, len(lines))
	for i, l := range lines {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32((firstID + i) % parts), Key: []byte(truths[i].ID), Value: l}
	}
	return recs, truths
}

// committed returns the sum of the group's committed offsets of topic;
// 0 while the group does not exist yet. Callers poll it through one
// admin client: a client per call would leave a connection and its
// goroutines per poll until the test ends, load the broker and, in the
// benchmark, take CPU from the process measured.
func committed(adm *kadm.Client, group, topic string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0
	}
	var n int64
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At > 0 {
			n += o.At
		}
	})
	return n
}

// producer keeps writing batches until total records are written.
type producer struct {
	mu     sync.Mutex
	truths []salesgen.Truth
	err    error
	done   chan struct{}
}

func startProducer(t testing.TB, k *testenv.KafkaPeer, topic string, parts, total, batch int, every time.Duration, o salesgen.Options) *producer {
	t.Helper()
	cl := k.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	p := &producer{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); <-p.done })
	go func() {
		defer close(p.done)
		for first := 0; first < total; first += batch {
			recs, truths := salesBatch(topic, parts, min(batch, total-first), first, o)
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
				return
			}
			p.mu.Lock()
			p.truths = append(p.truths, truths...)
			p.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
	return p
}
