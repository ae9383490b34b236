package parquet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink"
)

// regionBatch has rows with region values that need escaping, a null and an
// empty region, plus a date partition column.
func regionBatch(t testing.TB) *streamd.Batch {
	t.Helper()
	b := streamd.NewBatch(mustSchema(t, "id:int64", "region:string", "day:date", "amount:decimal(12,2)"), "orders/3")
	add := func(id int64, region *string, day int32, amount int64) {
		b.Cols[0].AppendInt64(id)
		if region == nil {
			b.Cols[1].AppendNull()
		} else {
			b.Cols[1].AppendBytes([]byte(*region))
		}
		b.Cols[2].AppendInt32(day)
		b.Cols[3].AppendInt64(amount)
		b.NoteRead(streamd.Position{Offset: id}, 10)
		b.AddRowMeta(streamd.Position{Offset: id}, 0)
	}
	str := func(s string) *string { return &s }
	add(10, str("EU-WEST"), 19724, 100)
	add(11, str("a/b=c%d:e"), 19724, 200)
	add(12, nil, 19725, 300)
	add(13, str("EU-WEST"), 19724, 401)
	add(14, str(""), 19724, 500)
	add(15, str("EU-WEST"), 19725, 600)
	return b
}

func intentOf(b *streamd.Batch) streamd.Intent {
	return streamd.Intent{Pipeline: "sales", Lane: b.Lane, From: b.From, To: b.To}
}

func TestSinkPartitionsHiveStyle(t *testing.T) {
	b := regionBatch(t)
	store := newMemStore()
	s, err := New(store, "sales", Options{PartitionBy: []string{"region", "day"}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	in := intentOf(b)
	if err := s.Write(context.Background(), in, b); err != nil {
		t.Fatal(err)
	}
	file := "sales-" + streamd.LaneToken("orders/3") + "-10-15.parquet"
	want := map[string][]string{ // object → ids in it
		"region=EU-WEST/day=2024-01-02/" + file:                    {"10", "13"},
		"region=EU-WEST/day=2024-01-03/" + file:                    {"15"},
		"region=__HIVE_DEFAULT_PARTITION__/day=2024-01-02/" + file: {"14"},
		"region=__HIVE_DEFAULT_PARTITION__/day=2024-01-03/" + file: {"12"},
		"region=a%2Fb%3Dc%25d%3Ae/day=2024-01-02/" + file:          {"11"},
	}
	names := store.names()
	if len(names) != len(want) {
		t.Fatalf("objects = %q, want %d", names, len(want))
	}
	for name, ids := range want {
		tbl, _ := readBack(t, store.get(t, name))
		if got := tbl.Schema().NumFields(); got != 2 {
			t.Errorf("%s has %d columns (%v), want id and amount only", name, got, tbl.Schema())
		}
		if tbl.Schema().HasField("region") || tbl.Schema().HasField("day") {
			t.Errorf("%s stores a partition column", name)
		}
		var got []string
		for i := range int(tbl.NumRows()) {
			got = append(got, cell(t, tbl, "id", i))
		}
		if !slices.Equal(got, ids) {
			t.Errorf("%s ids = %v, want %v", name, got, ids)
		}
	}
	tbl, _ := readBack(t, store.get(t, "region=EU-WEST/day=2024-01-02/"+file))
	if got := cell(t, tbl, "amount", 1); got != "4.01" {
		t.Errorf("amount = %q, want 4.01", got)
	}
}

func TestSinkUnpartitionedName(t *testing.T) {
	b := regionBatch(t)
	store := newMemStore()
	s, err := New(store, "sales", Options{Compression: Zstd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := streamd.Intent{Lane: b.Lane, From: streamd.Position{Seq: "4960", Sub: 2}, To: streamd.Position{Seq: "4970"}}
	if err := s.Write(context.Background(), in, b); err != nil {
		t.Fatal(err)
	}
	want := "sales-" + streamd.LaneToken(b.Lane) + "-4960.2-4970.parquet"
	if got := store.names(); !slices.Equal(got, []string{want}) {
		t.Fatalf("objects = %q, want %q", got, want)
	}
	tbl, rdr := readBack(t, store.get(t, want))
	if tbl.NumRows() != 6 || tbl.Schema().NumFields() != 4 {
		t.Fatalf("rows=%d cols=%d", tbl.NumRows(), tbl.Schema().NumFields())
	}
	cc, err := rdr.MetaData().RowGroup(0).ColumnChunk(0)
	if err != nil {
		t.Fatal(err)
	}
	if got := cc.Compression().String(); got != "ZSTD" {
		t.Errorf("codec = %s, want ZSTD", got)
	}
}

func TestSinkRedoIsByteIdentical(t *testing.T) {
	b := salesBatch(t, 20000)
	opts := Options{PartitionBy: []string{"region"}, RowGroupRows: 3000}
	write := func() *memStore {
		store := newMemStore()
		s, err := New(store, "sales", opts, nil) // a fresh sink, as after a restart
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(context.Background(), intentOf(b), b); err != nil {
			t.Fatal(err)
		}
		// Redo on the same sink overwrites with the same bytes.
		before := maps(store)
		if err := s.Write(context.Background(), intentOf(b), b); err != nil {
			t.Fatal(err)
		}
		if !equalObjects(before, maps(store)) {
			t.Fatal("redo on the same sink changed the objects")
		}
		return store
	}
	a, c := write(), write()
	if len(a.names()) != 5 {
		t.Fatalf("objects = %q, want 5 regions", a.names())
	}
	if !equalObjects(maps(a), maps(c)) {
		t.Fatal("two runs of the same intent produced different objects")
	}
	total := 0
	for _, name := range a.names() {
		tbl, _ := readBack(t, a.get(t, name))
		total += int(tbl.NumRows())
	}
	if total != b.Len() {
		t.Fatalf("rows written = %d, want %d", total, b.Len())
	}
}

func maps(m *memStore) map[string][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]byte, len(m.objects))
	for k, v := range m.objects {
		out[k] = bytes.Clone(v)
	}
	return out
}

func equalObjects(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestSinkEmptyBatchWritesNothing(t *testing.T) {
	store := newMemStore()
	s, err := New(store, "sales", Options{PartitionBy: []string{"region"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := streamd.NewBatch(mustSchema(t, "id:int64", "region:string"), "l")
	b.NoteRead(streamd.Position{Offset: 1}, 5)
	b.Filtered++
	if err := s.Write(context.Background(), intentOf(b), b); err != nil {
		t.Fatal(err)
	}
	if n := len(store.names()); n != 0 {
		t.Fatalf("empty batch wrote %d objects", n)
	}
}

func TestSinkWriteErrors(t *testing.T) {
	b := regionBatch(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		opts    Options
		ctx     context.Context
		in      streamd.Intent
		failOn  string
		wantErr error
	}{
		{"unknown partition column", Options{PartitionBy: []string{"country"}}, context.Background(), intentOf(b), "", ErrUnknownColumn},
		{"all columns partitioned", Options{PartitionBy: []string{"id", "region", "day", "amount"}}, context.Background(), intentOf(b), "", ErrBadOption},
		{"put failure", Options{PartitionBy: []string{"region"}}, context.Background(), intentOf(b), "region=a%2F", errInjected},
		{"cancelled context", Options{PartitionBy: []string{"region"}}, cancelled, intentOf(b), "", context.Canceled},
		{"other pipeline", Options{}, context.Background(), streamd.Intent{Pipeline: "billing", Lane: b.Lane}, "", ErrIntentMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMemStore()
			store.failOn = tt.failOn
			s, err := New(store, "sales", tt.opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Write(tt.ctx, tt.in, b)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.failOn == "" && len(store.names()) != 0 {
				t.Fatalf("failed write left objects %q", store.names())
			}
			for _, name := range store.names() {
				readBack(t, store.get(t, name)) // whatever exists is whole
			}
		})
	}
}

// cancellingStore cancels the writer's context during its first Put and
// fails that Put, as a store does when its context ends mid-upload.
type cancellingStore struct {
	*memStore
	once   sync.Once
	cancel context.CancelFunc
}

func (c *cancellingStore) Put(ctx context.Context, name string, r io.Reader) error {
	first := false
	c.once.Do(func() { first = true })
	if first {
		c.cancel()
		<-ctx.Done()
		return fmt.Errorf("put %q: %w", name, ctx.Err())
	}
	return c.memStore.Put(ctx, name, r)
}

func TestSinkCancelMidWrite(t *testing.T) {
	b := salesBatch(t, 5000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := &cancellingStore{memStore: newMemStore(), cancel: cancel}
	s, err := New(store, "sales", Options{PartitionBy: []string{"region"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Write(ctx, intentOf(b), b)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := len(store.names()); n >= 5 {
		t.Fatalf("all %d partitions written despite cancellation", n)
	}
	for _, name := range store.names() {
		readBack(t, store.get(t, name))
	}
}

func TestSinkClosed(t *testing.T) {
	s, err := New(newMemStore(), "sales", Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := regionBatch(t)
	if err := s.Write(context.Background(), intentOf(b), b); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

func TestNewValidates(t *testing.T) {
	var nilStore sink.ObjectStore
	tests := []struct {
		name     string
		store    sink.ObjectStore
		pipeline string
		opts     Options
	}{
		{"nil store", nilStore, "sales", Options{}},
		{"empty pipeline", newMemStore(), "", Options{}},
		{"slash in pipeline", newMemStore(), "a/b", Options{}},
		{"bad compression", newMemStore(), "sales", Options{Compression: Compression(9)}},
		{"negative row group", newMemStore(), "sales", Options{RowGroupRows: -1}},
		{"repeated partition", newMemStore(), "sales", Options{PartitionBy: []string{"a", "a"}}},
		{"empty partition", newMemStore(), "sales", Options{PartitionBy: []string{""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.store, tt.pipeline, tt.opts, nil); !errors.Is(err, ErrBadOption) {
				t.Fatalf("err = %v, want ErrBadOption", err)
			}
		})
	}
}

func TestPartitionValues(t *testing.T) {
	s := mustSchema(t, "b:bool", "i:int32", "l:int64", "f:float64", "d:date", "ts:timestamp",
		"n:decimal(5,2)", "w:decimal(38,9)", "j:json", "bin:binary")
	b := streamd.NewBatch(s, "l")
	b.Cols[0].AppendBool(true)
	b.Cols[1].AppendInt32(-5)
	b.Cols[2].AppendInt64(1 << 40)
	b.Cols[3].AppendFloat64(0.5)
	b.Cols[4].AppendInt32(-1)
	b.Cols[5].AppendInt64(1704164645123000)
	b.Cols[6].AppendInt64(-5)
	b.Cols[7].AppendBytes(wide(t, "-12345678901234567890123456789"))
	b.Cols[8].AppendBytes([]byte(`{"k":"v"}`))
	b.Cols[9].AppendBytes([]byte("x"))
	want := []string{"true", "-5", "1099511627776", "0.5", "1969-12-31", "2024-01-02 03%3A04%3A05.123",
		"-0.05", "-12345678901234567890.123456789", "%7B%22k%22%3A%22v%22}"}
	for i, w := range want {
		got, _ := appendPartitionValue(nil, nil, &b.Cols[i], 0)
		if string(got) != w {
			t.Errorf("%s: %q, want %q", s.Fields[i].Name, got, w)
		}
	}
	if partitionable(s.Fields[9].Type) {
		t.Error("binary columns must not partition")
	}
	if got := EscapePathValue(""); got != DefaultPartition {
		t.Errorf("empty → %q", got)
	}
	if got := EscapePathValue("x\x01y#z"); got != "x%01y%23z" {
		t.Errorf("escape → %q", got)
	}
	store := newMemStore()
	sk, err := New(store, "p", Options{PartitionBy: []string{"bin"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.AddRowMeta(streamd.Position{}, 0)
	if err := sk.Write(context.Background(), streamd.Intent{Lane: "l"}, b); !errors.Is(err, ErrBadOption) {
		t.Fatalf("binary partition: err = %v, want ErrBadOption", err)
	}
}
