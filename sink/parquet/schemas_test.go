package parquet

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/streamd/streamd"
)

func TestRecordSchemas(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	s, err := New(store, "sales", Options{PartitionBy: []string{"region"}, RecordSchemas: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b := regionBatch(t)
	for range 2 { // the same schema again records nothing new
		if err := s.Write(ctx, intentOf(b), b); err != nil {
			t.Fatal(err)
		}
	}
	wider := streamd.NewBatch(mustSchema(t, "id:int64", "region:string", "day:date", "amount:decimal(12,2)", "coupon:string"), "orders/3")
	for i := range 3 {
		wider.Cols[0].AppendInt64(int64(i))
		wider.Cols[1].AppendBytes([]byte("eu"))
		wider.Cols[2].AppendInt32(1)
		wider.Cols[3].AppendInt64(5)
		wider.Cols[4].AppendNull()
		wider.NoteRead(streamd.Position{Offset: int64(100 + i)}, 5)
		wider.AddRowMeta(streamd.Position{Offset: int64(100 + i)}, 0)
	}
	if err := s.Write(ctx, intentOf(wider), wider); err != nil {
		t.Fatal(err)
	}
	// Another pipeline whose name starts with this one's is not mixed in.
	other, err := New(store, "sales-eu", Options{RecordSchemas: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Write(ctx, streamd.Intent{Pipeline: "sales-eu", Lane: b.Lane, From: b.From, To: b.To}, regionBatch(t)); err != nil {
		t.Fatal(err)
	}

	recs, err := ReadSchemas(ctx, store, "sales")
	if err != nil {
		t.Fatal(err)
	}
	var fps []string
	for _, r := range recs {
		if r.Pipeline != "sales" || len(r.PartitionBy) != 1 || r.PartitionBy[0] != "region" {
			t.Errorf("record %+v", r)
		}
		sc, err := r.Schema()
		if err != nil {
			t.Fatal(err)
		}
		fps = append(fps, sc.Fingerprint())
	}
	got := strings.Join(fps, " | ")
	if !strings.Contains(got, "id:int64,region:string,day:date,amount:decimal(12,2)") || !strings.Contains(got, ",coupon:string") || len(fps) != 2 {
		t.Fatalf("recorded schemas %s, want the two written", got)
	}
}

func TestRecordSchemasOffByDefault(t *testing.T) {
	store := newMemStore()
	s, err := New(store, "sales", Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := regionBatch(t)
	if err := s.Write(context.Background(), intentOf(b), b); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadSchemas(context.Background(), store, "sales")
	if err != nil || len(recs) != 0 {
		t.Fatalf("ReadSchemas = %v, %v; want none", recs, err)
	}
}

func TestReadSchemasRejectsCorruptRecord(t *testing.T) {
	store := newMemStore()
	for name, body := range map[string]string{
		SchemaDir + "/sales-1.json": `{"pipeline":"sales","columns":[{"name":"a","type":"int64"}],"extra":1}`,
		SchemaDir + "/sales-2.json": `{"pipeline":"sales","columns":[{"name":"a","type":"decimal(99,1)"}]}`,
		SchemaDir + "/sales-3.json": `not json`,
	} {
		store.objects[name] = []byte(body)
		if _, err := ReadSchemas(context.Background(), store, "sales"); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: ReadSchemas = %v, want ErrBadRecord", body, err)
		}
		delete(store.objects, name)
	}
}

func TestRecordSchemaPutFailureFailsWrite(t *testing.T) {
	store := newMemStore()
	store.failOn = SchemaDir
	s, err := New(store, "sales", Options{RecordSchemas: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := regionBatch(t)
	if err := s.Write(context.Background(), intentOf(b), b); !errors.Is(err, errInjected) {
		t.Fatalf("Write = %v, want the schema put's error", err)
	}
	if len(store.objects) != 0 {
		t.Fatalf("objects written before the schema was recorded: %v", store.objects)
	}
	store.failOn = "" // the retry records it and writes the file
	if err := s.Write(context.Background(), intentOf(b), b); err != nil {
		t.Fatal(err)
	}
	if recs, err := ReadSchemas(context.Background(), store, "sales"); err != nil || len(recs) != 1 {
		t.Fatalf("ReadSchemas = %v, %v", recs, err)
	}
}
