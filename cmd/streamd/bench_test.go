package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/procstat"
	"github.com/streamd/streamd/internal/salesgen"
)

// BenchmarkReplaySales1M replays 1M sales-shaped JSON lines (~160 B) from a
// local file to snappy Parquet partitioned by region, end to end through the
// streamd binary, and reports records/s and the child's peak RSS. Each
// iteration starts from an empty state and output directory.
func BenchmarkReplaySales1M(b *testing.B) { replaySales(b, salesSchema) }

// BenchmarkReplaySales1MInferred is BenchmarkReplaySales1M with no schema
// in the config: columns are inferred at run time (transform.Evolver), so
// there are no casts to decimal/date/timestamp, no computed column and no
// filter.
func BenchmarkReplaySales1MInferred(b *testing.B) { replaySales(b, "") }

func replaySales(b *testing.B, schema string) {
	const n = 1_000_000
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "in", "sales.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := salesgen.Write(w, n, salesgen.Options{Seed: 1}); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	window := os.Getenv("STREAMD_BENCH_WINDOW")
	if window == "" {
		window = "{max_records: 100000}"
	}
	var total, cpu time.Duration
	var peak int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		os.RemoveAll(filepath.Join(dir, "out"))
		os.RemoveAll(filepath.Join(dir, "state"))
		os.RemoveAll(filepath.Join(dir, "dlq"))
		cfg := benchConfig(b, dir, schema, window)
		args := []string{"run", "--config", cfg}
		if prof := os.Getenv("STREAMD_BENCH_CPUPROFILE"); prof != "" {
			args = append(args, "--cpuprofile", prof)
		}
		cmd := exec.Command(streamdBin, args...)
		cmd.Dir = dir
		cmd.Stderr = os.Stderr
		b.StartTimer()
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		stopWatch := procstat.Watch(cmd.Process.Pid, 20*time.Millisecond)
		err := cmd.Wait()
		total += time.Since(start)
		if err != nil {
			b.Fatalf("streamd run: %v", err)
		}
		peak = max(peak, stopWatch())
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "records/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	// CPU time is steadier than wall time on a shared machine.
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}

func benchConfig(b *testing.B, dir, schema, window string) string {
	cfg := fmt.Sprintf(`state_dir: %[1]s/state
pipelines:
  - name: sales
    source: {type: file, paths: ["%[1]s/in/*.jsonl"], format: jsonl}
%[2]s    window: %[3]s
    sink: {type: parquet, path: %[1]s/out, partition_by: [region], compression: snappy}
    dead_letter: {path: %[1]s/dlq}
`, dir, schema, window)
	p := filepath.Join(dir, "streamd.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}
