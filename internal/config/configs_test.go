package config

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is where the example configs' relative paths resolve from.
const repoRoot = "../.."

// exampleEnv is every variable the example configs require.
var exampleEnv = map[string]string{
	"RAW_BUCKET":  "streamd-raw",
	"LAKE_BUCKET": "streamd-lake",
	"OS_PASSWORD": "example-password",
}

func exampleConfigs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "configs", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no configs/*.yaml found")
	}
	return files
}

// TestExampleConfigsLoad loads and validates every example config.
func TestExampleConfigsLoad(t *testing.T) {
	for k, v := range exampleEnv {
		t.Setenv(k, v)
	}
	for _, k := range []string{"STREAMD_DATA_DIR", "STREAMD_HTTP_LISTEN", "KAFKA_BROKER", "OS_URL", "LAKE_DIR", "STREAMD_STATE_TABLE", "ORDERS_STREAM", "CDC_TABLE"} {
		t.Setenv(k, "") // the defaults in the files apply
	}
	for _, f := range exampleConfigs(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			// Local file globs must match something from the repository root.
			for _, p := range c.Pipelines {
				if p.Source.Type != SourceFile {
					continue
				}
				for _, g := range p.Source.Paths {
					if strings.HasPrefix(g, "s3://") {
						continue
					}
					m, err := filepath.Glob(filepath.Join(repoRoot, g))
					if err != nil || len(m) == 0 {
						t.Errorf("pipeline %s: %q matches no file from the repository root (%v)", p.Name, g, err)
					}
				}
			}
			if strings.Contains(c.String(), exampleEnv["OS_PASSWORD"]) {
				t.Errorf("String() leaks the password")
			}
		})
	}
}

// TestExampleConfigsNeedTheirVariables checks that the required variables
// are reported, with their line, when unset.
func TestExampleConfigsNeedTheirVariables(t *testing.T) {
	for _, tt := range []struct{ file, variable string }{
		{"s3.yaml", "RAW_BUCKET"},
		{"s3.yaml", "LAKE_BUCKET"},
		{"kafka.yaml", "OS_PASSWORD"},
	} {
		data, err := os.ReadFile(filepath.Join(repoRoot, "configs", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		lookup := func(k string) (string, bool) {
			v, ok := exampleEnv[k]
			return v, ok && k != tt.variable
		}
		_, err = Parse(data, tt.file, lookup)
		if !errors.Is(err, ErrUnsetEnv) || !strings.Contains(err.Error(), tt.variable) || !strings.Contains(err.Error(), tt.file+":") {
			t.Errorf("%s without %s: %v", tt.file, tt.variable, err)
		}
	}
}

// TestLocalConfigIsTheContractExample pins the embedded default to the
// DESIGN.md contract.
func TestLocalConfigIsTheContractExample(t *testing.T) {
	t.Setenv("STREAMD_DATA_DIR", "")
	t.Setenv("STREAMD_HTTP_LISTEN", "")
	c, err := Load(filepath.Join(repoRoot, "configs", "local.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.StateDir != "./var/state" || c.Checkpoint != nil || c.HTTP == nil || c.HTTP.Listen != "127.0.0.1:9464" {
		t.Errorf("top level: state_dir %q checkpoint %v http %v", c.StateDir, c.Checkpoint, c.HTTP)
	}
	if len(c.Pipelines) != 1 {
		t.Fatalf("%d pipelines, want 1", len(c.Pipelines))
	}
	p := c.Pipelines[0]
	var cols []string
	for _, col := range p.Schema {
		cols = append(cols, col.Name+":"+col.Type+":"+col.Expr)
	}
	want := []string{
		"transaction_id:string:", "customer_id:string:", "product_id:string:", "quantity:int32:",
		"unit_price:decimal(10,2):", "transaction_date:date:", "event_time:timestamp:", "region:string:",
		"total_amount:decimal(12,2):quantity * unit_price",
	}
	if !slices.Equal(cols, want) {
		t.Errorf("schema\n got %v\nwant %v", cols, want)
	}
	if p.Name != "sales" || p.Source.Type != "file" || p.Source.Format != "jsonl" ||
		!slices.Equal(p.Source.Paths, []string{"configs/data/sales-*.jsonl", "configs/data/sales-*.jsonl.gz"}) {
		t.Errorf("source: %+v", p.Source)
	}
	if len(p.Transforms) != 1 || p.Transforms[0].Filter != "quantity > 0" {
		t.Errorf("transforms: %+v", p.Transforms)
	}
	if p.Sink.Type != "parquet" || p.Sink.Path != "./var/out/sales" || !slices.Equal(p.Sink.PartitionBy, []string{"region"}) || p.Sink.Compression != "snappy" {
		t.Errorf("sink: %+v", p.Sink)
	}
	if p.DeadLetter.Path != "./var/dlq/sales" {
		t.Errorf("dead letter: %+v", p.DeadLetter)
	}
}

// saleFields are the fields of a well-formed sample record.
var saleFields = []string{"transaction_id", "customer_id", "product_id", "quantity", "unit_price", "transaction_date", "event_time", "region"}

// countJSONL counts lines, and lines that are not a JSON object with the
// sample fields of the expected JSON types.
func countJSONL(t *testing.T, r io.Reader) (lines, bad, filtered int) {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines++
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			bad++
			continue
		}
		q, ok := m["quantity"].(float64)
		if !ok || q != float64(int32(q)) || len(m) != len(saleFields) ||
			!strings.HasPrefix(m["event_time"].(string), "2026-03-1") || strings.Contains(sc.Text(), "12,99") ||
			m["transaction_date"] == "2026-02-30" || strings.Contains(sc.Text(), "123456789.99") {
			bad++
			continue
		}
		if q <= 0 {
			filtered++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines, bad, filtered
}

// TestSampleData checks the sizes and the share of bad and filtered records.
func TestSampleData(t *testing.T) {
	dir := filepath.Join(repoRoot, "configs", "data")
	f, err := os.Open(filepath.Join(dir, "sales-2026-03-14.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, bad, filtered := countJSONL(t, f)
	if lines != 2000 || bad < 15 || bad > 30 || filtered < 20 || filtered > 80 {
		t.Errorf("sales-2026-03-14.jsonl: %d lines, %d bad, %d filtered; want 2000, ~1%%, ~2%%", lines, bad, filtered)
	}

	gf, err := os.Open(filepath.Join(dir, "sales-2026-03-15.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer gf.Close()
	zr, err := gzip.NewReader(gf)
	if err != nil {
		t.Fatal(err)
	}
	lines, bad, _ = countJSONL(t, zr)
	if lines != 1000 || bad < 5 || bad > 20 {
		t.Errorf("sales-2026-03-15.jsonl.gz: %d lines, %d bad; want 1000, ~1%%", lines, bad)
	}

	cf, err := os.Open(filepath.Join(dir, "sales-2026-03-14.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	cr := csv.NewReader(cf)
	cr.FieldsPerRecord = -1
	rows, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rows[0], saleFields) || len(rows) != 501 {
		t.Errorf("csv: header %v, %d rows; want the sample fields and 500 rows", rows[0], len(rows)-1)
	}
	short := 0
	for _, r := range rows[1:] {
		if len(r) != len(saleFields) {
			short++
		}
	}
	if short == 0 {
		t.Error("csv: no malformed row to exercise the dead letter")
	}
}

// TestSampleDataIsReproducible regenerates the samples with the committed
// generator and compares them (the gzip file by content).
func TestSampleDataIsReproducible(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("go", "run", "configs/data/gen/main.go", "-out", out)
	cmd.Dir = repoRoot
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen: %v\n%s", err, msg)
	}
	for _, name := range []string{"sales-2026-03-14.jsonl", "sales-2026-03-15.jsonl.gz", "sales-2026-03-14.csv"} {
		want := readMaybeGzip(t, filepath.Join(repoRoot, "configs", "data", name))
		got := readMaybeGzip(t, filepath.Join(out, name))
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what configs/data/gen/main.go writes; rerun it", name)
		}
	}
}

func readMaybeGzip(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(path, ".gz") {
		return data
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}
