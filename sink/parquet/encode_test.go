package parquet

import (
	"bytes"
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
