package objstore_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/streamd/streamd/sink/objstore"
)

func ExampleLocal() {
	dir, err := os.MkdirTemp("", "objstore-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	s := objstore.NewLocal(dir)
	if err := s.Put(ctx, "date=2024-05-01/part-0.jsonl", strings.NewReader("{\"id\":1}\n")); err != nil {
		panic(err)
	}
	_ = s.List(ctx, "date=", func(name string) error {
		fmt.Println(name)
		return nil
	})
	rc, err := s.Get(ctx, "date=2024-05-01/part-0.jsonl")
	if err != nil {
		panic(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	fmt.Print(string(b))
	// Output:
	// date=2024-05-01/part-0.jsonl
	// {"id":1}
}
