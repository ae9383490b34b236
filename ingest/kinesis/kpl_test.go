package kinesis

import (
	"crypto/md5"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/streamd/streamd"
)

// aggregate builds a KPL aggregated record from the documented format
// (magic, protobuf AggregatedRecord, MD5 of the protobuf) with protowire,
// independently of the package's reader. Each sub-record i uses partition
// key keys[i%len(keys)]; extra adds an explicit hash key table entry and a
// tag to every record (fields the reader must skip).
func aggregate(keys []string, datas [][]byte, extra bool) []byte {
	var pb []byte
	for _, k := range keys {
		pb = protowire.AppendTag(pb, 1, protowire.BytesType)
		pb = protowire.AppendString(pb, k)
	}
	if extra {
		pb = protowire.AppendTag(pb, 2, protowire.BytesType)
		pb = protowire.AppendString(pb, "340282366920938463463374607431768211455")
	}
	for i, d := range datas {
		var r []byte
		r = protowire.AppendTag(r, 1, protowire.VarintType)
		r = protowire.AppendVarint(r, uint64(i%len(keys)))
		if extra {
			r = protowire.AppendTag(r, 2, protowire.VarintType)
			r = protowire.AppendVarint(r, 0)
			var tg []byte
			tg = protowire.AppendTag(tg, 1, protowire.BytesType)
			tg = protowire.AppendString(tg, "source")
			r = protowire.AppendTag(r, 4, protowire.BytesType)
			r = protowire.AppendBytes(r, tg)
		}
		r = protowire.AppendTag(r, 3, protowire.BytesType)
		r = protowire.AppendBytes(r, d)
		pb = protowire.AppendTag(pb, 3, protowire.BytesType)
		pb = protowire.AppendBytes(pb, r)
	}
	return frame(pb)
}

func frame(pb []byte) []byte {
	sum := md5.Sum(pb)
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, pb...)
	return append(out, sum[:]...)
}

func TestDeaggregate(t *testing.T) {
	const seq = "49590338271490256608559692538361571095921575989136588898"
	datas := [][]byte{[]byte(`{"n":0}`), []byte(`{"n":1}`), []byte(`{"n":2}`), []byte(`{"n":3}`)}
	good := aggregate([]string{"a", "b"}, datas, false)
	badMD5 := append([]byte(nil), good...)
	badMD5[len(badMD5)-1] ^= 0xff
	var badIdx []byte
	{
		var r []byte
		r = protowire.AppendTag(r, 1, protowire.VarintType)
		r = protowire.AppendVarint(r, 5)
		r = protowire.AppendTag(r, 3, protowire.BytesType)
		r = protowire.AppendBytes(r, []byte("x"))
		pb := protowire.AppendTag(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "k"), 3, protowire.BytesType)
		badIdx = frame(protowire.AppendBytes(pb, r))
	}
	truncated := frame([]byte{0x1a, 0x10, 0x08}) // records field claims 16 bytes, has 1
	noRecords := frame(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "k"))
	at := func(sub int32) *streamd.Position { return &streamd.Position{Seq: seq, Sub: sub} }

	tests := []struct {
		name    string
		data    []byte
		skip    *streamd.Position
		want    []string // data of the records, in order
		subs    []int32
		wantErr string
	}{
		{name: "plain record", data: []byte("plain"), want: []string{"plain"}, subs: []int32{0}},
		{name: "plain record already committed", data: []byte("plain"), skip: at(0)},
		{name: "short record starting with the magic", data: []byte{0xF3, 0x89, 0x9A, 0xC2, 1}, want: []string{"\xF3\x89\x9A\xC2\x01"}, subs: []int32{0}},
		{name: "aggregate", data: good, want: []string{`{"n":0}`, `{"n":1}`, `{"n":2}`, `{"n":3}`}, subs: []int32{0, 1, 2, 3}},
		{name: "aggregate with hash keys and tags", data: aggregate([]string{"a"}, datas[:2], true), want: []string{`{"n":0}`, `{"n":1}`}, subs: []int32{0, 1}},
		{name: "redo resumes inside the aggregate", data: good, skip: at(1), want: []string{`{"n":2}`, `{"n":3}`}, subs: []int32{2, 3}},
		{name: "aggregate fully committed", data: good, skip: at(3)},
		{name: "checkpoint of an earlier record", data: good, skip: &streamd.Position{Seq: "49590338271490256608559692538361571095921575989136588897", Sub: 9}, want: []string{`{"n":0}`, `{"n":1}`, `{"n":2}`, `{"n":3}`}, subs: []int32{0, 1, 2, 3}},
		{name: "bad MD5", data: badMD5, wantErr: "MD5 mismatch"},
		{name: "partition key index out of range", data: badIdx, wantErr: "partition key 5 of 1"},
		{name: "truncated protobuf", data: truncated, wantErr: "truncated"},
		{name: "no records", data: noRecords, wantErr: "no records"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := deaggregate(nil, tc.data, seq, 42, tc.skip)
			if tc.wantErr != "" {
				if len(got) != 1 || !strings.Contains(got[0].Err, tc.wantErr) || string(got[0].Data) != string(tc.data) || got[0].Pos != (streamd.Position{Seq: seq}) {
					t.Fatalf("got %+v, want one record with Err containing %q and the raw bytes", got, tc.wantErr)
				}
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d records, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, r := range got {
				if string(r.Data) != tc.want[i] || r.Pos != (streamd.Position{Seq: seq, Sub: tc.subs[i]}) || r.Err != "" || r.Time != 42 {
					t.Fatalf("record %d: %+v, want %q at sub %d", i, r, tc.want[i], tc.subs[i])
				}
			}
		})
	}
}

func FuzzDeaggregate(f *testing.F) {
	f.Add(aggregate([]string{"a"}, [][]byte{[]byte("x"), []byte("y")}, true))
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs := deaggregate(nil, data, "1234567890123456789012", 0, nil)
		if len(recs) == 0 {
			t.Fatal("a record vanished")
		}
		for i, r := range recs {
			if r.Pos.Sub != int32(i) {
				t.Fatalf("record %d has sub %d", i, r.Pos.Sub)
			}
		}
	})
}

// BenchmarkDeaggregate measures KPL deaggregation of a 100-record
// aggregate of 160-byte JSON records (MD5 check included).
func BenchmarkDeaggregate(b *testing.B) {
	var datas [][]byte
	for i := 0; i < 100; i++ {
		datas = append(datas, []byte(strings.Repeat("x", 150)+fmt.Sprintf("%010d", i)))
	}
	agg := aggregate([]string{"a", "b", "c"}, datas, false)
	var recs []streamd.Record
	b.SetBytes(int64(len(agg)))
	b.ReportAllocs()
	for b.Loop() {
		recs = deaggregate(recs[:0], agg, "49590338271490256608559692538361571095921575989136588898", 0, nil)
	}
	if len(recs) != 100 {
		b.Fatalf("got %d records", len(recs))
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
}
