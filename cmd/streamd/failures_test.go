package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/salesgen"
)

func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"UnknownKey", "state_dir: x\npipelines:\n  - name: p\n    source: {type: file, paths: [a]}\n    window: {max_recrds: 5}\n    sink: {type: parquet, path: out}\n",
			[]string{":5:", `"max_recrds"`}},
		{"BadDuration", "pipelines:\n  - name: p\n    source: {type: file, paths: [a]}\n    window:\n      max_age: 3 0s\n    sink: {type: parquet, path: out}\n",
			[]string{":5:", "max_age"}},
		{"BadType", "pipelines:\n  - name: p\n    source: {type: file, paths: [a]}\n    schema:\n      - {name: q, type: integer32}\n    sink: {type: parquet, path: out}\n",
			[]string{":5:", "integer32"}},
		{"MissingSinkPath", "pipelines:\n  - name: p\n    source: {type: file, paths: [a]}\n    sink: {type: parquet}\n",
			[]string{":4:", "path"}},
		{"CSVWithoutSchema", "pipelines:\n  - name: p\n    source: {type: file, paths: [a], format: csv}\n    sink: {type: parquet, path: out}\n",
			[]string{"schema", "required for csv input"}},
		{"DynamoDBSinkWithoutSchema", "pipelines:\n  - name: p\n    source: {type: file, paths: [a]}\n    sink: {type: dynamodb, table: t, key: [id]}\n",
			[]string{"schema", "required with a dynamodb sink"}},
		{"TransformsWithoutSchema", "pipelines:\n  - name: p\n    source: {type: file, paths: [a]}\n    transforms:\n      - filter: \"q > 1\"\n    sink: {type: parquet, path: out}\n",
			[]string{":4:", "transforms", "need a declared schema"}},
		{"UnsetEnv", "pipelines:\n  - name: p\n    source: {type: file, paths: [\"${STREAMD_TEST_UNSET_VAR}\"]}\n    sink: {type: parquet, path: out}\n",
			[]string{":3:", "STREAMD_TEST_UNSET_VAR"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []string{"validate", "run"} {
				var stdout, stderr bytes.Buffer
				code := run(context.Background(), []string{cmd, "--config", p}, &stdout, &stderr)
				if code != 2 {
					t.Fatalf("%s: exit %d, want 2; stderr:\n%s", cmd, code, stderr.String())
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr.String(), w) {
						t.Errorf("%s: stderr %q does not mention %q", cmd, stderr.String(), w)
					}
				}
			}
		})
	}
}

func TestValidateAcceptsShippedConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"validate", "--config", "../../configs/local.yaml"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "ok") {
		t.Fatalf("stdout %q", stdout.String())
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"run"}, {"run", "--config"}, {"run", "--config", "/nonexistent/streamd.yaml"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("args %q: exit %d, stderr %q; want 2 and a message", args, code, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "streamd ") {
		t.Errorf("version: exit %d, %q", code, stdout.String())
	}
}

func TestUnwritableOutputFailsWithCause(t *testing.T) {
	dir := t.TempDir()
	writeSales(t, dir, 1, 500, salesgen.Options{})
	// The output "directory" is a regular file: nothing can be created under it.
	blocker := filepath.Join(dir, "out")
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := salesConfig(t, dir, "{max_records: 100}")
	// Keep retries short: the flush is retried with backoff before failing.
	out, err := runStreamd(t, dir, "run", "--config", cfg)
	if err == nil {
		t.Fatalf("run succeeded writing under a file:\n%s", out)
	}
	if !strings.Contains(out, "streamd: error:") || !strings.Contains(out, "out") {
		t.Fatalf("stderr does not give the cause:\n%s", out)
	}
	if !strings.Contains(out, "flush failed; retrying") {
		t.Fatalf("no retry was logged before failing:\n%s", out)
	}
	// Nothing was committed: the lane holds an open intent for a redo.
	states, _ := filepath.Glob(filepath.Join(dir, "state", "sales", "*.json"))
	if len(states) != 1 {
		t.Fatalf("want one lane state file, got %v", states)
	}
	st, err := os.ReadFile(states[0])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(st), `"committed"`) || !strings.Contains(string(st), `"intent"`) {
		t.Fatalf("lane state after a failed write: %s", st)
	}
}

func TestOversizedAndMalformedLinesAreDeadLettered(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	good := `{"transaction_id":"T1","quantity":2,"unit_price":"1.50","region":"EU-WEST"}`
	lines := []string{
		good,
		`{"transaction_id":"T2","quantity":"two","unit_price":"1.50","region":"EU-WEST"}`,
		`{"transaction_id":"T3","quantity":1,"unit_price":`,
		`{"transaction_id":"T4","pad":"` + strings.Repeat("x", 2<<20) + `"}`,
		`{"transaction_id":"T5","quantity":1,"unit_price":"99999999999.99","region":"EU-WEST"}`,
		`{"transaction_id":"T6","quantity":3,"unit_price":"2.25","region":"US-EAST"}`,
	}
	if err := os.WriteFile(filepath.Join(dir, "in", "mixed.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := salesConfig(t, dir, "{max_records: 100}")
	out, err := runStreamd(t, dir, "run", "--config", cfg)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "read 6 = written 2 + filtered 0 + deduplicated 0 + dead-lettered 4") {
		t.Fatalf("summary:\n%s", out)
	}
	dls, err := outcheck.ReadDeadLetters(filepath.Join(dir, "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"T2": "quantity", "T3": "malformed", "T4": "max_record_size", "T5": "unit_price"}
	for _, d := range dls {
		found := false
		for id, reason := range want {
			if strings.Contains(d.Raw, `"`+id+`"`) {
				found = true
				if !strings.Contains(d.Error, reason) {
					t.Errorf("dead letter of %s: error %q does not mention %q", id, d.Error, reason)
				}
				delete(want, id)
			}
		}
		if !found {
			t.Errorf("unexpected dead letter %+v", d)
		}
	}
	if len(want) > 0 {
		t.Errorf("records not dead-lettered: %v", want)
	}
	rows, err := outcheck.ReadParquetDir(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("got %d rows", len(rows))
	}
	for _, r := range rows {
		if r["transaction_id"] == "T6" && trimZeros(r["total_amount"]) != "6.75" {
			t.Errorf("T6 total %s", r["total_amount"])
		}
		if r["customer_id"] != outcheck.Null {
			t.Errorf("missing customer_id should read as null, got %q", r["customer_id"])
		}
	}
}

// TestValidateEveryShippedConfig runs `streamd validate` — strict YAML plus
// compiling every pipeline's transforms — on each file users copy.
func TestValidateEveryShippedConfig(t *testing.T) {
	for k, v := range map[string]string{"RAW_BUCKET": "streamd-raw", "LAKE_BUCKET": "streamd-lake", "OS_PASSWORD": "example-password"} {
		t.Setenv(k, v)
	}
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs: %v", err)
	}
	for _, f := range files {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"validate", "--config", f}, &stdout, &stderr); code != 0 {
			t.Errorf("%s: exit %d: %s", f, code, stderr.String())
		}
	}
}
