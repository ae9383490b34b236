package kafka

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/salesgen"
	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pipeline"
	"github.com/streamd/streamd/sink/deadletter"
	"github.com/streamd/streamd/sink/objstore"
	"github.com/streamd/streamd/sink/parquet"
	"github.com/streamd/streamd/transform"
	"github.com/streamd/streamd/window"
)

// salesRecords generates n sales JSON records (with malformed, uncastable
// and filtered ones) spread over parts partitions of topic.
func salesRecords(t testing.TB, topic string, parts, n, firstID int, o salesgen.Options) ([]*kgo.Record, []salesgen.Truth) {
	t.Helper()
	var buf bytes.Buffer
	o.FirstID = firstID
	truths, err := salesgen.Write(&buf, n, o)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	recs := make([]*kgo.Record, len(lines))
	for i, l := range lines {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i % parts), Key: []byte(truths[i].ID), Value: l}
	}
	return recs, truths
}

func salesProgram(t testing.TB) *transform.Program {
	t.Helper()
	cols := []transform.ColumnSpec{
		{Name: "transaction_id", Type: streamd.Type{Kind: streamd.KindString}},
		{Name: "quantity", Type: streamd.Type{Kind: streamd.KindInt32}},
		{Name: "unit_price", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 10, Scale: 2}},
		{Name: "region", Type: streamd.Type{Kind: streamd.KindString}},
	}
	p, err := transform.Compile(transform.Spec{Format: "jsonl", Columns: cols, Filters: []string{"quantity > 0"}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPipelineExactlyOnce runs the source inside the real pipeline (decode,
// Parquet, dead letter, file checkpoint store) twice over a topic: every
// good record lands once, poison records are dead-lettered without
// stalling their partitions, and the group offsets reach the end.
func TestPipelineExactlyOnce(t *testing.T) {
	k := testenv.Kafka(t)
	k.CreateTopic(t, "psales", 6)
	o := salesgen.Options{Seed: 7, MalformedEvery: 97, UncastableEvery: 89, FilteredEvery: 31}
	recs, truths := salesRecords(t, "psales", 6, 3000, 0, o)
	produce(t, k, recs)
	dir := t.TempDir()
	store := checkpoint.NewFileStore(filepath.Join(dir, "state"))

	run := func(until func() bool) {
		t.Helper()
		src, err := New(testConfig(k, "gpipe", "psales"))
		if err != nil {
			t.Fatal(err)
		}
		out := objstore.NewLocal(filepath.Join(dir, "out"))
		pq, err := parquet.New(out, "sales", parquet.Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		dl := deadletter.New(objstore.NewLocal(filepath.Join(dir, "dlq")), "sales")
		p, err := pipeline.New(pipeline.Config{Name: "sales", Source: src, Processor: salesProgram(t), Sink: pq, DeadLetter: dl,
			Store: store, Window: window.Policy{MaxRecords: 97, MaxAge: 200 * time.Millisecond}, DrainTimeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		testenv.WaitFor(t, 60*time.Second, "the pipeline to get far enough", until)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("pipeline: %v", err)
		}
	}
	committed := func() int64 {
		var n int64
		states, _ := store.Lanes(context.Background(), "sales")
		for _, st := range states {
			if st.HasCommit {
				n += st.Committed.Offset + 1
			}
		}
		return n
	}
	run(func() bool { return committed() >= 1000 }) // stop midway
	more, moreTruths := salesRecords(t, "psales", 6, 1200, 3000, o)
	produce(t, k, more)
	truths = append(truths, moreTruths...)
	run(func() bool { return committed() == int64(len(truths)) })

	rows, err := outcheck.ReadParquetDir(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	dls, err := outcheck.ReadDeadLetters(filepath.Join(dir, "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range rows {
		seen[r["transaction_id"]]++
	}
	dead := map[string]int{}
	for _, d := range dls {
		dead[d.Lane+"@"+d.Position]++
	}
	var good, bad int
	for _, tr := range truths {
		switch tr.Kind {
		case salesgen.Good:
			good++
			if seen[tr.ID] != 1 {
				t.Fatalf("record %s written %d times, want once", tr.ID, seen[tr.ID])
			}
		case salesgen.Filtered:
			if seen[tr.ID] != 0 {
				t.Fatalf("filtered record %s written", tr.ID)
			}
		default:
			bad++
		}
	}
	if len(rows) != good {
		t.Errorf("%d rows, want %d", len(rows), good)
	}
	if len(dls) != bad {
		t.Errorf("%d dead letters, want %d", len(dls), bad)
	}
	for key, n := range dead {
		if n != 1 {
			t.Errorf("dead letter %s written %d times", key, n)
		}
	}
	// The group offsets followed the checkpoint store to the end.
	got := k.GroupOffsets(t, "gpipe")
	var sum int64
	for _, off := range got["psales"] {
		sum += off
	}
	if sum != int64(len(truths)) {
		t.Errorf("group offsets sum to %d, want %d", sum, len(truths))
	}
}
