package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/salesgen"
	"github.com/streamd/streamd/internal/testenv"
)

// streamdBin is the binary built from this package for end-to-end tests.
var streamdBin string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithStreamd(m, &streamdBin)) }

// salesSchema is the contract's sales schema as config YAML.
const salesSchema = `    schema:
      - {name: transaction_id, type: string}
      - {name: customer_id, type: string}
      - {name: product_id, type: string}
      - {name: quantity, type: int32}
      - {name: unit_price, type: "decimal(10,2)"}
      - {name: transaction_date, type: date}
      - {name: event_time, type: timestamp}
      - {name: region, type: string}
      - {name: total_amount, type: "decimal(12,2)", expr: "quantity * unit_price"}
    transforms:
      - filter: "quantity > 0"
`

// salesConfig writes a config reading dir/in/*.jsonl* into dir/out.
func salesConfig(t *testing.T, dir, window string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir: %[1]s/state
shutdown_timeout: 20s
pipelines:
  - name: sales
    source: {type: file, paths: ["%[1]s/in/*.jsonl*"], format: jsonl}
%[2]s    window: %[3]s
    sink: {type: parquet, path: %[1]s/out, partition_by: [region], compression: snappy}
    dead_letter: {path: %[1]s/dlq}
`, dir, salesSchema, window)
	p := filepath.Join(dir, "streamd.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeSales writes files of generated sales records into dir/in.
func writeSales(t *testing.T, dir string, files, perFile int, o salesgen.Options) []salesgen.Truth {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	var all []salesgen.Truth
	for i := 0; i < files; i++ {
		f, err := os.Create(filepath.Join(dir, "in", fmt.Sprintf("sales-%02d.jsonl", i)))
		if err != nil {
			t.Fatal(err)
		}
		o.FirstID = i * perFile
		o.Seed = int64(i + 1)
		tr, err := salesgen.Write(f, perFile, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		all = append(all, tr...)
	}
	return all
}

// checkExactlyOnce asserts that every good record is in the Parquet output
// once with the right values, every bad record is in the dead letter once,
// and filtered records are nowhere.
func checkExactlyOnce(t *testing.T, dir string, truths []salesgen.Truth) {
	t.Helper()
	rows, err := outcheck.ReadParquetDir(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	dls, err := outcheck.ReadDeadLetters(filepath.Join(dir, "dlq"))
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := outcheck.TempFiles(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tmp {
		// Writes interrupted by SIGKILL leave temporary files; they must be
		// hidden (a leading dot, which Athena and Spark skip) and never end
		// in .parquet. Every .parquet file was read whole above.
		if !strings.HasPrefix(filepath.Base(p), ".") {
			t.Errorf("a temporary file is visible to readers: %s", p)
		}
	}
	seen := map[string]outcheck.Row{}
	for _, r := range rows {
		id := r["transaction_id"]
		if _, dup := seen[id]; dup {
			t.Fatalf("transaction %s written twice (%s and %s)", id, seen[id]["_file"], r["_file"])
		}
		seen[id] = r
	}
	dead := map[string]outcheck.DeadLetter{}
	for _, d := range dls {
		i := strings.Index(d.Raw, `"T`)
		if i < 0 || len(d.Raw) < i+11 {
			t.Fatalf("dead letter without a transaction id: %+v", d)
		}
		id := d.Raw[i+1 : i+11]
		if _, dup := dead[id]; dup {
			t.Fatalf("transaction %s dead-lettered twice", id)
		}
		if d.Error == "" || d.Pipeline != "sales" || d.Lane == "" || d.Position == "" {
			t.Fatalf("incomplete dead letter %+v", d)
		}
		dead[id] = d
	}
	var good, bad, filtered int
	for _, tr := range truths {
		r, written := seen[tr.ID]
		d, dl := dead[tr.ID]
		switch tr.Kind {
		case salesgen.Good:
			good++
			if !written || dl {
				t.Fatalf("good record %s: written %v, dead-lettered %v", tr.ID, written, dl)
			}
			price := fmt.Sprintf("%d.%02d", tr.PriceCents/100, tr.PriceCents%100)
			total := int64(tr.Quantity) * tr.PriceCents
			if r["quantity"] != fmt.Sprint(tr.Quantity) || trimZeros(r["unit_price"]) != trimZeros(price) || r["region"] != tr.Region ||
				trimZeros(r["total_amount"]) != trimZeros(fmt.Sprintf("%d.%02d", total/100, total%100)) {
				t.Fatalf("record %s read back as %v, want quantity %d price %s region %s", tr.ID, r, tr.Quantity, price, tr.Region)
			}
		case salesgen.Filtered:
			filtered++
			if written || dl {
				t.Fatalf("filtered record %s: written %v, dead-lettered %v", tr.ID, written, dl)
			}
		default:
			bad++
			if written || !dl {
				t.Fatalf("bad record %s: written %v, dead-lettered %v", tr.ID, written, dl)
			}
			if tr.Kind == salesgen.Uncastable && !strings.Contains(d.Error, "quantity") {
				t.Fatalf("dead letter of %s does not name the column: %q", tr.ID, d.Error)
			}
		}
	}
	if len(rows) != good || len(dls) != bad {
		t.Fatalf("output has %d rows and %d dead letters, want %d and %d", len(rows), len(dls), good, bad)
	}
	t.Logf("verified %d written, %d dead-lettered, %d filtered", good, bad, filtered)
}

func runStreamd(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(streamdBin, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func TestReplayWritesEveryRecordOnce(t *testing.T) {
	dir := t.TempDir()
	truths := writeSales(t, dir, 3, 7000, salesgen.Options{FilteredEvery: 37, MalformedEvery: 101, UncastableEvery: 97})
	cfg := salesConfig(t, dir, "{max_records: 5000}")
	out, err := runStreamd(t, dir, "run", "--config", cfg)
	if err != nil {
		t.Fatalf("streamd run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "read 21000 = written") {
		t.Fatalf("no summary line in output:\n%s", out)
	}
	checkExactlyOnce(t, dir, truths)

	// A second run over committed input writes nothing new.
	out, err = runStreamd(t, dir, "run", "--config", cfg)
	if err != nil || !strings.Contains(out, "read 0 = written 0") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	checkExactlyOnce(t, dir, truths)
}

func TestCrashReplayExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	truths := writeSales(t, dir, 4, 55000, salesgen.Options{FilteredEvery: 53, MalformedEvery: 211, UncastableEvery: 307})
	cfg := salesConfig(t, dir, "{max_records: 500, max_age: 1s}")
	out := crashThenFinish(t, dir, cfg, killPlan{want: 25, least: 20, attempts: 200, spread: 80 * time.Millisecond})
	if readOf(t, out) >= len(truths) {
		t.Fatalf("the killed runs committed nothing: %s", lastLine(out))
	}
	checkExactlyOnce(t, dir, truths)
}

// killPlan is how crashThenFinish kills: want kills (at least least)
// within attempts starts, each up to spread after the run's first new
// Parquet object.
type killPlan struct {
	want, least, attempts int
	spread                time.Duration
}

// crashThenFinish SIGKILLs streamd runs of cfg as planned, then runs it to
// the end and returns that run's output.
func crashThenFinish(t *testing.T, dir, cfg string, k killPlan) string {
	t.Helper()
	kills := killRepeatedly(t, dir, cfg, k)
	if kills < k.least {
		t.Fatalf("only %d kills happened; the run finished too fast to test crashes", kills)
	}
	out, err := runStreamd(t, dir, "run", "--config", cfg)
	if err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	t.Logf("after %d kills: %s", kills, lastLine(out))
	return out
}

// killRepeatedly starts streamd run on cfg and SIGKILLs it a random delay
// in [0, k.spread) after the run's first new Parquet object under dir/out,
// up to k.want times within k.attempts starts, stopping early when a run
// finishes on its own. It returns the number of kills. Counting from the
// first object, not from the start, makes every killed run get past its
// start-up and redo however slow the machine, so the killed runs commit
// batches and crash between the writes and commits of others.
func killRepeatedly(t *testing.T, dir, cfg string, k killPlan) int {
	t.Helper()
	seed := time.Now().UnixNano()
	t.Logf("kill schedule seed %d", seed)
	rng := newRand(seed)
	kills := 0
	for attempt := 0; kills < k.want && attempt < k.attempts; attempt++ {
		before := parquetObjects(dir)
		cmd := exec.Command(streamdBin, "run", "--config", cfg)
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		poll := time.NewTicker(5 * time.Millisecond)
		giveUp := time.After(time.Minute)
		var killAt <-chan time.Time // set once the run wrote an object
		for killed := false; !killed; {
			select {
			case err := <-done:
				poll.Stop()
				if err != nil {
					t.Fatalf("streamd exited early: %v\n%s", err, out.String())
				}
				t.Logf("run finished before its kill (after %d kills)", kills)
				return kills
			case <-poll.C:
				if killAt == nil && parquetObjects(dir) > before {
					killAt = time.After(time.Duration(rng.Int64N(int64(k.spread))))
				}
			case <-killAt:
				_ = cmd.Process.Kill()
				<-done
				kills++
				killed = true
			case <-giveUp:
				_ = cmd.Process.Kill()
				t.Fatal("a run wrote no Parquet object within a minute")
			}
		}
		poll.Stop()
	}
	return kills
}

// parquetObjects counts the Parquet objects under dir/out: 0 before it
// exists; files renamed away while it walks are skipped.
func parquetObjects(dir string) int {
	n := 0
	_ = filepath.WalkDir(filepath.Join(dir, "out"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".parquet") {
			n++
		}
		return nil
	})
	return n
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// trimZeros drops trailing fractional zeros: Arrow renders decimal(10,2)
// 299.40 as "299.4".
func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	dir := t.TempDir()
	truths := writeSales(t, dir, 2, 150000, salesgen.Options{FilteredEvery: 50, MalformedEvery: 300})
	cfg := salesConfig(t, dir, "{max_records: 20000}")
	stopped := 0
	for run := 0; run < 4; run++ {
		cmd := exec.Command(streamdBin, "run", "--config", cfg)
		cmd.Dir = dir
		var out lockedOutput
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Signals are handled from main's first instruction; before that
		// (process start, package init) the default action applies, as for
		// any program. Wait until the run has logged its start.
		for !strings.Contains(out.String(), "memory budget") && len(done) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: %v\n%s", run, err, out.String())
			}
		case <-time.After(150 * time.Millisecond):
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("SIGTERM: exit %v, want 0\n%s", err, out.String())
				}
				stopped++
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("streamd did not exit within 30s of SIGTERM")
			}
		}
		if !strings.Contains(out.String(), "streamd: pipeline sales: read") {
			t.Fatalf("run %d printed no summary:\n%s", run, out.String())
		}
	}
	if stopped == 0 {
		t.Fatal("every run finished before its SIGTERM; nothing was tested")
	}
	if out, err := runStreamd(t, dir, "run", "--config", cfg); err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	checkExactlyOnce(t, dir, truths)
}

// lockedOutput is a bytes.Buffer safe to read while a child process writes it.
type lockedOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
