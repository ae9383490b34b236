package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/testenv"
)

// evolvingTruth is what the test knows of one generated record.
type evolvingTruth struct {
	id       string
	quantity float64
	coupon   string // "" for a v1 record
	bad      bool   // malformed or a quantity that fits no type
}

// writeEvolving writes files of JSON records with no declared schema:
// v1 records {transaction_id, region, quantity, unit_price} interleaved with
// v2 records that add coupon (string) and tags (array); in the second file
// quantity turns fractional halfway (int64 widens to float64 in that lane);
// some lines are malformed and some carry a quantity that is not a number.
func writeEvolving(t *testing.T, dir string, files, perFile int) []evolvingTruth {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	regions := []string{"eu", "us", "apac"}
	var truths []evolvingTruth
	for f := range files {
		var sb strings.Builder
		for i := range perFile {
			g := f*perFile + i
			tr := evolvingTruth{id: fmt.Sprintf("T%09d", g), quantity: float64(i%7 + 1)}
			qty := strconv.Itoa(i%7 + 1)
			if f == 1 && i >= perFile/2 && i%10 == 0 {
				tr.quantity = float64(i%7+1) + 0.5
				qty = strconv.FormatFloat(tr.quantity, 'f', 1, 64)
			}
			if i%307 == 150 {
				qty, tr.bad = `"lots"`, true
			}
			line := fmt.Sprintf(`{"transaction_id":%q,"region":%q,"quantity":%s,"unit_price":%d.25`, tr.id, regions[g%3], qty, 1+g%50)
			if i%2 == 1 {
				tr.coupon = fmt.Sprintf("C%d", g%97)
				line += fmt.Sprintf(`,"coupon":%q,"tags":["a","b%d"]`, tr.coupon, g%5)
			}
			line += "}"
			if i%211 == 100 {
				line, tr.bad = line[:len(line)/2], true
			}
			sb.WriteString(line)
			sb.WriteByte('\n')
			truths = append(truths, tr)
		}
		if err := os.WriteFile(filepath.Join(dir, "in", fmt.Sprintf("part-%d.jsonl", f)), []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return truths
}

// evolvingConfig writes a config with no schema: it is inferred at run
// time.
func evolvingConfig(t *testing.T, dir, window string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir: %[1]s/state
shutdown_timeout: 20s
pipelines:
  - name: events
    source: {type: file, paths: ["%[1]s/in/*.jsonl"], format: jsonl}
    window: %[2]s
    sink: {type: parquet, path: %[1]s/out, compression: snappy}
    dead_letter: {path: %[1]s/dlq}
`, dir, window)
	p := filepath.Join(dir, "streamd.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkEvolvingOnce reads the output and dead letters back and checks that
// every record is written once with its values, or dead-lettered once.
func checkEvolvingOnce(t *testing.T, dir string, truths []evolvingTruth) {
	t.Helper()
	rows, err := outcheck.ReadParquetDir(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	dls, err := outcheck.ReadDeadLetters(filepath.Join(dir, "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]outcheck.Row{}
	for _, r := range rows {
		id := r["transaction_id"]
		if _, dup := seen[id]; dup {
			t.Fatalf("transaction %s written twice (%s and %s)", id, seen[id]["_file"], r["_file"])
		}
		seen[id] = r
	}
	dead := map[string]string{}
	for _, d := range dls {
		i := strings.Index(d.Raw, `"T0`)
		if i < 0 || len(d.Raw) < i+11 {
			t.Fatalf("dead letter without a transaction id: %+v", d)
		}
		id := d.Raw[i+1 : i+11]
		if _, dup := dead[id]; dup {
			t.Fatalf("transaction %s dead-lettered twice", id)
		}
		dead[id] = d.Error
	}
	bad := 0
	for _, tr := range truths {
		r, written := seen[tr.id]
		why, dl := dead[tr.id]
		if tr.bad {
			bad++
			if written || !dl {
				t.Fatalf("bad record %s: written %v, dead-lettered %v", tr.id, written, dl)
			}
			if !strings.Contains(why, "malformed JSON") && !strings.Contains(why, `column "quantity"`) {
				t.Fatalf("dead letter of %s gives no useful reason: %q", tr.id, why)
			}
			continue
		}
		if !written || dl {
			t.Fatalf("record %s: written %v, dead-lettered %v (%s)", tr.id, written, dl, why)
		}
		q, err := strconv.ParseFloat(r["quantity"], 64)
		if err != nil || q != tr.quantity {
			t.Fatalf("record %s: quantity %q, want %v", tr.id, r["quantity"], tr.quantity)
		}
		coupon, has := r["coupon"]
		switch {
		case tr.coupon != "" && coupon != tr.coupon:
			t.Fatalf("record %s: coupon %q, want %q (row %v)", tr.id, coupon, tr.coupon, r)
		case tr.coupon == "" && has && coupon != outcheck.Null:
			t.Fatalf("v1 record %s has coupon %q", tr.id, coupon)
		}
	}
	if len(rows) != len(truths)-bad || len(dls) != bad {
		t.Fatalf("output has %d rows and %d dead letters, want %d and %d", len(rows), len(dls), len(truths)-bad, bad)
	}
}

// parquetFiles lists the .parquet files under dir, relative and sorted.
func parquetFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestInferredSchemaEvolves(t *testing.T) {
	dir := t.TempDir()
	const files, perFile, window = 3, 6000, 1000
	truths := writeEvolving(t, dir, files, perFile)
	cfg := evolvingConfig(t, dir, fmt.Sprintf("{max_records: %d}", window))
	out, err := runStreamd(t, dir, "run", "--config", cfg)
	if err != nil {
		t.Fatalf("streamd run: %v\n%s", err, out)
	}
	checkEvolvingOnce(t, dir, truths)

	// Interleaved v1/v2 records do not cut a file at every flip: each
	// window of a lane is one file, in the window's last schema.
	outDir := filepath.Join(dir, "out")
	names := parquetFiles(t, outDir)
	if want := files * perFile / window; len(names) != want {
		t.Fatalf("%d files, want %d (one per window): %v", len(names), want, names)
	}
	quantityTypes := map[string]int{}
	for _, n := range names {
		cols, err := outcheck.ReadParquetSchema(filepath.Join(outDir, n))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"transaction_id:utf8", "region:utf8", "", "unit_price:float64", "coupon:utf8", "tags:utf8"}
		if len(cols) != len(want) {
			t.Fatalf("%s: columns %v", n, cols)
		}
		for i, c := range cols {
			if i == 2 {
				quantityTypes[c]++
				continue
			}
			if c != want[i] {
				t.Fatalf("%s: columns %v, want %v with quantity third", n, cols, want)
			}
		}
	}
	// The second lane's quantity widened to float64 halfway: its later
	// files say double, all others int64; read together by name above.
	if quantityTypes["quantity:int64"] == 0 || quantityTypes["quantity:float64"] == 0 {
		t.Fatalf("quantity types across files %v, want both int64 and float64", quantityTypes)
	}

	// DuckDB reads all files together by name: the v1 rows read null for
	// coupon and tags, quantity reads as double everywhere.
	var good, coupons int
	var qty float64
	for _, tr := range truths {
		if !tr.bad {
			good++
			qty += tr.quantity
			if tr.coupon != "" {
				coupons++
			}
		}
	}
	rows := testenv.DuckDBQuery(t, fmt.Sprintf(`select count(*) as n, count(distinct transaction_id) as ids,
		count(coupon) as coupons, count(tags) as tags, sum(quantity) as qty, any_value(typeof(quantity)) as qtype
		from read_parquet('%s/**/*.parquet', union_by_name = true)`, outDir))
	want := fmt.Sprintf("map[coupons:%d ids:%d n:%d qty:%v qtype:DOUBLE tags:%d]", coupons, good, good, qty, coupons)
	if len(rows) != 1 || fmt.Sprint(rows[0]) != want {
		t.Fatalf("duckdb read %v, want %s", rows, want)
	}

	// streamd schema prints the superset of the recorded file schemas.
	var stdout, stderr bytes.Buffer
	if code := runSchema(context.Background(), []string{"--config", cfg}, &stdout, &stderr); code != 0 {
		t.Fatalf("streamd schema: exit %d: %s", code, stderr.String())
	}
	text := stdout.String()
	if got := strings.Count(text, "# file schema "); got < 2 {
		t.Fatalf("%d file schemas recorded, want at least 2 (before and after widening):\n%s", got, text)
	}
	i := strings.Index(text, "CREATE EXTERNAL TABLE")
	if i < 0 {
		t.Fatalf("no DDL:\n%s", text)
	}
	tab, err := parseDDL(text[i:])
	if err != nil {
		t.Fatalf("DDL rejected: %v\n%s", err, text[i:])
	}
	wantCols := [][2]string{{"transaction_id", "STRING"}, {"region", "STRING"}, {"quantity", "DOUBLE"},
		{"unit_price", "DOUBLE"}, {"coupon", "STRING"}, {"tags", "STRING"}}
	if fmt.Sprint(tab.cols) != fmt.Sprint(wantCols) {
		t.Errorf("superset columns %v, want %v", tab.cols, wantCols)
	}
	if !strings.Contains(text, "  - {name: quantity, type: float64}\n") {
		t.Errorf("superset YAML lacks quantity float64:\n%s", text)
	}
}

// TestInferredSchemaCrashExactlyOnce: SIGKILLs during a run whose schema
// is inferred and evolving; every restart redoes open intents from the
// committed lane schema, and the output holds every record once.
func TestInferredSchemaCrashExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	truths := writeEvolving(t, dir, 3, 60000)
	cfg := evolvingConfig(t, dir, "{max_records: 700, max_age: 1s}")
	out := crashThenFinish(t, dir, cfg, killPlan{want: 12, least: 8, attempts: 100, spread: 80 * time.Millisecond})
	if readOf(t, out) >= len(truths) {
		t.Fatalf("the killed runs committed nothing: %s", lastLine(out))
	}
	checkEvolvingOnce(t, dir, truths)
}

func TestSchemaCommandFailures(t *testing.T) {
	dir := t.TempDir()
	cfg := evolvingConfig(t, dir, "{max_records: 10}")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no config", nil, 2, "--config is required"},
		{"unknown pipeline", []string{"--config", cfg, "--pipeline", "nope"}, 2, `no pipeline "nope"`},
		{"nothing recorded", []string{"--config", cfg}, 1, "no schemas recorded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runSchema(context.Background(), tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
	// A corrupt record is reported, not skipped.
	if err := os.MkdirAll(filepath.Join(dir, "out", "_streamd_schemas"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "out", "_streamd_schemas", "events-00.json"), []byte(`{"pipeline":"events","columns":[{"name":"a","type":"nope"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := runSchema(context.Background(), []string{"--config", cfg}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "bad schema record") {
		t.Fatalf("corrupt record: exit %d, stderr %q", code, stderr.String())
	}
}
