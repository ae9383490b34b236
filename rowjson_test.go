package streamd

import (
	"encoding/json"
	"math"
	"testing"
)

func TestAppendRowJSON(t *testing.T) {
	s, err := NewSchema(
		Field{"s", Type{Kind: KindString}},
		Field{"b", Type{Kind: KindBool}},
		Field{"i", Type{Kind: KindInt32}},
		Field{"l", Type{Kind: KindInt64}},
		Field{"f", Type{Kind: KindFloat64}},
		Field{"d", dec(10, 2)},
		Field{"w", dec(38, 9)},
		Field{"dt", Type{Kind: KindDate}},
		Field{"ts", Type{Kind: KindTimestamp}},
		Field{"j", Type{Kind: KindJSON}},
		Field{"bin", Type{Kind: KindBinary}},
	)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBatch(s, "lane")
	wide, err := ParseDecimalWide([]byte("-12345678901234567890.123456789"), dec(38, 9))
	if err != nil {
		t.Fatal(err)
	}
	b.Cols[0].AppendBytes([]byte("a\"b\\c\n\x01\xff"))
	b.Cols[1].AppendBool(true)
	b.Cols[2].AppendInt32(-3)
	b.Cols[3].AppendInt64(1 << 40)
	b.Cols[4].AppendFloat64(1.5)
	b.Cols[5].AppendInt64(1990)
	b.Cols[6].AppendBytes(wide[:])
	b.Cols[7].AppendInt32(20526) // 2026-03-14
	b.Cols[8].AppendInt64(1773483072123000)
	b.Cols[9].AppendBytes([]byte(`{"x":[1,2]}`))
	b.Cols[10].AppendBytes([]byte{0, 1, 2})
	b.AddRowMeta(Position{Offset: 1}, 0)
	for i := range b.Cols {
		b.Cols[i].AppendNull()
	}
	b.AddRowMeta(Position{Offset: 2}, 0)

	tests := []struct {
		row  int
		want string
	}{
		{0, `{"s":"a\"b\\c\n\u0001` + "\ufffd" + `","b":true,"i":-3,"l":1099511627776,"f":1.5,"d":19.90,` +
			`"w":-12345678901234567890.123456789,"dt":"2026-03-14","ts":"2026-03-14T10:11:12.123000Z",` +
			`"j":{"x":[1,2]},"bin":"AAEC"}`},
		{1, `{"s":null,"b":null,"i":null,"l":null,"f":null,"d":null,"w":null,"dt":null,"ts":null,"j":null,"bin":null}`},
	}
	for _, tt := range tests {
		got := string(AppendRowJSON(nil, b, tt.row))
		if got != tt.want {
			t.Errorf("row %d:\n got %s\nwant %s", tt.row, got, tt.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("row %d: invalid JSON %s", tt.row, got)
		}
	}
}

func TestAppendRowJSONFloatSpecials(t *testing.T) {
	s, _ := NewSchema(Field{"f", Type{Kind: KindFloat64}}, Field{"j", Type{Kind: KindJSON}})
	b := NewBatch(s, "")
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		b.Cols[0].AppendFloat64(f)
		b.Cols[1].AppendBytes(nil)
		b.AddRowMeta(Position{}, 0)
	}
	want := []string{`{"f":"NaN","j":null}`, `{"f":"+Inf","j":null}`, `{"f":"-Inf","j":null}`}
	for i, w := range want {
		if got := string(AppendRowJSON(nil, b, i)); got != w {
			t.Errorf("row %d = %s, want %s", i, got, w)
		}
	}
}
