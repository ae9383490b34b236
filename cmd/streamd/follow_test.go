package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/salesgen"
	"github.com/streamd/streamd/internal/testenv"
)

// followConfig writes a config that follows dir/in/app.jsonl.
func followConfig(t *testing.T, dir string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir: %[1]s/state
shutdown_timeout: 20s
pipelines:
  - name: sales
    source: {type: file, paths: ["%[1]s/in/app.jsonl"], format: jsonl, follow: true, poll_interval: 50ms}
%[2]s    window: {max_records: 400, max_age: 300ms}
    sink: {type: parquet, path: %[1]s/out, partition_by: [region], compression: snappy}
    dead_letter: {path: %[1]s/dlq}
`, dir, salesSchema)
	p := filepath.Join(dir, "streamd.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// appender writes sales records to one log file the way an application
// does: whole lines appended in bursts.
type appender struct {
	path   string
	next   int // id of the next record
	truths []salesgen.Truth
}

// write appends n records in bursts of burst records, pausing between
// bursts so that the follower reads while the file grows.
func (a *appender) write(t *testing.T, n, burst int) {
	t.Helper()
	for written := 0; written < n; written += burst {
		var buf bytes.Buffer
		k := min(burst, n-written)
		tr, err := salesgen.Write(&buf, k, salesgen.Options{FirstID: a.next, Seed: int64(a.next + 1),
			FilteredEvery: 41, MalformedEvery: 97, UncastableEvery: 131})
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		a.next += k
		a.truths = append(a.truths, tr...)
		time.Sleep(20 * time.Millisecond)
	}
}

// accounted reports whether the output holds as many rows and dead
// letters as the good and bad records written so far.
func accounted(t *testing.T, dir string, truths []salesgen.Truth) bool {
	t.Helper()
	rows, err := outcheck.ReadParquetDir(filepath.Join(dir, "out"))
	if err != nil {
		return false // a file being renamed into place; look again
	}
	dls, err := outcheck.ReadDeadLetters(filepath.Join(dir, "dlq"))
	if err != nil {
		return false
	}
	want := 0
	for _, tr := range truths {
		if tr.Kind != salesgen.Filtered {
			want++
		}
	}
	return len(rows)+len(dls) >= want
}

// TestFollowThroughRotationAndCrash runs the binary in follow mode on a
// growing log file: it is SIGKILLed mid-stream, the file is rotated by
// rename-and-create while streamd is down (the rotated file still holding
// unread lines), a restarted streamd reads the rest of the old file and
// then the new one, and a SIGTERM ends it. Every record ends up in the
// output, or the dead letter, exactly once.
func TestFollowThroughRotationAndCrash(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := followConfig(t, dir)
	app := &appender{path: filepath.Join(dir, "in", "app.jsonl")}
	app.write(t, 200, 200) // the file exists before streamd starts

	p1 := testenv.StartChild(t, streamdBin, "follow-1", nil, "run", "--config", cfg)
	app.write(t, 6000, 300)
	testenv.WaitFor(t, 60*time.Second, "a first commit", func() bool { return parquetObjects(dir) > 0 })
	app.write(t, 3000, 300)
	p1.Kill(t) // mid-stream: lines read but not committed, maybe an open intent

	// Rotate while streamd is down: lines written after the kill stay in
	// the rotated file, unread.
	app.write(t, 1500, 500)
	if err := os.Rename(app.path, app.path+".1"); err != nil {
		t.Fatal(err)
	}
	app.write(t, 1000, 500) // creates the new app.jsonl

	p2 := testenv.StartChild(t, streamdBin, "follow-2", nil, "run", "--config", cfg)
	app.write(t, 4000, 400)
	testenv.WaitFor(t, 90*time.Second, "every record written or dead-lettered", func() bool {
		return accounted(t, dir, app.truths)
	})
	p2.Stop(t, 30*time.Second)
	checkExactlyOnce(t, dir, app.truths)
}
