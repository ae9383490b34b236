package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/sink"
	"github.com/streamd/streamd/sink/objstore"
	"github.com/streamd/streamd/sink/objstore/objstoretest"
)

func TestLocalAcceptance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) sink.ObjectStore {
		return objstore.NewLocal(filepath.Join(t.TempDir(), "root"))
	})
}

// dirEntries returns every file and directory under dir, relative, so tests
// can see temporary files that List hides.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func TestLocalFailedPutsLeaveNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	s := objstore.NewLocal(dir)
	boom := errors.New("boom")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		r    io.Reader
	}{
		{"reader error", context.Background(), io.MultiReader(strings.NewReader("partial"), errReader{boom})},
		{"cancelled", ctx, strings.NewReader("data")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := s.Put(c.ctx, "a/b/out.parquet", c.r); err == nil {
				t.Fatal("Put succeeded")
			}
			for _, e := range dirEntries(t, dir) {
				t.Errorf("left behind: %s", e)
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestLocalListSkipsTempFiles(t *testing.T) {
	dir := t.TempDir()
	s := objstore.NewLocal(dir)
	objstoretest.MustPut(t, s, "d/real.parquet", []byte("x"))
	// A temporary file left by a crash mid-Put.
	if err := os.WriteFile(filepath.Join(dir, "d", ".real2.parquet.tmp-abc"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := objstoretest.MustList(t, s, ""); len(got) != 1 || got[0] != "d/real.parquet" {
		t.Fatalf("List = %q, want only d/real.parquet", got)
	}
	// A name of the temporary form is refused, so it cannot be hidden.
	if err := s.Put(context.Background(), "d/.x.tmp-1", strings.NewReader("x")); !errors.Is(err, objstore.ErrInvalidName) {
		t.Fatalf("Put of a temp-shaped name = %v, want ErrInvalidName", err)
	}
}

// TestLocalTempNameNeverLooksComplete watches the directory during a Put
// that blocks mid-stream: the only file present must not end in an output
// extension.
func TestLocalTempNameNeverLooksComplete(t *testing.T) {
	dir := t.TempDir()
	s := objstore.NewLocal(dir)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- s.Put(context.Background(), "p/file.parquet", pr) }()
	if _, err := pw.Write([]byte("first half")); err != nil {
		t.Fatal(err)
	}
	entries := dirEntries(t, dir)
	if len(entries) != 1 {
		t.Fatalf("during Put the directory holds %q, want one temp file", entries)
	}
	base := filepath.Base(entries[0])
	if strings.HasSuffix(base, ".parquet") || strings.HasSuffix(base, ".jsonl") || !strings.HasPrefix(base, ".") {
		t.Fatalf("temp file %q looks like a complete output", entries[0])
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := dirEntries(t, dir); len(got) != 1 || got[0] != "p/file.parquet" {
		t.Fatalf("after Put the directory holds %q", got)
	}
}

func TestLocalUnwritable(t *testing.T) {
	parent := t.TempDir()
	ro := filepath.Join(parent, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	root := ro
	if f, err := os.Create(filepath.Join(ro, "probe")); err == nil {
		// Running as root: permissions do not stop us, use a file system
		// that refuses new entries to everyone.
		f.Close()
		os.Remove(filepath.Join(ro, "probe"))
		root = "/sys/streamd-objstore-test"
	}
	file := filepath.Join(parent, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		root string
		is   error
	}{
		{"read-only directory", root, fs.ErrPermission},
		{"root is a file", file, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := objstore.NewLocal(c.root)
			err := s.Put(context.Background(), "x/y.parquet", bytes.NewReader([]byte("data")))
			if err == nil {
				t.Fatal("Put succeeded")
			}
			if !strings.Contains(err.Error(), `put object "x/y.parquet"`) {
				t.Errorf("error %q does not name the operation and object", err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
		})
	}
}

func TestLocalListMissingRoot(t *testing.T) {
	s := objstore.NewLocal(filepath.Join(t.TempDir(), "never-created"))
	if got := objstoretest.MustList(t, s, ""); len(got) != 0 {
		t.Fatalf("List of a missing root = %q", got)
	}
	objstoretest.AssertMissing(t, s, "x")
}

func TestLocalListCancelled(t *testing.T) {
	s := objstore.NewLocal(t.TempDir())
	objstoretest.MustPut(t, s, "a", []byte("a"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.List(ctx, "", func(string) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("List with a cancelled context = %v", err)
	}
}

func TestCheckName(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"a/b/c.parquet", true},
		{"k=v/x y.jsonl", true},
		{".hidden", true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/..", false},
		{"../a", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{`a\b`, false},
		{"a/.b.tmp-x", false},
	}
	for _, c := range cases {
		err := objstore.CheckName(c.name)
		if (err == nil) != c.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, objstore.ErrInvalidName) {
			t.Errorf("CheckName(%q) = %v, not ErrInvalidName", c.name, err)
		}
	}
}

func BenchmarkLocalPut(b *testing.B) {
	s := objstore.NewLocal(b.TempDir())
	data := objstoretest.RandomBytes(1, 1<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := s.Put(context.Background(), "bench/obj.parquet", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSweepRemovesInterruptedTemps(t *testing.T) {
	dir := t.TempDir()
	l := objstore.NewLocal(dir)
	ctx := context.Background()
	if err := l.Put(ctx, "p/a.parquet", strings.NewReader("data")); err != nil {
		t.Fatal(err)
	}
	// What a Put killed mid-write leaves behind.
	stale := filepath.Join(dir, "p", ".b.parquet.tmp-123abc")
	if err := os.WriteFile(stale, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Sweep(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("sweep of young temps removed %d (%v), want 0", n, err)
	}
	n, err := l.Sweep(ctx, 0)
	if err != nil || n != 1 {
		t.Fatalf("sweep removed %d (%v), want 1", n, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("temp file still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p", "a.parquet")); err != nil {
		t.Fatalf("sweep removed a complete object: %v", err)
	}
	if n, err := objstore.NewLocal(filepath.Join(dir, "missing")).Sweep(ctx, 0); err != nil || n != 0 {
		t.Fatalf("sweep of a missing dir: %d, %v", n, err)
	}
}
