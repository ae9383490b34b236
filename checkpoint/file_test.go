package checkpoint_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/checkpoint/checkpointtest"
)

func TestFileStoreConformance(t *testing.T) {
	checkpointtest.Run(t, func(t *testing.T) checkpoint.Store {
		return checkpoint.NewFileStore(t.TempDir())
	})
}

func TestFileStoreFailures(t *testing.T) {
	ctx := context.Background()
	in := streamd.Intent{Pipeline: "p", Lane: "l", From: streamd.Position{Offset: 1}, To: streamd.Position{Offset: 2}}

	t.Run("UnwritableDirectory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			// root ignores permission bits: use a path under a regular file instead.
			dir := t.TempDir()
			file := filepath.Join(dir, "file")
			if err := os.WriteFile(file, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			s := checkpoint.NewFileStore(filepath.Join(file, "state"))
			err := s.PutIntent(ctx, in)
			if err == nil || !strings.Contains(err.Error(), "put intent") {
				t.Fatalf("got %v, want a put intent error", err)
			}
			return
		}
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		s := checkpoint.NewFileStore(filepath.Join(dir, "state"))
		if err := s.PutIntent(ctx, in); err == nil {
			t.Fatal("want an error writing into a read-only directory")
		}
	})

	t.Run("CorruptFile", func(t *testing.T) {
		dir := t.TempDir()
		s := checkpoint.NewFileStore(dir)
		if err := s.Commit(ctx, in, nil); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "p", streamd.LaneToken("l")+".json")
		if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(ctx, "p", "l"); err == nil || !strings.Contains(err.Error(), "lane \"l\"") {
			t.Fatalf("got %v, want an error naming the lane", err)
		}
	})

	t.Run("NoTempFilesLeft", func(t *testing.T) {
		dir := t.TempDir()
		s := checkpoint.NewFileStore(dir)
		for i := int64(0); i < 20; i++ {
			in := streamd.Intent{Pipeline: "p", Lane: "l", From: streamd.Position{Offset: 2*i + 1}, To: streamd.Position{Offset: 2*i + 2}}
			if err := s.PutIntent(ctx, in); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(ctx, in, nil); err != nil {
				t.Fatal(err)
			}
		}
		ents, err := os.ReadDir(filepath.Join(dir, "p"))
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 {
			t.Fatalf("got %d files, want only the lane file", len(ents))
		}
	})
}

// A lane's life: an intent before the sink writes, a commit after.
func ExampleFileStore() {
	dir, _ := os.MkdirTemp("", "streamd-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s := checkpoint.NewFileStore(dir)

	in := streamd.Intent{Pipeline: "sales", Lane: "data/a.jsonl", From: streamd.Position{Offset: 0}, To: streamd.Position{Offset: 4096}}
	_ = s.PutIntent(ctx, in)
	st, _ := s.Load(ctx, "sales", in.Lane)
	fmt.Println("open intent:", st.Intent.From, st.Intent.To)

	_ = s.Commit(ctx, in, nil)
	st, _ = s.Load(ctx, "sales", in.Lane)
	fmt.Println("committed:", st.Committed, "intent open:", st.Intent != nil)
	// Output:
	// open intent: 0 4096
	// committed: 4096 intent open: false
}
