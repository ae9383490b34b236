package file_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/file"
)

// A file source hands on each file as a lane of line records, positioned by
// byte offset; a lane resumes after the position its Resumer returns.
func ExampleSource() {
	dir, _ := os.MkdirTemp("", "streamd-example")
	defer os.RemoveAll(dir)
	_ = os.WriteFile(filepath.Join(dir, "a.jsonl"), []byte("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"), 0o644)

	src, err := file.New(file.Config{Paths: []string{filepath.Join(dir, "*.jsonl")}})
	if err != nil {
		fmt.Println(err)
		return
	}
	out := make(chan ingest.Chunk, 8)
	// Resume after the record at offset 8 ({"n":2}), as if it were committed.
	if err := src.Run(context.Background(), &memResumer{pos: map[string]streamdPosition{filepath.Join(dir, "a.jsonl"): {Offset: 8}}}, out); err != nil {
		fmt.Println(err)
	}
	close(out)
	for c := range out {
		for _, r := range c.Records {
			fmt.Printf("%d %s\n", r.Pos.Offset, r.Data)
		}
		fmt.Println("end of lane:", c.End)
	}
	// Output:
	// 16 {"n":3}
	// end of lane: true
}
