package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
)

func recs(from, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"i":%d}`, from+i)
	}
	return out
}

func openTest(t *testing.T, dir string, segBytes int64, committed *streamd.Position) *wal {
	t.Helper()
	var c streamd.Position
	if committed != nil {
		c = *committed
	}
	w, err := openWAL(dir, segBytes, 1<<30, c, committed != nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// readAll tails w from after and returns n records.
func readAll(t *testing.T, w *wal, after *streamd.Position, n int) []streamd.Record {
	t.Helper()
	s := &Source{cfg: Config{Lane: "l", ChunkRecords: 7}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan ingest.Chunk, 16)
	done := make(chan error, 1)
	var a streamd.Position
	if after != nil {
		a = *after
	}
	go func() { done <- s.read(ctx, w, a, after != nil, out) }()
	var got []streamd.Record
	timeout := time.After(5 * time.Second)
	for len(got) < n {
		select {
		case c := <-out:
			got = append(got, c.Records...)
		case err := <-done:
			t.Fatalf("reader stopped: %v", err)
		case <-timeout:
			t.Fatalf("read %d of %d records", len(got), n)
		}
	}
	select {
	case c := <-out:
		t.Fatalf("more records than expected: %d", len(c.Records))
	case <-time.After(50 * time.Millisecond):
	}
	return got
}

func TestWALPositionsAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, 100, nil)
	var want []streamd.Position
	for i := 0; i < 10; i++ {
		pos, err := w.append(recs(i*3, 3))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, pos...)
	}
	got := readAll(t, w, nil, 30)
	for i, r := range got {
		if r.Pos != want[i] || string(r.Data) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("record %d at %s = %s, want position %s", i, r.Pos, r.Data, want[i])
		}
		if i > 0 && r.Pos.Compare(got[i-1].Pos) <= 0 {
			t.Fatalf("positions not increasing: %s after %s", r.Pos, got[i-1].Pos)
		}
	}
	if seg, _ := unpackPos(got[29].Pos); seg < 3 {
		t.Fatalf("30 records of 24 framed bytes in 100-byte segments ended in segment %d", seg)
	}
	// Resume after every position: the rest follows exactly.
	for _, k := range []int{0, 3, 4, 17, 28} {
		rest := readAll(t, w, &got[k].Pos, 29-k)
		if rest[0].Pos != got[k+1].Pos {
			t.Fatalf("resume after %s starts at %s, want %s", got[k].Pos, rest[0].Pos, got[k+1].Pos)
		}
	}
	// Committing deletes the covered segments and frees the budget.
	before := w.used.Load()
	w.commitTo(got[20].Pos)
	if w.used.Load() >= before {
		t.Fatalf("commit freed nothing: %d bytes", w.used.Load())
	}
	w.close()

	// Reopened with the commit: the rest is still there, at the same
	// positions, and appends go to a new segment after all of them.
	w = openTest(t, dir, 100, &got[20].Pos)
	defer w.close()
	rest := readAll(t, w, &got[20].Pos, 9)
	for i, r := range rest {
		if r.Pos != got[21+i].Pos {
			t.Fatalf("after reopen record %d at %s, want %s", i, r.Pos, got[21+i].Pos)
		}
	}
	pos, err := w.append(recs(30, 1))
	if err != nil {
		t.Fatal(err)
	}
	if pos[0].Compare(got[29].Pos) <= 0 {
		t.Fatalf("new record at %s, not after %s", pos[0], got[29].Pos)
	}
}

func TestWALRecoversTornTail(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
		keep   int
	}{
		{"partial header", func(t *testing.T, p string, _ int64) { appendBytes(t, p, []byte{9, 0, 0}) }, 5},
		{"partial data", func(t *testing.T, p string, _ int64) {
			appendBytes(t, p, []byte{50, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 'x'})
		}, 5},
		{"bad checksum in last frame", func(t *testing.T, p string, size int64) { flipByte(t, p, size-2) }, 4},
		{"bad checksum in middle", func(t *testing.T, p string, _ int64) { flipByte(t, p, 23+frameHeader+3) }, 1},
		{"bad checksum in first frame", func(t *testing.T, p string, _ int64) { flipByte(t, p, frameHeader+3) }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := openTest(t, dir, 1<<20, nil)
			if _, err := w.append(recs(0, 5)); err != nil {
				t.Fatal(err)
			}
			w.close()
			p := filepath.Join(dir, segName(1))
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, p, fi.Size())
			w = openTest(t, dir, 1<<20, nil)
			defer w.close()
			var n int
			if tc.keep > 0 {
				n = len(readAll(t, w, nil, tc.keep))
			}
			if n != tc.keep {
				t.Fatalf("kept %d records, want %d", n, tc.keep)
			}
			if fi, _ := os.Stat(p); fi.Size() != int64(tc.keep)*(frameHeader+int64(len(`{"i":0}`))) {
				t.Fatalf("segment is %d bytes after recovery", fi.Size())
			}
		})
	}
}

func appendBytes(t *testing.T, p string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, p string, at int64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A wiped log directory never reuses positions at or before the commit.
func TestWALWipedDirectoryStartsAfterCommit(t *testing.T) {
	committed := packPos(41, 1234)
	w := openTest(t, t.TempDir(), 1<<20, &committed)
	defer w.close()
	pos, err := w.append(recs(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if seg, off := unpackPos(pos[0]); seg != 42 || off != 0 {
		t.Fatalf("first record at segment %d offset %d, want 42/0", seg, off)
	}
	got := readAll(t, w, &committed, 1)
	if got[0].Pos != pos[0] {
		t.Fatalf("resumed at %s, want %s", got[0].Pos, pos[0])
	}
}

func TestWALClosedRefusesAppends(t *testing.T) {
	w := openTest(t, t.TempDir(), 1<<20, nil)
	w.close()
	if _, err := w.append(recs(0, 1)); err != ErrClosed {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
}
