package transform

import (
	"testing"

	"github.com/streamd/streamd"
)

func TestMetadataColumns(t *testing.T) {
	spec := Spec{Format: "jsonl", Columns: []ColumnSpec{
		{Name: "id", Type: mustType(t, "string")},
		{Name: ColKafkaKey, Type: mustType(t, "string")},
		{Name: ColKafkaTopic, Type: mustType(t, "string")},
		{Name: ColKafkaPartition, Type: mustType(t, "int32")},
		{Name: ColKafkaOffset, Type: mustType(t, "int64")},
		{Name: ColKafkaTimestamp, Type: mustType(t, "timestamp")},
		{Name: ColKafkaHeaders, Type: mustType(t, "json")},
		{Name: "n", Type: mustType(t, "int64")},
	}}
	p, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	meta := &streamd.RecordMeta{Key: []byte("k1"), Topic: "sales", Partition: 3, Offset: 42, Timestamp: 1700000000123456,
		Headers: []streamd.RecordHeader{{Key: "trace", Value: []byte("abc")}, {Key: "bin", Value: []byte{0xff, 0x00}}}}
	recs := []streamd.Record{
		{Data: []byte(`{"id":"a","n":1}`), Pos: streamd.Position{Offset: 42}, Meta: meta},
		{Data: []byte(`{"id":"b","n":2}`), Pos: streamd.Position{Offset: 43}},
		{Data: []byte(`{"id":"c","n":3,"_kafka_topic":"spoofed"}`), Pos: streamd.Position{Offset: 44}, Meta: &streamd.RecordMeta{Topic: "t2"}},
	}
	b := p.Process("sales/3", nil, recs)
	if b.Len() != 3 || !b.Accounted() {
		t.Fatalf("rows %d, dead %v", b.Len(), b.Dead)
	}
	col := func(name string) *streamd.Column { return &b.Cols[b.Schema.Index(name)] }
	if got := string(col(ColKafkaKey).Bytes.At(0)); got != "k1" {
		t.Errorf("key %q", got)
	}
	if got := col(ColKafkaPartition).Int32[0]; got != 3 {
		t.Errorf("partition %d", got)
	}
	if got := col(ColKafkaOffset).Int64[0]; got != 42 {
		t.Errorf("offset %d", got)
	}
	if got := col(ColKafkaTimestamp).Int64[0]; got != 1700000000123456 {
		t.Errorf("timestamp %d", got)
	}
	if got, want := string(col(ColKafkaHeaders).Bytes.At(0)), `[{"key":"trace","value":"abc"},{"key":"bin","value_base64":"/wA="}]`; got != want {
		t.Errorf("headers %s, want %s", got, want)
	}
	for _, name := range []string{ColKafkaKey, ColKafkaTopic, ColKafkaPartition, ColKafkaOffset, ColKafkaHeaders} {
		if !col(name).IsNull(1) {
			t.Errorf("%s of a record without metadata is not null", name)
		}
	}
	if got := string(col(ColKafkaTopic).Bytes.At(2)); got != "t2" {
		t.Errorf("payload field overrode metadata: topic %q", got)
	}
	if !col(ColKafkaKey).IsNull(2) {
		t.Error("nil key is not null")
	}
	if got := string(col("id").Bytes.At(2)); got != "c" || col("n").Int64[2] != 3 {
		t.Errorf("payload columns disturbed: %q %d", got, col("n").Int64[2])
	}
	if _, err := Compile(Spec{Columns: []ColumnSpec{{Name: ColKafkaOffset, Type: mustType(t, "string")}}}); err == nil {
		t.Error("a metadata column of the wrong type compiled")
	}
}

func TestRecycledBatchesDecodeLikeFreshOnes(t *testing.T) {
	spec := Spec{Format: "jsonl", Columns: []ColumnSpec{
		{Name: "id", Type: mustType(t, "string")},
		{Name: "q", Type: mustType(t, "int32")},
		{Name: "price", Type: mustType(t, "decimal(10,2)")},
	}, Filters: []string{"q > 0"}}
	p, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	lines := [][]string{
		{`{"id":"a-long-identifier-0001","q":1,"price":"1.10"}`, `{"id":"b","q":0,"price":"2"}`, `not json`},
		{`{"id":"c","q":3,"price":3}`},
		{`{"id":"d","q":4,"price":"4.44"}`, `{"id":"e-another-quite-long-identifier","q":5,"price":"5.55"}`},
	}
	for round, ls := range lines {
		recs := make([]streamd.Record, len(ls))
		for i, l := range ls {
			recs[i] = streamd.Record{Data: []byte(l), Pos: streamd.Position{Offset: int64(10*round + i)}}
		}
		fresh, err := Compile(spec)
		if err != nil {
			t.Fatal(err)
		}
		want := fresh.Process("l", nil, recs)
		got := p.Process("l", nil, recs)
		if got.Len() != want.Len() || got.Filtered != want.Filtered || len(got.Dead) != len(want.Dead) || got.Read != want.Read || !got.Accounted() {
			t.Fatalf("round %d: recycled batch differs: %d rows %d filtered %d dead, want %d %d %d", round, got.Len(), got.Filtered, len(got.Dead), want.Len(), want.Filtered, len(want.Dead))
		}
		for i := 0; i < got.Len(); i++ {
			if g, w := string(streamd.AppendRowJSON(nil, got, i)), string(streamd.AppendRowJSON(nil, want, i)); g != w {
				t.Fatalf("round %d row %d: %s, want %s", round, i, g, w)
			}
		}
		p.Recycle(got)
	}
}
