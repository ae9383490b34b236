package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/procstat"
	"github.com/streamd/streamd/internal/salesgen"
)

// TestMemoryBudgetWith1000Partitions replays sales records spread over
// 1,000 Hive partitions (partition_by a store column of 1,000 values)
// with windows so large (10M records, max_bytes = memory_limit — no more is accepted —, 1 h) that only the memory
// budget can bound what streamd buffers, and asserts that the child's peak
// RSS (VmHWM) stays within memory_limit + 15%, that batches were closed
// early for memory, and that every record is in the output exactly once,
// in its store's partition.
//
// The input (2 lanes read at once × 300k records, ~110 MiB of buffered
// columns each) is larger than the share of the budget batches get (60% of
// memory_limit), so the budget must close batches early. The budget is not
// smaller because the process itself — runtime, binary, 1,000 partition
// encoders — takes ~56 MiB before it buffers anything (measured with a
// 1,000-record replay), so "RSS within budget + 15%" is only meaningful for
// budgets well above that. Each early batch writes ~1,000 small files (one
// per store), which is what makes the run take about a minute.
func TestMemoryBudgetWith1000Partitions(t *testing.T) {
	const (
		files, perFile = 2, 300_000
		stores         = 1000
		budget         = 192 << 20
	)
	dir := t.TempDir()
	ids := writeStoreSales(t, dir, files, perFile, stores)
	cfg := fmt.Sprintf(`state_dir: %[1]s/state
shutdown_timeout: 20s
memory_limit: %[3]dMiB
pipelines:
  - name: sales
    source: {type: file, paths: ["%[1]s/in/*.jsonl"], format: jsonl}
%[2]s      - {name: store, type: string}
    window: {max_records: 10000000, max_bytes: %[3]dMiB, max_age: 1h}
    sink: {type: parquet, path: %[1]s/out, partition_by: [store], compression: snappy}
    dead_letter: {path: %[1]s/dlq}
`, dir, strings.Replace(salesSchema, "    transforms:\n      - filter: \"quantity > 0\"\n", "", 1), budget>>20)
	cfgPath := filepath.Join(dir, "streamd.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	args := []string{"run", "--config", cfgPath, "--log-level", "debug"}
	if p := os.Getenv("STREAMD_TEST_MEMPROFILE"); p != "" {
		args = append(args, "--memprofile", p)
	}
	cmd := exec.Command(streamdBin, args...)
	cmd.Dir = dir
	cmd.Env = withoutEnv(os.Environ(), "GOMEMLIMIT", "GOGC")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopWatch := procstat.Watch(cmd.Process.Pid, 10*time.Millisecond)
	err := cmd.Wait()
	peak := stopWatch()
	if err != nil {
		t.Fatalf("streamd run: %v\n%s", err, tailOf(out.String(), 4000))
	}
	logs := parseLogs(t, out.Bytes())
	var budgetLine map[string]any
	reasons := map[string]int{}
	for _, l := range logs {
		switch l["msg"] {
		case "memory budget":
			budgetLine = l
		case "batch committed":
			reasons[fmt.Sprint(l["reason"])]++
		}
	}
	if budgetLine == nil || budgetLine["bytes"] != float64(budget) || budgetLine["source"] == "default" {
		t.Fatalf("memory budget not taken from the config: %v", budgetLine)
	}
	t.Logf("budget %d MiB (Go memory limit %v), peak RSS %.1f MiB, %v; batches by reason %v",
		budget>>20, budgetLine["go_memory_limit"], float64(peak)/(1<<20), time.Since(start).Round(time.Millisecond), reasons)
	if reasons["memory"] == 0 {
		t.Errorf("no batch was closed for memory (batches by reason %v): the budget did not bound the windows", reasons)
	}
	if limit := int64(budget) * 115 / 100; peak > limit {
		t.Errorf("peak RSS %.1f MiB exceeds memory_limit %d MiB + 15%% (%.1f MiB)", float64(peak)/(1<<20), budget>>20, float64(limit)/(1<<20))
	}
	checkStoresOnce(t, filepath.Join(dir, "out"), ids)
}

// writeStoreSales writes files × perFile sales lines into dir/in, each
// with a "store" field S0000…S(stores-1) assigned round robin, and returns
// the store of every transaction id.
func writeStoreSales(t *testing.T, dir string, files, perFile, stores int) map[string]string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	ids := make(map[string]string, files*perFile)
	for i := 0; i < files; i++ {
		var buf bytes.Buffer
		truths, err := salesgen.Write(&buf, perFile, salesgen.Options{FirstID: i * perFile, Seed: int64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, "in", fmt.Sprintf("sales-%02d.jsonl", i)))
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		sc := bufio.NewScanner(&buf)
		for n := 0; sc.Scan(); n++ {
			store := fmt.Sprintf("S%04d", (i*perFile+n)%stores)
			ids[truths[n].ID] = store
			fmt.Fprintf(w, `{"store":%q,%s`+"\n", store, sc.Bytes()[1:])
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// checkStoresOnce asserts that every id is in the Parquet output under out
// exactly once, in the partition store=<its store>, and nothing else is.
func checkStoresOnce(t *testing.T, out string, ids map[string]string) {
	t.Helper()
	seen := make(map[string]bool, len(ids))
	partitions := map[string]bool{}
	files := 0
	err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !strings.HasSuffix(path, ".parquet") {
			if !strings.HasPrefix(d.Name(), ".") {
				t.Errorf("a non-Parquet file is visible in the output: %s", path)
			}
			return nil
		}
		files++
		part := filepath.Base(filepath.Dir(path))
		partitions[part] = true
		rows, err := outcheck.ReadParquetFile(path)
		if err != nil {
			return err
		}
		for _, r := range rows {
			id := r["transaction_id"]
			store, ok := ids[id]
			switch {
			case !ok:
				t.Fatalf("row %q in %s was never written to the input", id, path)
			case seen[id]:
				t.Fatalf("record %s written twice (again in %s)", id, path)
			case part != "store="+store:
				t.Fatalf("record %s of store %s is in partition %s", id, store, part)
			}
			seen[id] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(ids) {
		t.Fatalf("%d of %d records in the output", len(seen), len(ids))
	}
	t.Logf("verified %d records once each in %d files over %d partitions", len(seen), files, len(partitions))
}

// parseLogs decodes the JSON log lines of out (other lines are skipped).
func parseLogs(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var logs []map[string]any
	for _, line := range bytes.Split(out, []byte("\n")) {
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		logs = append(logs, m)
	}
	return logs
}

// withoutEnv returns env without the variables named.
func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// tailOf returns the last n bytes of s.
func tailOf(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
