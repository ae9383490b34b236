package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/procstat"
	"github.com/streamd/streamd/internal/salesgen"
	"github.com/streamd/streamd/internal/testenv"
)

// BenchmarkKafkaToParquet1M runs 1M sales-shaped JSON records (~160 B),
// pre-loaded into a 4-partition kfake topic, through the streamd binary to
// snappy Parquet partitioned by region, and reports records/s (from start
// until the group offsets reach the end) and the child's peak RSS. Each
// iteration uses a new group and empty state and output directories.
//
// It also reports the child's CPU (all of it, and the kernel's share), its
// minor page faults, and the CPU this process spent meanwhile, which is
// mostly the kfake broker sharing the machine's cores with the child.
// STREAMD_BENCH_WINDOW replaces the window and STREAMD_BENCH_EXTRA adds
// source keys (", max_buffered_bytes: 8MiB"), for experiments.
func BenchmarkKafkaToParquet1M(b *testing.B) {
	const (
		n     = 1_000_000
		parts = 4
		topic = "sales"
	)
	k := testenv.Kafka(b)
	k.CreateTopic(b, topic, parts)
	cl := k.Client(b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	for first := 0; first < n; first += 50_000 {
		recs, _ := salesBatch(topic, parts, 50_000, first, salesgen.Options{})
		if err := cl.ProduceSync(b.Context(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	window := os.Getenv("STREAMD_BENCH_WINDOW")
	if window == "" {
		window = "{max_records: 100000, max_age: 5s}"
	}
	adm := kadm.NewClient(k.Client(b))
	dir := b.TempDir()
	var total time.Duration
	var peak int64
	var cpu, self, sys time.Duration
	var faults int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for _, d := range []string{"out", "state", "dlq"} {
			os.RemoveAll(filepath.Join(dir, d))
		}
		group := "bench-" + time.Now().Format("150405.000000")
		cfg := writeConfig(b, dir, "streamd.yaml", k.Addrs, topic, group, window, os.Getenv("STREAMD_BENCH_EXTRA"))
		args := []string{"run", "--config", cfg}
		if p := os.Getenv("STREAMD_BENCH_MEMPROFILE"); p != "" {
			args = append(args, "--memprofile", p)
		}
		if p := os.Getenv("STREAMD_BENCH_CPUPROFILE"); p != "" {
			args = append(args, "--cpuprofile", p)
		}
		cmd := exec.Command(streamdBin, args...)
		cmd.Stderr = os.Stderr
		b.StartTimer()
		start := time.Now()
		var self0, self1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		stopWatch := procstat.Watch(cmd.Process.Pid, 20*time.Millisecond)
		deadline := time.Now().Add(5 * time.Minute)
		for committed(adm, group, topic) < n {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				b.Fatal("not everything committed within 5 minutes")
			}
			time.Sleep(10 * time.Millisecond) // the clock overshoots by at most this
		}
		total += time.Since(start)
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
		self += time.Duration(self1.Utime.Nano() + self1.Stime.Nano() - self0.Utime.Nano() - self0.Stime.Nano())
		b.StopTimer()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("streamd: %v", err)
		}
		peak = max(peak, stopWatch())
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		sys += cmd.ProcessState.SystemTime()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			faults += ru.Minflt
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "records/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	// CPU seconds of the streamd child per run (includes the shutdown):
	// steadier than records/s on a shared machine.
	b.ReportMetric(cpu.Seconds()/float64(b.N), "streamd-cpu-s/op")
	b.ReportMetric(sys.Seconds()/float64(b.N), "streamd-sys-s/op")
	b.ReportMetric(float64(faults)/float64(b.N), "streamd-minflt/op")
	b.ReportMetric(self.Seconds()/float64(b.N), "broker-cpu-s/op")
}
