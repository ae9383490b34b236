package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/salesgen"
)

// writeRedelivered writes sales files whose every 9th record (from the
// 60th on) is followed by a re-delivery of the record 45 lines earlier,
// so dedup has duplicates to drop across window and restart boundaries.
func writeRedelivered(t *testing.T, dir string, files, perFile int) {
	t.Helper()
	writeSales(t, dir, files, perFile, salesgen.Options{FilteredEvery: 41, MalformedEvery: 157, UncastableEvery: 211})
	for i := range files {
		p := filepath.Join(dir, "in", fmt.Sprintf("sales-%02d.jsonl", i))
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		f.Close()
		var out strings.Builder
		for j, l := range lines {
			out.WriteString(l + "\n")
			if j >= 60 && j%9 == 0 {
				out.WriteString(lines[j-45] + "\n")
			}
		}
		if err := os.WriteFile(p, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// opStateConfig is the sales pipeline with dedup and rolling IQR outliers
// (dropping) per region.
func opStateConfig(t *testing.T, dir, window string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir: %[1]s/state
shutdown_timeout: 20s
pipelines:
  - name: sales
    source: {type: file, paths: ["%[1]s/in/*.jsonl*"], format: jsonl}
%[2]s      - dedup: {keys: [transaction_id], ttl: 24h}
      - outliers: {column: unit_price, method: iqr, k: 1.0, window: 40, min_samples: 10, by: [region], action: drop}
    window: %[3]s
    sink: {type: parquet, path: %[1]s/out, partition_by: [region], compression: snappy}
    dead_letter: {path: %[1]s/dlq}
`, dir, salesSchema, window)
	p := filepath.Join(dir, "streamd.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// outputOf renders the rows (all columns) and dead letters of a run,
// sorted, for comparing two runs over the same input.
func outputOf(t *testing.T, dir string) (rows, dead []string) {
	t.Helper()
	rs, err := outcheck.ReadParquetDir(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		delete(r, "_file")
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var sb strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&sb, "%s=%s ", k, r[k])
		}
		rows = append(rows, sb.String())
	}
	dls, err := outcheck.ReadDeadLetters(filepath.Join(dir, "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dls {
		dead = append(dead, filepath.Base(d.Lane)+" "+d.Position+" "+d.Error) // lanes name the input dir
	}
	slices.Sort(rows)
	slices.Sort(dead)
	return rows, dead
}

// TestOperatorStateSurvivesSIGKILL: dedup and rolling-outlier state are
// committed with every batch, so a run SIGKILLed over and over decides
// exactly like one that never stopped: nothing the killed runs dropped
// reappears, nothing they kept is dropped.
func TestOperatorStateSurvivesSIGKILL(t *testing.T) {
	clean, killed := t.TempDir(), t.TempDir()
	for _, dir := range []string{clean, killed} {
		writeRedelivered(t, dir, 3, 40000)
	}
	out, err := runStreamd(t, clean, "run", "--config", opStateConfig(t, clean, "{max_records: 5000}"))
	if err != nil {
		t.Fatalf("clean run: %v\n%s", err, out)
	}
	summary := lastLine(out)
	if !strings.Contains(summary, "deduplicated ") || strings.Contains(summary, "deduplicated 0 ") || strings.Contains(summary, "filtered 0 ") {
		t.Fatalf("the clean run neither deduplicated nor dropped outliers: %s", summary)
	}
	cfg := opStateConfig(t, killed, "{max_records: 600, max_age: 1s}")
	out = crashThenFinish(t, killed, cfg, killPlan{want: 12, least: 8, attempts: 120, spread: 200 * time.Millisecond})
	if readOf(t, out) >= readOf(t, summary) {
		t.Fatalf("the killed runs committed nothing, so no restart restored state: %s", lastLine(out))
	}
	t.Logf("clean run: %s", summary)
	wantRows, wantDead := outputOf(t, clean)
	gotRows, gotDead := outputOf(t, killed)
	if len(wantRows) == 0 || len(wantDead) == 0 {
		t.Fatalf("clean run wrote %d rows and %d dead letters", len(wantRows), len(wantDead))
	}
	if !slices.Equal(gotRows, wantRows) {
		extra, missing := diffSorted(gotRows, wantRows)
		t.Fatalf("rows differ from the clean run: %d extra (e.g. %v), %d missing (e.g. %v)", len(extra), head(extra), len(missing), head(missing))
	}
	if !slices.Equal(gotDead, wantDead) {
		extra, missing := diffSorted(gotDead, wantDead)
		t.Fatalf("dead letters differ from the clean run: %d extra (e.g. %v), %d missing (e.g. %v)", len(extra), head(extra), len(missing), head(missing))
	}
}

// readOf returns N from a run summary "... read N = ...".
func readOf(t *testing.T, out string) int {
	t.Helper()
	var n int
	line := lastLine(out)
	i := strings.Index(line, "read ")
	if i < 0 {
		t.Fatalf("no summary in %q", line)
	}
	if _, err := fmt.Sscanf(line[i:], "read %d", &n); err != nil {
		t.Fatalf("summary %q: %v", line, err)
	}
	return n
}

// diffSorted returns what is only in a and only in b (both sorted).
func diffSorted(a, b []string) (onlyA, onlyB []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b) || (i < len(a) && a[i] < b[j]):
			onlyA = append(onlyA, a[i])
			i++
		case i >= len(a) || b[j] < a[i]:
			onlyB = append(onlyB, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return onlyA, onlyB
}

func head(s []string) []string { return s[:min(len(s), 3)] }
