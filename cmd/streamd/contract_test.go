package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/salesgen"
)

// TestDesignContractConfig runs the config contract of DESIGN.md — decode +
// cast, an expression column, filter, dedup and quality rules, a window,
// partitioned snappy Parquet and a dead letter — on generated sales with
// re-deliveries and missing customer ids, and checks that every record
// read is accounted for.
func TestDesignContractConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	truths, err := salesgen.Write(&buf, 5000, salesgen.Options{Seed: 3, FilteredEvery: 29, MalformedEvery: 211})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(buf.String(), "\n")
	var in strings.Builder
	redelivered, noCustomer := 0, 0
	for i, l := range lines {
		if l == "" {
			continue
		}
		if i%17 == 5 && truths[i].Kind == salesgen.Good {
			l = regexp.MustCompile(`"customer_id":"C\d+",`).ReplaceAllString(l, "")
			noCustomer++
		}
		in.WriteString(l)
		if i%23 == 7 && truths[i].Kind == salesgen.Good && i%17 != 5 {
			in.WriteString(l) // a re-delivery
			redelivered++
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "sales.jsonl"), []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := `state_dir: ./var/state
shutdown_timeout: 25s
memory_limit: 512MiB
pipelines:
  - name: sales
    source:
      type: file
      paths: ["data/*.jsonl"]
      format: jsonl
    schema:
      - {name: transaction_id, type: string}
      - {name: customer_id, type: string}
      - {name: quantity, type: int32}
      - {name: unit_price, type: "decimal(10,2)"}
      - {name: transaction_date, type: date}
      - {name: event_time, type: timestamp}
      - {name: region, type: string}
      - {name: total_amount, type: "decimal(12,2)", expr: "quantity * unit_price"}
    transforms:
      - filter: "quantity > 0"
      - dedup: {keys: [transaction_id], ttl: 24h}
      - quality:
          rules: ['IsComplete "customer_id"', 'ColumnValues "quantity" > 0', 'ColumnValues "quantity" <= 1000']
    window: {max_records: 1000, max_bytes: 64MiB, max_age: 30s}
    sink:
      type: parquet
      path: ./var/out/sales
      partition_by: [region]
      compression: snappy
    dead_letter: {path: ./var/dlq/sales}
`
	if err := os.WriteFile(filepath.Join(dir, "streamd.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runStreamd(t, dir, "validate", "--config", "streamd.yaml"); err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	out, err := runStreamd(t, dir, "run", "--config", "streamd.yaml")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`read (\d+) = written (\d+) \+ filtered (\d+) \+ deduplicated (\d+) \+ dead-lettered (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary:\n%s", out)
	}
	n := make([]int, 6)
	for i := 1; i < 6; i++ {
		n[i], _ = strconv.Atoi(m[i])
	}
	var good, filtered, malformed int
	for _, tr := range truths {
		switch tr.Kind {
		case salesgen.Good:
			good++
		case salesgen.Filtered:
			filtered++
		default:
			malformed++
		}
	}
	if n[1] != 5000+redelivered || n[3] != filtered || n[4] != redelivered || n[5] != malformed+noCustomer || n[2] != good-noCustomer {
		t.Fatalf("summary %v; want read %d, written %d, filtered %d, deduplicated %d, dead-lettered %d",
			m[0], 5000+redelivered, good-noCustomer, filtered, redelivered, malformed+noCustomer)
	}
	rows, err := outcheck.ReadParquetDir(filepath.Join(dir, "var", "out", "sales"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != n[2] {
		t.Fatalf("%d rows in Parquet, summary says %d", len(rows), n[2])
	}
	dls, err := outcheck.ReadDeadLetters(filepath.Join(dir, "var", "dlq", "sales"))
	if err != nil {
		t.Fatal(err)
	}
	rules := 0
	for _, d := range dls {
		if strings.Contains(d.Error, "IsComplete") {
			rules++
		}
	}
	if len(dls) != n[5] || rules != noCustomer {
		t.Fatalf("%d dead letters (%d naming IsComplete), want %d (%d)", len(dls), rules, n[5], noCustomer)
	}
}
