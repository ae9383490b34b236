package parquet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink"
)

// memStore is an in-memory sink.ObjectStore with atomic Put.
type memStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	puts    int
	// failOn makes Put fail for names containing it.
	failOn string
}

func newMemStore() *memStore { return &memStore{objects: map[string][]byte{}} }

var errInjected = errors.New("injected put failure")

func (m *memStore) Put(ctx context.Context, name string, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read object %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %q: %w", name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failOn != "" && strings.Contains(name, m.failOn) {
		return fmt.Errorf("put %q: %w", name, errInjected)
	}
	m.objects[name] = data
	m.puts++
	return nil
}

func (m *memStore) Get(_ context.Context, name string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objects[name]
	if !ok {
		return nil, fmt.Errorf("get %q: %w", name, sink.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (m *memStore) List(_ context.Context, prefix string, fn func(string) error) error {
	m.mu.Lock()
	names := make([]string, 0, len(m.objects))
	for n := range m.objects {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	m.mu.Unlock()
	sort.Strings(names)
	for _, n := range names {
		if err := fn(n); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) names() []string {
	var out []string
	_ = m.List(context.Background(), "", func(n string) error { out = append(out, n); return nil })
	return out
}

func (m *memStore) get(t *testing.T, name string) []byte {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objects[name]
	if !ok {
		t.Fatalf("object %q missing; have %v", name, m.namesLocked())
	}
	return data
}

func (m *memStore) namesLocked() []string {
	var out []string
	for n := range m.objects {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// mustSchema builds a schema from "name:type" pairs.
func mustSchema(t testing.TB, cols ...string) *streamd.Schema {
	t.Helper()
	var fields []streamd.Field
	for _, c := range cols {
		name, typ, _ := strings.Cut(c, ":")
		ty, err := streamd.ParseType(typ)
		if err != nil {
			t.Fatal(err)
		}
		fields = append(fields, streamd.Field{Name: name, Type: ty})
	}
	s, err := streamd.NewSchema(fields...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wide encodes a decimal string's unscaled value (digits without the point)
// as 16-byte big-endian two's complement.
func wide(t testing.TB, unscaled string) []byte {
	t.Helper()
	n, ok := new(big.Int).SetString(unscaled, 10)
	if !ok {
		t.Fatalf("bad number %q", unscaled)
	}
	out := make([]byte, 16)
	if n.Sign() >= 0 {
		n.FillBytes(out)
		return out
	}
	// two's complement: 2^128 + n
	m := new(big.Int).Lsh(big.NewInt(1), 128)
	m.Add(m, n)
	m.FillBytes(out)
	return out
}

// readBack reads a Parquet file with arrow-go's independent reader.
func readBack(t testing.TB, data []byte) (arrow.Table, *file.Reader) {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("arrow open: %v", err)
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		t.Fatalf("arrow file reader: %v", err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("arrow read table: %v", err)
	}
	t.Cleanup(func() { tbl.Release(); _ = rdr.Close() })
	return tbl, rdr
}

// cell renders row i of column name of an arrow table as text; null → "NULL".
func cell(t testing.TB, tbl arrow.Table, name string, i int) string {
	t.Helper()
	idx := tbl.Schema().FieldIndices(name)
	if len(idx) != 1 {
		t.Fatalf("column %q not in %v", name, tbl.Schema())
	}
	col := tbl.Column(idx[0])
	for _, ch := range col.Data().Chunks() {
		if i >= ch.Len() {
			i -= ch.Len()
			continue
		}
		if ch.IsNull(i) {
			return "NULL"
		}
		return ch.ValueStr(i)
	}
	t.Fatalf("row %d out of range for %q", i, name)
	return ""
}
