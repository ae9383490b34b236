package deadletter_test

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink/deadletter"
	"github.com/streamd/streamd/sink/objstore"
)

func ExampleSink() {
	dir, err := os.MkdirTemp("", "dlq-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	store := objstore.NewLocal(dir)
	s := deadletter.New(store, "sales")

	b := streamd.NewBatch(&streamd.Schema{}, "orders/0")
	b.NoteRead(streamd.Position{Offset: 7}, 16)
	b.AddDead(streamd.Position{Offset: 7}, `cast "amount": not a number`, []byte(`{"amount":"n/a"}`))

	in := streamd.Intent{Pipeline: "sales", Lane: "orders/0", From: streamd.Position{Offset: 7}, To: streamd.Position{Offset: 7}}
	if err := s.Write(context.Background(), in, b); err != nil {
		panic(err)
	}
	rc, err := store.Get(context.Background(), s.Name(in))
	if err != nil {
		panic(err)
	}
	defer rc.Close()
	line, _ := io.ReadAll(rc)
	fmt.Println(s.Name(in))
	fmt.Print(string(line))
	// Output:
	// sales-0_ac2a786b-7-7.jsonl
	// {"pipeline":"sales","lane":"orders/0","position":"7","error":"cast \"amount\": not a number","raw":"{\"amount\":\"n/a\"}"}
}
