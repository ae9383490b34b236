package file_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/file"
)

// tail runs a follow source until stop is closed (or the test's deadline)
// and passes every record to got, committing each as it arrives.
type tailRun struct {
	cancel context.CancelFunc
	done   chan error
}

func startFollow(t *testing.T, cfg file.Config, res *memResumer, got func(streamd.Record)) *tailRun {
	t.Helper()
	src, err := file.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan ingest.Chunk, 4)
	r := &tailRun{cancel: cancel, done: make(chan error, 1)}
	runErr := make(chan error, 1)
	go func() { runErr <- src.Run(ctx, res, out); close(out) }()
	go func() {
		for c := range out {
			if c.End {
				t.Errorf("a followed lane ended")
			}
			for _, rec := range c.Records {
				rec.Data = bytes.Clone(rec.Data)
				got(rec)
				res.mu.Lock()
				res.pos[c.Lane] = rec.Pos
				res.mu.Unlock()
			}
		}
		r.done <- <-runErr
	}()
	return r
}

func (r *tailRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("follow run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow source did not stop")
	}
}

// A writer appends 100k lines across three rotations (rename-and-create,
// copytruncate, rename-and-create) while the source follows, and the
// source is restarted once: every line arrives exactly once, in order.
func TestFollowThroughRotationsEveryLineOnce(t *testing.T) {
	dir := t.TempDir()
	logBuf := &lockedBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("source log:\n%s", logBuf.String())
		}
	}()
	path := filepath.Join(dir, "app.log")
	cfg := file.Config{Paths: []string{path}, Follow: true, StateDir: filepath.Join(dir, "state"), PollInterval: 5 * time.Millisecond, ChunkRecords: 500, Logger: slog.New(slog.NewTextHandler(logBuf, nil))}
	res := &memResumer{pos: map[string]streamd.Position{}}
	var mu sync.Mutex
	seen := map[string]int{}
	var order []streamd.Position
	got := func(r streamd.Record) {
		mu.Lock()
		defer mu.Unlock()
		seen[string(r.Data)]++
		order = append(order, r.Pos)
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(order)
	}
	run := startFollow(t, cfg, res, got)

	const total = 100000
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	rotations := map[int]string{25000: "rename", 50000: "copytruncate", 75000: "rename"}
	restarted := false
	var w bytes.Buffer
	for i := 0; i < total; i++ {
		if kind, ok := rotations[i]; ok {
			if _, err := f.Write(w.Bytes()); err != nil {
				t.Fatal(err)
			}
			w.Reset()
			switch kind {
			case "rename":
				f.Close()
				if err := os.Rename(path, fmt.Sprintf("%s.%d", path, i)); err != nil {
					t.Fatal(err)
				}
				if f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
					t.Fatal(err)
				}
			case "copytruncate":
				// logrotate's window: what the reader has not read when
				// the file is truncated must come from the copy. Keep the
				// reader within one burst so that is what is tested, not
				// a reader that lags by more than the writer refills.
				for wait := time.Now().Add(10 * time.Second); count() < i-2000 && time.Now().Before(wait); {
					time.Sleep(time.Millisecond)
				}
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(fmt.Sprintf("%s.%d", path, i), b, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := f.Truncate(0); err != nil {
					t.Fatal(err)
				}
			}
		}
		fmt.Fprintf(&w, "{\"line\":%d,\"pad\":\"%s\"}\n", i, strings.Repeat("x", i%50))
		if i%2000 == 1999 {
			if _, err := f.Write(w.Bytes()); err != nil {
				t.Fatal(err)
			}
			w.Reset()
			time.Sleep(2 * time.Millisecond)
		}
		if i == 40000 && !restarted {
			run.stop(t)
			run = startFollow(t, cfg, res, got)
			restarted = true
		}
	}
	if _, err := f.Write(w.Bytes()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	deadline := time.Now().Add(30 * time.Second)
	for count() < total && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	run.stop(t)

	if strings.Contains(logBuf.String(), "no copy of it was found") {
		t.Fatalf("the copytruncate copy was not recognised:\n%s", logBuf.String())
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < total; i++ {
		line := fmt.Sprintf("{\"line\":%d,\"pad\":\"%s\"}", i, strings.Repeat("x", i%50))
		if n := seen[line]; n != 1 {
			t.Fatalf("line %d seen %d times (%d records in all)", i, n, len(order))
		}
	}
	if len(order) != total {
		t.Fatalf("%d records, want %d", len(order), total)
	}
	gens := map[string]bool{}
	for i, p := range order {
		gens[p.Seq] = true
		if i > 0 && p.Compare(order[i-1]) <= 0 {
			t.Fatalf("position %s after %s: not increasing", p, order[i-1])
		}
	}
	if len(gens) != 4 {
		t.Fatalf("records in %d generations, want 4 (three rotations)", len(gens))
	}
}

// A partial last line waits for its line break; its position is where
// it starts.
func TestFollowPartialLineWaits(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	write(t, path, "{\"a\":1}\n{\"a\":")
	recs := make(chan streamd.Record, 16)
	run := startFollow(t, file.Config{Paths: []string{path}, Follow: true, StateDir: dir, PollInterval: 5 * time.Millisecond},
		&memResumer{pos: map[string]streamd.Position{}}, func(r streamd.Record) { recs <- r })
	defer run.stop(t)
	r := <-recs
	if string(r.Data) != `{"a":1}` || r.Pos != (streamd.Position{Seq: "1", Offset: 0}) {
		t.Fatalf("first record %s at %s", r.Data, r.Pos)
	}
	select {
	case r := <-recs:
		t.Fatalf("partial line handed on: %q", r.Data)
	case <-time.After(100 * time.Millisecond):
	}
	appendTo(t, path, "2}\n")
	select {
	case r := <-recs:
		if string(r.Data) != `{"a":2}` || r.Pos != (streamd.Position{Seq: "1", Offset: 8}) {
			t.Fatalf("completed line %s at %s", r.Data, r.Pos)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("completed line not handed on")
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.WriteString(f, s); err != nil {
		t.Fatal(err)
	}
}

// waitFor receives records until want arrived.
func waitFor(t *testing.T, recs <-chan streamd.Record, want ...string) []streamd.Record {
	t.Helper()
	var got []streamd.Record
	for len(got) < len(want) {
		select {
		case r := <-recs:
			got = append(got, r)
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d of %d records", len(got), len(want))
		}
	}
	for i, r := range got {
		if string(r.Data) != want[i] {
			t.Fatalf("record %d = %s at %s, want %s", i, r.Data, r.Pos, want[i])
		}
	}
	return got
}

// After a restart the committed generation's rotated file is finished
// before the new file, and positions of both stay what they were.
func TestFollowResumesInRotatedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	cfg := file.Config{Paths: []string{path}, Follow: true, StateDir: filepath.Join(dir, "state"), PollInterval: 5 * time.Millisecond}
	write(t, path, "1\n2\n")
	res := &memResumer{pos: map[string]streamd.Position{}}
	recs := make(chan streamd.Record, 64)
	run := startFollow(t, cfg, res, func(r streamd.Record) { recs <- r })
	waitFor(t, recs, "1", "2")
	run.stop(t)
	// While stopped: more lines, a rotation, and a new file; the last line
	// of the rotated file has no line break.
	appendTo(t, path, "3\n4")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	write(t, path, "5\n")
	run = startFollow(t, cfg, res, func(r streamd.Record) { recs <- r })
	got := waitFor(t, recs, "3", "4", "5")
	want := []streamd.Position{{Seq: "1", Offset: 4}, {Seq: "1", Offset: 6}, {Seq: "2", Offset: 0}}
	for i, r := range got {
		if r.Pos != want[i] {
			t.Fatalf("record %s at %s, want %s", r.Data, r.Pos, want[i])
		}
	}
	run.stop(t)
	// A redo from the first generation's start re-reads the same positions.
	res.pos[path] = streamd.Position{Seq: "1", Offset: 2}
	run = startFollow(t, cfg, res, func(r streamd.Record) { recs <- r })
	defer run.stop(t)
	again := waitFor(t, recs, "3", "4", "5")
	for i, r := range again {
		if r.Pos != want[i] {
			t.Fatalf("redo: record %s at %s, want %s", r.Data, r.Pos, want[i])
		}
	}
}

// A truncation without a recognisable copy starts a new generation at 0.
func TestFollowTruncateWithoutCopy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	write(t, path, "aaaa\nbbbb\n")
	recs := make(chan streamd.Record, 64)
	run := startFollow(t, file.Config{Paths: []string{path}, Follow: true, StateDir: dir, PollInterval: 5 * time.Millisecond},
		&memResumer{pos: map[string]streamd.Position{}}, func(r streamd.Record) { recs <- r })
	defer run.stop(t)
	waitFor(t, recs, "aaaa", "bbbb")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	appendTo(t, path, "c\n")
	got := waitFor(t, recs, "c")
	if got[0].Pos != (streamd.Position{Seq: "2", Offset: 0}) {
		t.Fatalf("after truncation at %s, want generation 2 offset 0", got[0].Pos)
	}
}

// A file that does not exist yet is waited for.
func TestFollowWaitsForFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "later.log")
	recs := make(chan streamd.Record, 4)
	run := startFollow(t, file.Config{Paths: []string{path}, Follow: true, StateDir: dir, PollInterval: 5 * time.Millisecond},
		&memResumer{pos: map[string]streamd.Position{}}, func(r streamd.Record) { recs <- r })
	defer run.stop(t)
	time.Sleep(30 * time.Millisecond)
	write(t, path, "{}\n")
	waitFor(t, recs, "{}")
}

func TestFollowFailures(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		cfg  file.Config
		want string
	}{
		{"glob", file.Config{Paths: []string{dir + "/*.log"}, Follow: true, StateDir: dir}, "no glob"},
		{"s3", file.Config{Paths: []string{"s3://b/k.log"}, Follow: true, StateDir: dir}, "no glob"},
		{"gzip", file.Config{Paths: []string{dir + "/a.log.gz"}, Follow: true, StateDir: dir}, "no glob"},
		{"csv", file.Config{Paths: []string{dir + "/a.csv"}, Format: "csv", Follow: true, StateDir: dir}, "jsonl only"},
		{"no state dir", file.Config{Paths: []string{dir + "/a.log"}, Follow: true}, "state directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := file.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}

	// Run-time failures: a corrupt state file, a position from non-follow mode.
	path := filepath.Join(dir, "a.log")
	write(t, path, "1\n")
	runOnce := func(res *memResumer) error {
		src, err := file.New(file.Config{Paths: []string{path}, Follow: true, StateDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		out := make(chan ingest.Chunk, 16)
		return src.Run(ctx, res, out)
	}
	if err := runOnce(&memResumer{pos: map[string]streamd.Position{path: {Offset: 2}}}); err == nil || !strings.Contains(err.Error(), "not a follow-mode position") {
		t.Fatalf("plain offset position: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, streamd.LaneToken(path)+".follow.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runOnce(&memResumer{pos: map[string]streamd.Position{}}); err == nil || !strings.Contains(err.Error(), "follow state") {
		t.Fatalf("corrupt state: %v", err)
	}
}

// lockedBuffer collects a source's log for a failure message.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
