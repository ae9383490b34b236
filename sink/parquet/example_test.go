package parquet_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink"
	"github.com/streamd/streamd/sink/parquet"
)

// exampleStore is a minimal in-memory sink.ObjectStore.
type exampleStore struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (s *exampleStore) Put(_ context.Context, name string, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[name] = data
	return nil
}

func (s *exampleStore) Get(_ context.Context, name string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, ok := s.objects[name]
	if !ok {
		return nil, sink.ErrNotExist
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (s *exampleStore) List(_ context.Context, prefix string, fn func(string) error) error {
	s.mu.Lock()
	var names []string
	for n := range s.objects {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	s.mu.Unlock()
	sort.Strings(names)
	for _, n := range names {
		if err := fn(n); err != nil {
			return err
		}
	}
	return nil
}

func ExampleSink() {
	schema, _ := streamd.NewSchema(
		streamd.Field{Name: "transaction_id", Type: streamd.Type{Kind: streamd.KindString}},
		streamd.Field{Name: "total_amount", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 12, Scale: 2}},
		streamd.Field{Name: "region", Type: streamd.Type{Kind: streamd.KindString}},
	)
	b := streamd.NewBatch(schema, "sales.jsonl")
	for i, region := range []string{"EU-WEST", "US/EAST", "EU-WEST"} {
		pos := streamd.Position{Offset: int64(100 * i)}
		b.NoteRead(pos, 64)
		b.AddRowMeta(pos, 0)
		b.Cols[0].AppendBytes(fmt.Appendf(nil, "t%d", i))
		b.Cols[1].AppendInt64(int64(1999 + i)) // 19.99, 20.00, 20.01
		b.Cols[2].AppendBytes([]byte(region))
	}

	store := &exampleStore{objects: map[string][]byte{}}
	s, err := parquet.New(store, "sales", parquet.Options{PartitionBy: []string{"region"}}, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close(context.Background())

	in := streamd.Intent{Pipeline: "sales", Lane: b.Lane, From: b.From, To: b.To}
	if err := s.Write(context.Background(), in, b); err != nil {
		fmt.Println(err)
		return
	}
	_ = store.List(context.Background(), "", func(name string) error {
		fmt.Println(name)
		return nil
	})
	// Output:
	// region=EU-WEST/sales-sales_jsonl_5d5baaaf-0-200.parquet
	// region=US%2FEAST/sales-sales_jsonl_5d5baaaf-0-200.parquet
}
