package e2e

import (
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/salesgen"
	"github.com/streamd/streamd/internal/testenv"
)

// TestGroupScaleOutExactlyOnce runs two streamd processes in one group
// over a 6-partition topic while a producer keeps writing; one is
// SIGKILLed and restarted mid-stream, a third joins and later leaves
// (SIGTERM). All share one state_dir and one output directory. The final
// Parquet holds every good record exactly once, dead letters hold every
// poison record exactly once, and each file keeps its partition's order.
func TestGroupScaleOutExactlyOnce(t *testing.T) {
	const (
		topic, group = "sales", "streamd-e2e"
		parts        = 6
		total        = 36000
	)
	k := testenv.Kafka(t)
	k.CreateTopic(t, topic, parts)
	dir := t.TempDir()
	extra := ", session_timeout: 3s, rebalance_timeout: 10s, commit_interval: 200ms"
	cfg := writeConfig(t, dir, "streamd.yaml", k.Addrs, topic, group, "{max_records: 700, max_age: 500ms}", extra)

	o := salesgen.Options{MalformedEvery: 101, UncastableEvery: 157, FilteredEvery: 43}
	prod := startProducer(t, k, topic, parts, total, 300, 60*time.Millisecond, o)

	p1 := start(t, "p1", cfg)
	p2 := start(t, "p2", cfg)
	adm := kadm.NewClient(k.Client(t))
	progress := func(n int64) func() bool {
		return func() bool { return committed(adm, group, topic) >= n }
	}
	testenv.WaitFor(t, 90*time.Second, "5000 committed", progress(5000))
	p1.Kill(t) // mid-stream: open intents, maybe half-written files
	time.Sleep(500 * time.Millisecond)
	p1 = start(t, "p1-restarted", cfg)
	testenv.WaitFor(t, 90*time.Second, "14000 committed", progress(14000))
	p3 := start(t, "p3", cfg)
	testenv.WaitFor(t, 90*time.Second, "24000 committed", progress(24000))
	p3.Stop(t, 40*time.Second) // leaves: its partitions move back

	select {
	case <-prod.done:
	case <-time.After(2 * time.Minute):
		t.Fatal("producer did not finish")
	}
	if prod.err != nil {
		t.Fatalf("produce: %v", prod.err)
	}
	testenv.WaitFor(t, 2*time.Minute, "everything committed", progress(total))
	p1.Stop(t, 40*time.Second)
	p2.Stop(t, 40*time.Second)

	checkOutput(t, dir, prod.truths)
}

// checkOutput asserts exactly-once delivery and per-file partition order.
func checkOutput(t *testing.T, dir string, truths []salesgen.Truth) {
	t.Helper()
	rows, err := outcheck.ReadParquetDir(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	dls, err := outcheck.ReadDeadLetters(filepath.Join(dir, "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	if tmp, err := outcheck.TempFiles(filepath.Join(dir, "out")); err != nil || len(tmp) > 0 {
		t.Errorf("temporary files left visible: %v %v", tmp, err)
	}
	seen := map[string]int{}
	byFile := map[string][]string{}
	for _, r := range rows {
		id := r["transaction_id"]
		seen[id]++
		byFile[r["_file"]] = append(byFile[r["_file"]], id)
	}
	var good, bad int
	for _, tr := range truths {
		switch tr.Kind {
		case salesgen.Good:
			good++
			if seen[tr.ID] != 1 {
				t.Errorf("record %s written %d times, want once", tr.ID, seen[tr.ID])
			}
		case salesgen.Filtered:
			if seen[tr.ID] != 0 {
				t.Errorf("filtered record %s written", tr.ID)
			}
		default:
			bad++
		}
	}
	if len(rows) != good {
		t.Errorf("%d rows, want %d", len(rows), good)
	}
	dead := map[string]int{}
	for _, d := range dls {
		dead[d.Lane+"@"+d.Position]++
	}
	if len(dead) != bad || len(dls) != bad {
		t.Errorf("%d dead letters (%d distinct), want %d", len(dls), len(dead), bad)
	}
	// A file is one batch of one partition: ids (produced in increasing
	// order on every partition) must increase down the file.
	for f, ids := range byFile {
		if !sort.StringsAreSorted(ids) {
			t.Errorf("file %s does not keep its partition's order", f)
		}
	}
	t.Logf("%d rows in %d files, %d dead letters, %d records produced", len(rows), len(byFile), len(dls), len(truths))
}
