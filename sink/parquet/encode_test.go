package parquet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	pqformat "github.com/apache/arrow-go/v18/parquet"

	"github.com/streamd/streamd"
)

var allTypes = []string{
	"s:string", "j:json", "bin:binary", "b:bool", "i32:int32", "i64:int64", "f:float64",
	"d5:decimal(5,2)", "d12:decimal(12,2)", "d38:decimal(38,9)", "dt:date", "ts:timestamp",
}

// allTypesBatch has three rows: values, negative/edge values, and all nulls.
func allTypesBatch(t testing.TB) *streamd.Batch {
	t.Helper()
	b := streamd.NewBatch(mustSchema(t, allTypes...), "lane-a")
	c := b.Cols
	// row 0
	c[0].AppendBytes([]byte("héllo"))
	c[1].AppendBytes([]byte(`{"a":[1,2]}`))
	c[2].AppendBytes([]byte{0, 1, 255})
	c[3].AppendBool(true)
	c[4].AppendInt32(-7)
	c[5].AppendInt64(1 << 40)
	c[6].AppendFloat64(2.5)
	c[7].AppendInt64(12345)                                    // 123.45
	c[8].AppendInt64(123456789012)                             // 1234567890.12
	c[9].AppendBytes(wide(t, "12345678901234567890123456789")) // 12345678901234567890.123456789
	c[10].AppendInt32(19724)                                   // 2024-01-02
	c[11].AppendInt64(1704164645123456)                        // 2024-01-02T03:04:05.123456Z
	b.AddRowMeta(streamd.Position{Offset: 1}, 0)
	// row 1
	c[0].AppendBytes(nil)
	c[1].AppendBytes([]byte(`null`))
	c[2].AppendBytes(nil)
	c[3].AppendBool(false)
	c[4].AppendInt32(1 << 30)
	c[5].AppendInt64(-1)
	c[6].AppendFloat64(-0.125)
	c[7].AppendInt64(-99999)                                             // -999.99
	c[8].AppendInt64(-999999999999)                                      // -9999999999.99
	c[9].AppendBytes(wide(t, "-99999999999999999999999999999999999999")) // -99999999999999999999999999999.999999999
	c[10].AppendInt32(-1)                                                // 1969-12-31
	c[11].AppendInt64(0)
	b.AddRowMeta(streamd.Position{Offset: 2}, 0)
	// row 2: all null
	for i := range c {
		c[i].AppendNull()
	}
	b.AddRowMeta(streamd.Position{Offset: 3}, 0)
	return b
}

func TestEncodeRoundTripArrow(t *testing.T) {
	b := allTypesBatch(t)
	for _, comp := range []Compression{Snappy, Zstd, None} {
		t.Run(comp.String(), func(t *testing.T) {
			var buf bytes.Buffer
			if err := Encode(&buf, b, nil, EncoderOptions{Compression: comp}); err != nil {
				t.Fatal(err)
			}
			tbl, rdr := readBack(t, buf.Bytes())
			if tbl.NumRows() != 3 {
				t.Fatalf("rows = %d, want 3", tbl.NumRows())
			}
			want := map[string][3]string{
				"s":   {"héllo", "", "NULL"},
				"j":   {`{"a":[1,2]}`, "null", "NULL"},
				"bin": {"AAH/", "", "NULL"},
				"b":   {"true", "false", "NULL"},
				"i32": {"-7", "1073741824", "NULL"},
				"i64": {"1099511627776", "-1", "NULL"},
				"f":   {"2.5", "-0.125", "NULL"},
				"d5":  {"123.45", "-999.99", "NULL"},
				"d12": {"1234567890.12", "-9999999999.99", "NULL"},
				"d38": {"12345678901234567890.123456789", "-99999999999999999999999999999.999999999", "NULL"},
				"dt":  {"2024-01-02", "1969-12-31", "NULL"},
				"ts":  {"2024-01-02T03:04:05.123456Z", "1970-01-01T00:00:00Z", "NULL"},
			}
			for name, rows := range want {
				for i, w := range rows {
					if got := cell(t, tbl, name, i); got != w {
						t.Errorf("%s[%d] = %q, want %q", name, i, got, w)
					}
				}
			}
			// Column order follows the schema.
			for i, f := range b.Schema.Fields {
				if got := tbl.Schema().Field(i).Name; got != f.Name {
					t.Errorf("column %d = %q, want %q", i, got, f.Name)
				}
			}
			wantTypes := map[string]string{
				"s": "utf8", "j": "utf8", "bin": "binary", "b": "bool", "i32": "int32", "i64": "int64",
				"f": "float64", "d5": "decimal(5, 2)", "d12": "decimal(12, 2)", "d38": "decimal(38, 9)",
				"dt": "date32", "ts": "timestamp[us, tz=UTC]",
			}
			for _, f := range tbl.Schema().Fields() {
				if got := f.Type.String(); got != wantTypes[f.Name] {
					t.Errorf("arrow type of %s = %s, want %s", f.Name, got, wantTypes[f.Name])
				}
				if !f.Nullable {
					t.Errorf("%s is not nullable", f.Name)
				}
			}
			ts := tbl.Schema().Field(11).Type.(*arrow.TimestampType)
			if ts.Unit != arrow.Microsecond || ts.TimeZone != "UTC" {
				t.Errorf("timestamp type = %v", ts)
			}
			// Physical types and codec.
			md := rdr.MetaData()
			wantPhys := []pqformat.Type{
				pqformat.Types.ByteArray, pqformat.Types.ByteArray, pqformat.Types.ByteArray, pqformat.Types.Boolean,
				pqformat.Types.Int32, pqformat.Types.Int64, pqformat.Types.Double, pqformat.Types.Int32,
				pqformat.Types.Int64, pqformat.Types.FixedLenByteArray, pqformat.Types.Int32, pqformat.Types.Int64,
			}
			wantCodec := map[Compression]string{Snappy: "SNAPPY", Zstd: "ZSTD", None: "UNCOMPRESSED"}[comp]
			rg := md.RowGroup(0)
			for i, w := range wantPhys {
				cc, err := rg.ColumnChunk(i)
				if err != nil {
					t.Fatal(err)
				}
				if cc.Type() != w {
					t.Errorf("column %d physical type = %s, want %s", i, cc.Type(), w)
				}
				if got := cc.Compression().String(); got != wantCodec {
					t.Errorf("column %d codec = %s, want %s", i, got, wantCodec)
				}
				st, err := cc.Statistics()
				if err != nil || st == nil {
					t.Fatalf("column %d statistics: %v %v", i, st, err)
				}
				if !st.HasMinMax() || st.NullCount() != 1 {
					t.Errorf("column %d statistics: minmax=%v nulls=%d", i, st.HasMinMax(), st.NullCount())
				}
			}
			if fl := md.Schema.Column(9).TypeLength(); fl != 16 {
				t.Errorf("wide decimal length = %d, want 16", fl)
			}
			if got := md.Schema.Column(0).LogicalType().String(); got != "String" {
				t.Errorf("string logical type = %s", got)
			}
			if got := md.Schema.Column(1).LogicalType().String(); got != "String" {
				t.Errorf("json logical type = %s", got)
			}
		})
	}
}

func TestEncodeDeterministic(t *testing.T) {
	b := salesBatch(t, 30000)
	enc, err := NewEncoder(b.Schema, EncoderOptions{RowGroupRows: 7000})
	if err != nil {
		t.Fatal(err)
	}
	var first, second, third bytes.Buffer
	if err := enc.Encode(&first, b, nil); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(&second, b, nil); err != nil {
		t.Fatal(err)
	}
	// A separate encoder (as after a restart) gives the same bytes too.
	if err := Encode(&third, b, nil, EncoderOptions{RowGroupRows: 7000}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) || !bytes.Equal(first.Bytes(), third.Bytes()) {
		t.Fatal("encoding the same batch twice gave different bytes")
	}
	// A different batch gives different bytes (the comparison can fail).
	b.Cols[3].Int32[0]++
	var changed bytes.Buffer
	if err := enc.Encode(&changed, b, nil); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first.Bytes(), changed.Bytes()) {
		t.Fatal("different content encoded to the same bytes")
	}
}

func TestEncodeDictionaryAndRowGroups(t *testing.T) {
	b := salesBatch(t, 25000)
	var buf bytes.Buffer
	if err := Encode(&buf, b, nil, EncoderOptions{RowGroupRows: 10000}); err != nil {
		t.Fatal(err)
	}
	tbl, rdr := readBack(t, buf.Bytes())
	md := rdr.MetaData()
	if md.NumRowGroups() != 3 {
		t.Fatalf("row groups = %d, want 3", md.NumRowGroups())
	}
	for i, want := range []int64{10000, 10000, 5000} {
		if got := md.RowGroup(i).NumRows(); got != want {
			t.Errorf("row group %d rows = %d, want %d", i, got, want)
		}
	}
	if got := md.GetCreatedBy(); got != "streamd" {
		t.Errorf("created_by = %q", got)
	}
	region := b.Schema.Index("region")
	txn := b.Schema.Index("transaction_id")
	for g := range md.NumRowGroups() {
		cc, err := md.RowGroup(g).ColumnChunk(region)
		if err != nil {
			t.Fatal(err)
		}
		if !cc.HasDictionaryPage() || !hasDictEncoding(cc.Encodings()) {
			t.Errorf("row group %d: region encodings %v, dictionary page %v; want dictionary", g, cc.Encodings(), cc.HasDictionaryPage())
		}
		cc, err = md.RowGroup(g).ColumnChunk(txn)
		if err != nil {
			t.Fatal(err)
		}
		if cc.HasDictionaryPage() {
			t.Errorf("row group %d: unique transaction ids got a dictionary", g)
		}
	}
	for _, i := range []int{0, 9999, 10000, 24999} {
		if got, want := cell(t, tbl, "transaction_id", i), fmt.Sprintf("txn-%010d", i); got != want {
			t.Errorf("transaction_id[%d] = %q, want %q", i, got, want)
		}
		if got, want := cell(t, tbl, "region", i), string(b.Cols[region].Bytes.At(i)); got != want {
			t.Errorf("region[%d] = %q, want %q", i, got, want)
		}
	}
}

func hasDictEncoding(encs []pqformat.Encoding) bool {
	for _, e := range encs {
		if e == pqformat.Encodings.RLEDict || e == pqformat.Encodings.PlainDict {
			return true
		}
	}
	return false
}

func TestEncodeRowSubset(t *testing.T) {
	b := allTypesBatch(t)
	var buf bytes.Buffer
	if err := Encode(&buf, b, []int{2, 0}, EncoderOptions{Omit: []string{"bin", "j"}}); err != nil {
		t.Fatal(err)
	}
	tbl, _ := readBack(t, buf.Bytes())
	if tbl.NumRows() != 2 || tbl.Schema().NumFields() != len(allTypes)-2 {
		t.Fatalf("rows=%d cols=%d", tbl.NumRows(), tbl.Schema().NumFields())
	}
	if got := cell(t, tbl, "d38", 0); got != "NULL" {
		t.Errorf("d38[0] = %q, want NULL", got)
	}
	if got := cell(t, tbl, "d38", 1); got != "12345678901234567890.123456789" {
		t.Errorf("d38[1] = %q", got)
	}
	// An empty selection is a valid file with no rows.
	buf.Reset()
	if err := Encode(&buf, b, []int{}, EncoderOptions{}); err != nil {
		t.Fatal(err)
	}
	if tbl, _ := readBack(t, buf.Bytes()); tbl.NumRows() != 0 {
		t.Fatalf("rows = %d, want 0", tbl.NumRows())
	}
}

func TestEncodeErrors(t *testing.T) {
	good := allTypesBatch(t)
	badWide := allTypesBatch(t)
	badWide.Cols[9] = streamd.Column{Type: badWide.Cols[9].Type}
	badWide.Cols[9].AppendBytes([]byte{1, 2, 3})
	badWide.Cols[9].AppendNull()
	badWide.Cols[9].AppendNull()
	overflow := allTypesBatch(t)
	overflow.Cols[7].Int64[0] = 1 << 40
	short := allTypesBatch(t)
	short.Cols[4].Valid = short.Cols[4].Valid[:2]
	wrongType := allTypesBatch(t)
	wrongType.Cols[0].Type = streamd.Type{Kind: streamd.KindInt64}
	otherSchema := salesBatch(t, 3)

	enc, err := NewEncoder(good.Schema, EncoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		b       *streamd.Batch
		rows    []int
		wantErr error
	}{
		{"nil batch", nil, nil, ErrSchemaMismatch},
		{"other schema", otherSchema, nil, ErrSchemaMismatch},
		{"column type differs", wrongType, nil, ErrSchemaMismatch},
		{"short column", short, nil, ErrSchemaMismatch},
		{"wide decimal length", badWide, nil, ErrBadValue},
		{"narrow decimal overflow", overflow, nil, ErrBadValue},
		{"row out of range", good, []int{0, 3}, ErrBadOption},
		{"negative row", good, []int{-1}, ErrBadOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := enc.Encode(io.Discard, tt.b, tt.rows); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewEncoderErrors(t *testing.T) {
	s := mustSchema(t, "a:int32", "b:string")
	tests := []struct {
		name    string
		s       *streamd.Schema
		opts    EncoderOptions
		wantErr error
	}{
		{"nil schema", nil, EncoderOptions{}, ErrBadOption},
		{"unknown omit", s, EncoderOptions{Omit: []string{"c"}}, ErrUnknownColumn},
		{"omit everything", s, EncoderOptions{Omit: []string{"a", "b"}}, ErrBadOption},
		{"bad compression", s, EncoderOptions{Compression: Compression(7)}, ErrBadOption},
		{"negative row group", s, EncoderOptions{RowGroupRows: -1}, ErrBadOption},
		{"invalid type", &streamd.Schema{Fields: []streamd.Field{{Name: "x", Type: streamd.Type{Kind: streamd.KindInvalid}}}}, EncoderOptions{}, ErrUnsupportedType},
		{"decimal precision 0", &streamd.Schema{Fields: []streamd.Field{{Name: "x", Type: streamd.Type{Kind: streamd.KindDecimal}}}}, EncoderOptions{}, ErrUnsupportedType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewEncoder(tt.s, tt.opts); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseCompression(t *testing.T) {
	for in, want := range map[string]Compression{"": Snappy, "snappy": Snappy, "ZSTD": Zstd, "none": None, "uncompressed": None} {
		got, err := ParseCompression(in)
		if err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseCompression("gzip"); !errors.Is(err, ErrBadOption) {
		t.Errorf("gzip: err = %v, want ErrBadOption", err)
	}
}

// errWriter fails after n bytes.
type errWriter struct{ n int }

var errShortWrite = errors.New("disk full")

func (w *errWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errShortWrite
	}
	w.n -= len(p)
	return len(p), nil
}

func TestEncodeWriterError(t *testing.T) {
	b := salesBatch(t, 5000)
	if err := Encode(&errWriter{n: 1000}, b, nil, EncoderOptions{}); !errors.Is(err, errShortWrite) {
		t.Fatalf("err = %v, want %v", err, errShortWrite)
	}
}

// TestEncodeStatisticsOrder checks min/max in the column chunk statistics and
// the column index against the logical order, including negative wide
// decimals (which parquet-go alone would order as unsigned bytes).
func TestEncodeStatisticsOrder(t *testing.T) {
	b := allTypesBatch(t)
	var buf bytes.Buffer
	if err := Encode(&buf, b, nil, EncoderOptions{}); err != nil {
		t.Fatal(err)
	}
	_, rdr := readBack(t, buf.Bytes())
	pos, neg := wide(t, "12345678901234567890123456789"), wide(t, "-99999999999999999999999999999999999999")
	tests := []struct {
		col      int
		min, max []byte
	}{
		{9, neg, pos}, // decimal(38,9) on FIXED_LEN_BYTE_ARRAY(16)
		{7, le32(-99999), le32(12345)},
		{8, le64(-999999999999), le64(123456789012)},
		{4, le32(-7), le32(1 << 30)},
		{0, []byte(""), []byte("héllo")},
	}
	rg, err := rdr.GetPageIndexReader().RowGroup(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		cc, err := rdr.MetaData().RowGroup(0).ColumnChunk(tt.col)
		if err != nil {
			t.Fatal(err)
		}
		st, err := cc.Statistics()
		if err != nil {
			t.Fatal(err)
		}
		if !st.HasMinMax() || !bytes.Equal(st.EncodeMin(), tt.min) || !bytes.Equal(st.EncodeMax(), tt.max) {
			t.Errorf("column %d statistics min %x max %x, want %x %x", tt.col, st.EncodeMin(), st.EncodeMax(), tt.min, tt.max)
		}
		ci, err := rg.GetColumnIndex(tt.col)
		if err != nil {
			t.Fatalf("column %d index: %v", tt.col, err)
		}
		if len(ci.GetMinValues()) != 1 || !bytes.Equal(ci.GetMinValues()[0], tt.min) || !bytes.Equal(ci.GetMaxValues()[0], tt.max) {
			t.Errorf("column %d index min %x max %x, want %x %x", tt.col, ci.GetMinValues(), ci.GetMaxValues(), tt.min, tt.max)
		}
		if ci.GetNullCounts()[0] != 1 || ci.GetNullPages()[0] {
			t.Errorf("column %d index nulls %v pages %v", tt.col, ci.GetNullCounts(), ci.GetNullPages())
		}
	}
}

func le32(v int32) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }
func le64(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }

// TestEncodeWideDecimalAllNullPage checks that an all-null wide decimal
// column still gets a valid column index.
func TestEncodeWideDecimalAllNullPage(t *testing.T) {
	b := streamd.NewBatch(mustSchema(t, "w:decimal(38,9)", "i:int32"), "l")
	for i := range 3 {
		b.Cols[0].AppendNull()
		b.Cols[1].AppendInt32(int32(i))
		b.AddRowMeta(streamd.Position{Offset: int64(i)}, 0)
	}
	var buf bytes.Buffer
	if err := Encode(&buf, b, nil, EncoderOptions{}); err != nil {
		t.Fatal(err)
	}
	tbl, rdr := readBack(t, buf.Bytes())
	if got := cell(t, tbl, "w", 2); got != "NULL" {
		t.Fatalf("w[2] = %q", got)
	}
	rg, err := rdr.GetPageIndexReader().RowGroup(0)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := rg.GetColumnIndex(0)
	if err != nil {
		t.Fatalf("column index: %v", err)
	}
	if !ci.GetNullPages()[0] || ci.GetNullCounts()[0] != 3 {
		t.Fatalf("null pages %v counts %v", ci.GetNullPages(), ci.GetNullCounts())
	}
}
