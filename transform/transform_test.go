package transform

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/streamd/streamd"
)

func rec(off int64, line string) streamd.Record {
	return streamd.Record{Data: []byte(line), Pos: streamd.Position{Offset: off}, Time: 42}
}

func process(t *testing.T, spec Spec, header string, lines ...string) *streamd.Batch {
	t.Helper()
	p, err := Compile(spec)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	recs := make([]streamd.Record, len(lines))
	for i, l := range lines {
		recs[i] = rec(int64(i), l)
	}
	b := p.Process("lane", []byte(header), recs)
	if !b.Accounted() {
		t.Fatalf("batch not accounted: read %d, rows %d, filtered %d, dead %d", b.Read, b.Len(), b.Filtered, len(b.Dead))
	}
	if b.Read != len(lines) {
		t.Fatalf("Read = %d, want %d", b.Read, len(lines))
	}
	return b
}

func rows(b *streamd.Batch) []string {
	var out []string
	for i := 0; i < b.Len(); i++ {
		out = append(out, string(streamd.AppendRowJSON(nil, b, i)))
	}
	return out
}

func deadReasons(b *streamd.Batch) []string {
	var out []string
	for _, d := range b.Dead {
		out = append(out, d.Error)
	}
	return out
}

func TestProcessSales(t *testing.T) {
	line := `{"transaction_id":"T000000123","customer_id":"C12345","product_id":"P987","quantity":3,"unit_price":"19.99","transaction_date":"2026-03-14","event_time":"2026-03-14T10:11:12.123Z","region":"EU-WEST"}`
	b := process(t, salesSpec(t), "", line)
	want := `{"transaction_id":"T000000123","customer_id":"C12345","product_id":"P987","quantity":3,"unit_price":19.99,` +
		`"transaction_date":"2026-03-14","event_time":"2026-03-14T10:11:12.123000Z","region":"EU-WEST","total_amount":59.97}`
	if got := rows(b); len(got) != 1 || got[0] != want {
		t.Fatalf("rows = %v\nwant %s", got, want)
	}
	if b.EventTime[0] != 1773483072123000 {
		t.Errorf("EventTime = %d, want the event_time column", b.EventTime[0])
	}
	if b.Bytes != len(line) || b.From.Offset != 0 || b.To.Offset != 0 || b.Lane != "lane" {
		t.Errorf("batch meta: bytes %d from %v to %v lane %q", b.Bytes, b.From, b.To, b.Lane)
	}
	if b.Schema.Fingerprint() != "transaction_id:string,customer_id:string,product_id:string,quantity:int32,unit_price:decimal(10,2),transaction_date:date,event_time:timestamp,region:string,total_amount:decimal(12,2)" {
		t.Errorf("schema = %s", b.Schema.Fingerprint())
	}
}

func TestEventTimeFallsBackToRecordTime(t *testing.T) {
	spec := Spec{Columns: []ColumnSpec{{Name: "event_time", Type: streamd.Type{Kind: streamd.KindTimestamp}}}}
	b := process(t, spec, "", `{"event_time":null}`, `{"event_time":1}`)
	if b.EventTime[0] != 42 || b.EventTime[1] != 1_000_000 {
		t.Fatalf("EventTime = %v, want [42 1000000]", b.EventTime)
	}
}

func TestCasts(t *testing.T) {
	tests := []struct {
		typ  string
		in   string // JSON value of field v
		want string // rendered value, or the dead-letter reason when err
		err  bool
	}{
		{"string", `"abc"`, `"abc"`, false},
		{"string", `"a\nb\u00e9\ud83d\ude00\"x"`, `"a\nbé😀\"x"`, false},
		{"string", `12.50`, `"12.50"`, false},
		{"string", `true`, `"true"`, false},
		{"string", `{"a": [1]}`, `"{\"a\": [1]}"`, false},
		{"string", `null`, `null`, false},
		{"int32", `3`, `3`, false},
		{"int32", `"3"`, `3`, false},
		{"int32", `" 7 "`, `7`, false},
		{"int32", `-2147483648`, `-2147483648`, false},
		{"int32", `3.0`, `3`, false},
		{"int32", `1e3`, `1000`, false},
		{"int32", `2147483648`, `column "v": cannot cast 2147483648 to int32: out of range`, true},
		{"int32", `"abc"`, `column "v": cannot cast "abc" to int32: not a number`, true},
		{"int32", `1.5`, `column "v": cannot cast 1.5 to int32: not an integer`, true},
		{"int32", `true`, `column "v": cannot cast true to int32: want a number, got boolean`, true},
		{"int32", `""`, `column "v": cannot cast "" to int32: not a number`, true},
		{"int64", `9223372036854775807`, `9223372036854775807`, false},
		{"int64", `-9223372036854775808`, `-9223372036854775808`, false},
		{"int64", `9223372036854775808`, `column "v": cannot cast 9223372036854775808 to int64: out of range`, true},
		{"int64", `99999999999999999999999`, `column "v": cannot cast 99999999999999999999999 to int64: out of range`, true},
		{"float64", `1.5`, `1.5`, false},
		{"float64", `"2.25"`, `2.25`, false},
		{"float64", `"abc"`, `column "v": cannot cast "abc" to float64`, true},
		{"float64", `"NaN"`, `column "v": cannot cast "NaN" to float64`, true},
		{"float64", `[1]`, `column "v": cannot cast [1] to float64: want a number, got array`, true},
		{"decimal(10,2)", `"19.99"`, `19.99`, false},
		{"decimal(10,2)", `19.995`, `20.00`, false},
		{"decimal(10,2)", `-19.995`, `-20.00`, false},
		{"decimal(10,2)", `1e3`, `1000.00`, false},
		{"decimal(10,2)", `"x"`, `column "v": cannot cast "x" to decimal(10,2): malformed decimal`, true},
		{"decimal(10,2)", `123456789012`, `column "v": cannot cast 123456789012 to decimal(10,2): decimal exceeds precision`, true},
		{"decimal(38,9)", `"12345678901234567890.123456789"`, `12345678901234567890.123456789`, false},
		{"decimal(38,9)", `12345678901234567890.123456789`, `12345678901234567890.123456789`, false},
		{"bool", `true`, `true`, false},
		{"bool", `false`, `false`, false},
		{"bool", `"true"`, `true`, false},
		{"bool", `"FALSE"`, `false`, false},
		{"bool", `1`, `true`, false},
		{"bool", `0`, `false`, false},
		{"bool", `"1"`, `true`, false},
		{"bool", `2`, `column "v": cannot cast 2 to bool: want true, false, 0 or 1`, true},
		{"bool", `"yes"`, `column "v": cannot cast "yes" to bool: want true, false, 0 or 1`, true},
		{"date", `"2026-03-14"`, `"2026-03-14"`, false},
		{"date", `"2024-02-29"`, `"2024-02-29"`, false},
		{"date", `"1969-12-31"`, `"1969-12-31"`, false},
		{"date", `"2026-03-14T23:30:00-02:00"`, `"2026-03-15"`, false},
		{"date", `"1969-12-31T23:59:59Z"`, `"1969-12-31"`, false},
		{"date", `"2026-02-30"`, `column "v": cannot cast "2026-02-30" to date: want YYYY-MM-DD or RFC 3339`, true},
		{"date", `"14/03/2026"`, `column "v": cannot cast "14/03/2026" to date: want YYYY-MM-DD or RFC 3339`, true},
		{"date", `20260314`, `column "v": cannot cast 20260314 to date: want a YYYY-MM-DD or RFC 3339 string, got number`, true},
		{"timestamp", `"2026-03-14T10:11:12.123Z"`, `"2026-03-14T10:11:12.123000Z"`, false},
		{"timestamp", `"2026-03-14T10:11:12.1234567+01:00"`, `"2026-03-14T09:11:12.123456Z"`, false},
		{"timestamp", `"2026-03-14 10:11:12"`, `"2026-03-14T10:11:12.000000Z"`, false},
		{"timestamp", `"2026-03-14"`, `"2026-03-14T00:00:00.000000Z"`, false},
		{"timestamp", `1773483072`, `"2026-03-14T10:11:12.000000Z"`, false},
		{"timestamp", `1773483072.5`, `"2026-03-14T10:11:12.500000Z"`, false},
		{"timestamp", `1773483072123`, `"2026-03-14T10:11:12.123000Z"`, false},
		{"timestamp", `1773483072123456`, `"2026-03-14T10:11:12.123456Z"`, false},
		{"timestamp", `"1773483072"`, `"2026-03-14T10:11:12.000000Z"`, false},
		{"timestamp", `-1`, `"1969-12-31T23:59:59.000000Z"`, false},
		{"timestamp", `"garbage"`, `column "v": cannot cast "garbage" to timestamp: want RFC 3339 text or epoch seconds/milliseconds/microseconds`, true},
		{"timestamp", `"2026-03-14T25:00:00Z"`, `column "v": cannot cast "2026-03-14T25:00:00Z" to timestamp: want RFC 3339 text or epoch seconds/milliseconds/microseconds`, true},
		{"timestamp", `"2026-03-14T10:11:12+0100"`, `column "v": cannot cast "2026-03-14T10:11:12+0100" to timestamp: want RFC 3339 text or epoch seconds/milliseconds/microseconds`, true},
		{"json", `{"a": [1, 2]}`, `{"a": [1, 2]}`, false},
		{"json", `"str"`, `"str"`, false},
		{"json", `12`, `12`, false},
		{"binary", `"AAEC"`, `"AAEC"`, false},
		{"binary", `"!!"`, `column "v": cannot cast "!!" to binary: invalid base64`, true},
		{"binary", `5`, `column "v": cannot cast 5 to binary: want a base64 string, got number`, true},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"/"+tt.in, func(t *testing.T) {
			spec := Spec{Columns: []ColumnSpec{{Name: "v", Type: mustType(t, tt.typ)}, {Name: "after", Type: mustType(t, "string")}}}
			b := process(t, spec, "", `{"v":`+tt.in+`,"after":"x"}`)
			if tt.err {
				if b.Len() != 0 || len(b.Dead) != 1 || b.Dead[0].Error != tt.want {
					t.Fatalf("rows %v, dead %q; want dead %q", rows(b), deadReasons(b), tt.want)
				}
				if string(b.Dead[0].Raw) != `{"v":`+tt.in+`,"after":"x"}` {
					t.Errorf("dead raw = %s", b.Dead[0].Raw)
				}
				return
			}
			want := `{"v":` + tt.want + `,"after":"x"}`
			if got := rows(b); len(got) != 1 || got[0] != want {
				t.Fatalf("rows = %v dead = %q, want %s", got, deadReasons(b), want)
			}
		})
	}
}

func TestMissingFieldIsNull(t *testing.T) {
	spec := Spec{Columns: []ColumnSpec{{Name: "a", Type: mustType(t, "int64")}, {Name: "b", Type: mustType(t, "string")}}}
	b := process(t, spec, "", `{"b":"x","other":{"deep":[1,{"a":2}]}}`, `{}`, `{"a":null,"a":5}`)
	want := []string{`{"a":null,"b":"x"}`, `{"a":null,"b":null}`, `{"a":5,"b":null}`}
	if got := rows(b); !reflect.DeepEqual(got, want) {
		t.Fatalf("rows = %v, want %v", got, want)
	}
}

func TestNestedAndRenamedFields(t *testing.T) {
	spec := Spec{Columns: []ColumnSpec{
		{Name: "city", Type: mustType(t, "string"), From: "address.city"},
		{Name: "zip", Type: mustType(t, "int32"), From: "address.geo.zip"},
		{Name: "addr", Type: mustType(t, "json"), From: "address"},
		{Name: "id", Type: mustType(t, "string"), From: "ID"},
	}}
	b := process(t, spec, "",
		`{"ID":"x1","address":{"city":"Oslo","geo":{"zip":"150"}}}`,
		`{"ID":"x2","address":"not an object"}`,
		`{"address":{"geo":{"zip":"abc"}}}`)
	want := []string{
		`{"city":"Oslo","zip":150,"addr":{"city":"Oslo","geo":{"zip":"150"}},"id":"x1"}`,
		`{"city":null,"zip":null,"addr":"not an object","id":"x2"}`,
	}
	if got := rows(b); !reflect.DeepEqual(got, want) {
		t.Fatalf("rows = %v\nwant %v", got, want)
	}
	if r := deadReasons(b); len(r) != 1 || r[0] != `column "zip": cannot cast "abc" to int32: not a number` {
		t.Fatalf("dead = %q", r)
	}
}

func TestMalformedJSON(t *testing.T) {
	tests := []struct{ line, reason string }{
		{`{"a":1`, `malformed JSON at byte 6: unexpected end of input, want ',' or '}' in object`},
		{`not json`, `malformed JSON at byte 0: unexpected 'n', want '{' (a record must be a JSON object)`},
		{`{"a":1} x`, `malformed JSON at byte 8: unexpected 'x', want end of record after the object`},
		{`[1]`, `malformed JSON at byte 0: unexpected '[', want '{' (a record must be a JSON object)`},
		{``, `malformed JSON at byte 0: empty record`},
		{"  \n", `malformed JSON at byte 3: empty record`},
		{"{\"a\":\"x\x01\"}", `malformed JSON at byte 7: control character in string`},
		{`{"a":tru}`, `malformed JSON at byte 5: unexpected 't', want true`},
		{`{"a":01}`, `malformed JSON at byte 6: unexpected '1', want ',' or '}' in object`},
		{`{"a":"\q"}`, `malformed JSON at byte 6: invalid escape in string`},
		{`{"a":"\u12"}`, `malformed JSON at byte 6: invalid \u escape in string`},
		{`{"a":"x`, `malformed JSON at byte 7: unterminated string`},
		{`{"a" 1}`, `malformed JSON at byte 5: unexpected '1', want ':' after object key`},
		{`{a:1}`, `malformed JSON at byte 1: unexpected 'a', want '"' starting an object key`},
		{`{"a":-}`, `malformed JSON at byte 6: unexpected '}', want a digit`},
		{`{"a":1.}`, `malformed JSON at byte 7: unexpected '}', want a digit after '.'`},
		{`{"a":1e}`, `malformed JSON at byte 7: unexpected '}', want a digit in the exponent`},
		{`{"a":[1,}`, `malformed JSON at byte 8: unexpected '}', want a value`},
		{`{"a":[1 2]}`, `malformed JSON at byte 8: unexpected '2', want ',' or ']' in array`},
		{`{"b":{"c":}}`, `malformed JSON at byte 10: unexpected '}', want a value`},
		{`{"a":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`, `malformed JSON at byte 517: nesting too deep`},
	}
	spec := Spec{Columns: []ColumnSpec{{Name: "a", Type: mustType(t, "string")}, {Name: "c", Type: mustType(t, "string"), From: "b.c"}}}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			b := process(t, spec, "", tt.line)
			if b.Len() != 0 || len(b.Dead) != 1 || b.Dead[0].Error != tt.reason {
				t.Fatalf("dead = %q, want %q", deadReasons(b), tt.reason)
			}
			if string(b.Dead[0].Raw) != tt.line || b.Dead[0].Lane != "lane" {
				t.Fatalf("dead letter = %+v", b.Dead[0])
			}
		})
	}
}

func TestRecordErrorIsDeadLettered(t *testing.T) {
	p, err := Compile(salesSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	recs := []streamd.Record{
		{Data: []byte("xxxx"), Pos: streamd.Position{Offset: 5}, Err: "record exceeds max_record_size"},
	}
	b := p.Process("lane", nil, recs)
	if !b.Accounted() || len(b.Dead) != 1 || b.Dead[0].Error != "record exceeds max_record_size" || b.Dead[0].Pos.Offset != 5 {
		t.Fatalf("batch = %+v", b)
	}
}

func TestCSV(t *testing.T) {
	spec := Spec{Format: "csv", Columns: []ColumnSpec{
		{Name: "id", Type: mustType(t, "string")},
		{Name: "qty", Type: mustType(t, "int32"), From: "quantity"},
		{Name: "price", Type: mustType(t, "decimal(10,2)")},
		{Name: "note", Type: mustType(t, "string")},
		{Name: "missing", Type: mustType(t, "string")},
		{Name: "ok", Type: mustType(t, "bool")},
	}}
	header := "\xef\xbb\xbfid,quantity,price,note,ok,extra\r\n"
	tests := []struct {
		line string
		row  string
		dead string
	}{
		{`a1,3,19.99,plain,true,x`, `{"id":"a1","qty":3,"price":19.99,"note":"plain","missing":null,"ok":true}`, ""},
		{"a2,4,1.5,\"has, comma\",1,\r\n", `{"id":"a2","qty":4,"price":1.50,"note":"has, comma","missing":null,"ok":true}`, ""},
		{`a3,,,"say ""hi""",0,`, `{"id":"a3","qty":null,"price":null,"note":"say \"hi\"","missing":null,"ok":false}`, ""},
		{`a4,"5","",,false,""`, `{"id":"a4","qty":5,"price":null,"note":null,"missing":null,"ok":false}`, ""},
		{`"",1,2,"",0,`, `{"id":"","qty":1,"price":2.00,"note":"","missing":null,"ok":false}`, ""},
		{`a5,abc,1,n,true,x`, "", `column "qty": cannot cast "abc" to int32: not a number`},
		{`a6,1,2`, "", `malformed CSV: 3 fields, the header has 6`},
		{`a7,1,2,"open,true,x`, "", `malformed CSV at byte 7: unterminated quoted field`},
		{`a8,1,2,no"te,true,x`, "", `malformed CSV at byte 9: bare '"' in unquoted field`},
		{`a9,1,2,"n"x,true,x`, "", `malformed CSV at byte 10: unexpected 'x' after closing quote`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			b := process(t, spec, header, tt.line)
			if tt.dead != "" {
				if r := deadReasons(b); len(r) != 1 || r[0] != tt.dead {
					t.Fatalf("dead = %q, want %q (rows %v)", r, tt.dead, rows(b))
				}
				return
			}
			if got := rows(b); len(got) != 1 || got[0] != tt.row {
				t.Fatalf("rows = %v dead %q\nwant %s", got, deadReasons(b), tt.row)
			}
		})
	}
}

func TestCSVBadHeader(t *testing.T) {
	spec := Spec{Format: "csv", Columns: []ColumnSpec{{Name: "id", Type: mustType(t, "string")}}}
	for _, h := range []string{"", `"id`} {
		b := process(t, spec, h, "a", "b")
		if len(b.Dead) != 2 || !strings.HasPrefix(b.Dead[0].Error, "bad CSV header: ") {
			t.Fatalf("header %q: dead = %q", h, deadReasons(b))
		}
	}
}

func exprSpec(t *testing.T, cols []ColumnSpec, filters ...string) Spec {
	base := []ColumnSpec{
		{Name: "q", Type: mustType(t, "int32")},
		{Name: "p", Type: mustType(t, "decimal(10,2)")},
		{Name: "big", Type: mustType(t, "int64")},
		{Name: "f", Type: mustType(t, "float64")},
		{Name: "s", Type: mustType(t, "string")},
		{Name: "w", Type: mustType(t, "decimal(38,9)")},
	}
	return Spec{Columns: append(base, cols...), Filters: filters}
}

func TestComputedColumns(t *testing.T) {
	line := `{"q":3,"p":"19.99","big":9000000000000000000,"f":0.1,"s":"EU","w":"12345678901234567890.123456789"}`
	tests := []struct {
		name, typ, expr string
		want            string // rendered value, or dead reason
		dead            bool
	}{
		{"product", "decimal(12,2)", "q * p", "59.97", false},
		{"sum exact", "decimal(12,2)", "p + 0.01", "20.00", false},
		{"tenth", "decimal(12,3)", "p * 0.1 + 0.2", "2.199", false},
		{"round half up", "decimal(12,1)", "p * 1.5", "30.0", false},    // 29.985 → 30.0
		{"round half up 2", "decimal(12,2)", "p * 0.25", "5.00", false}, // 4.9975 → 5.00
		{"negative round", "decimal(12,2)", "0 - p * 0.25", "-5.00", false},
		{"unary minus", "decimal(12,2)", "-p", "-19.99", false},
		{"compare", "bool", "p > 19.98 and q == 3", "true", false},
		{"int result", "int64", "q * 2 - 1", "5", false},
		{"int from decimal", "int32", "p", "20", false},
		{"float", "float64", "f * 2", "0.2", false},
		{"int overflow", "decimal(38,0)", "big * 10", `column "x": integer overflow`, true},
		{"int overflow sub", "int64", "0 - big - big", `column "x": integer overflow`, true},
		{"decimal overflow to VM", "decimal(38,2)", "p * big", "179910000000000000000.00", false},
		{"decimal sum overflow to VM", "decimal(38,2)", "p + big + big", "18000000000000000019.99", false},
		{"wide operand", "decimal(38,9)", "w + p", "12345678901234567910.113456789", false},
		{"division exact", "decimal(12,4)", "p / 3", "6.6633", false},
		{"int division", "decimal(10,2)", "q / 2", "1.50", false},
		{"string expr", "string", `s + "-" + string(q)`, `"EU-3"`, false},
		{"conditional", "decimal(10,2)", "q > 2 ? p : 0", "19.99", false},
		{"division by zero", "decimal(10,2)", "p / (q - 3)", `column "x": division by zero`, true},
		{"precision overflow", "decimal(3,2)", "p * q", `column "x": cannot cast 59.97 to decimal(3,2): decimal exceeds precision`, true},
		{"int32 overflow", "int32", "big", `column "x": cannot cast 9000000000000000000 to int32: out of range`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := exprSpec(t, []ColumnSpec{{Name: "x", Type: mustType(t, tt.typ), Expr: tt.expr}})
			for _, fast := range []bool{true, false} {
				p, err := Compile(spec)
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				if !fast {
					p.cols[len(p.cols)-1].expr.fast = nil
				}
				b := p.Process("lane", nil, []streamd.Record{rec(0, line)})
				if !b.Accounted() {
					t.Fatal("not accounted")
				}
				if tt.dead {
					if r := deadReasons(b); len(r) != 1 || r[0] != tt.want {
						t.Fatalf("fast=%v: dead = %q, want %q", fast, r, tt.want)
					}
					continue
				}
				got := rows(b)
				if len(got) != 1 || !strings.HasSuffix(got[0], `"x":`+tt.want+`}`) {
					t.Fatalf("fast=%v: rows = %v dead %q, want x = %s", fast, got, deadReasons(b), tt.want)
				}
			}
		})
	}
}

func TestExpressionRuntimeError(t *testing.T) {
	spec := exprSpec(t, []ColumnSpec{{Name: "x", Type: mustType(t, "int64"), Expr: "int(s)"}})
	b := process(t, spec, "", `{"s":"EU"}`, `{"s":"12"}`)
	if r := deadReasons(b); len(r) != 1 || !strings.HasPrefix(r[0], `column "x": `) || len(r[0]) < 20 {
		t.Fatalf("dead = %q", r)
	}
	if got := rows(b); len(got) != 1 || !strings.HasSuffix(got[0], `"x":12}`) {
		t.Fatalf("rows = %v", got)
	}
}

func TestFastPathUsed(t *testing.T) {
	p, err := Compile(salesSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.cols[8].expr.fast == nil {
		t.Fatal("quantity * unit_price should use the vectorised evaluator")
	}
	p2, err := Compile(exprSpec(t, nil, `s == "EU" and (q > 2 or not (p < 1.5))`))
	if err != nil {
		t.Fatal(err)
	}
	if p2.filters[0].fast == nil {
		t.Fatal("string/number filter should use the vectorised evaluator")
	}
}

func TestComputedUsesEarlierComputed(t *testing.T) {
	spec := exprSpec(t, []ColumnSpec{
		{Name: "gross", Type: mustType(t, "decimal(12,2)"), Expr: "q * p"},
		{Name: "vat", Type: mustType(t, "decimal(12,2)"), Expr: "gross * 0.25"},
	})
	b := process(t, spec, "", `{"q":3,"p":"19.99"}`)
	if got := rows(b); len(got) != 1 || !strings.HasSuffix(got[0], `"gross":59.97,"vat":14.99}`) {
		t.Fatalf("rows = %v", got) // 14.9925 → 14.99
	}
}

func TestNullSemantics(t *testing.T) {
	spec := exprSpec(t, []ColumnSpec{
		{Name: "total", Type: mustType(t, "decimal(12,2)"), Expr: "q * p"},
		{Name: "qz", Type: mustType(t, "int32"), Expr: "q ?? 0"},
		{Name: "isnull", Type: mustType(t, "bool"), Expr: "q == nil"},
	}, "p > 1")
	b := process(t, spec, "", `{"p":"2"}`, `{"q":2}`)
	got := rows(b)
	if len(got) != 1 || !strings.HasSuffix(got[0], `"total":null,"qz":0,"isnull":true}`) {
		t.Fatalf("rows = %v", got)
	}
	if b.Filtered != 1 {
		t.Fatalf("Filtered = %d, want 1 (null p fails the filter)", b.Filtered)
	}
}

func TestFilters(t *testing.T) {
	lines := []string{
		`{"q":1,"s":"EU","p":"1"}`,
		`{"q":0,"s":"EU","p":"1"}`,
		`{"q":5,"s":"US","p":"1"}`,
		`{"q":7,"s":"EU","p":"0"}`,
		`{"q":"bad","s":"EU"}`,
		`{"q":9,"s":"EU","p":"2"}`,
	}
	spec := exprSpec(t, []ColumnSpec{{Name: "t", Type: mustType(t, "decimal(12,2)"), Expr: "q * p"}},
		"q > 0", `s == "EU"`, "t / p > 1")
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprint("fast=", fast), func(t *testing.T) {
			p, err := Compile(spec)
			if err != nil {
				t.Fatal(err)
			}
			if !fast {
				p.cols[len(p.cols)-1].expr.fast = nil
				for _, f := range p.filters {
					f.fast = nil
				}
			}
			recs := make([]streamd.Record, len(lines))
			for i, l := range lines {
				recs[i] = rec(int64(i), l)
			}
			checkFiltered(t, p.Process("lane", nil, recs), lines)
		})
	}
}

func checkFiltered(t *testing.T, b *streamd.Batch, lines []string) {
	t.Helper()
	if !b.Accounted() {
		t.Fatal("not accounted")
	}
	got := rows(b)
	if len(got) != 1 || !strings.HasPrefix(got[0], `{"q":9,`) {
		t.Fatalf("rows = %v", got)
	}
	want := []string{`column "q": cannot cast "bad" to int32: not a number`, `filter "t / p > 1": division by zero`}
	if r := deadReasons(b); !reflect.DeepEqual(r, want) {
		t.Fatalf("dead = %q, want %q", r, want)
	}
	if b.Filtered != 3 {
		t.Fatalf("Filtered = %d, want 3", b.Filtered)
	}
	if string(b.Dead[1].Raw) != lines[3] || b.Dead[1].Pos.Offset != 3 {
		t.Fatalf("filter dead letter = %+v", b.Dead[1])
	}
	if b.Pos[0].Offset != 5 || len(b.EventTime) != 1 {
		t.Fatalf("row meta = %v %v", b.Pos, b.EventTime)
	}
}

func TestCompileErrors(t *testing.T) {
	dec := mustType(t, "decimal(10,2)")
	tests := []struct {
		spec Spec
		want string
	}{
		{Spec{Format: "xml", Columns: []ColumnSpec{{Name: "a", Type: dec}}}, `format "xml"`},
		{Spec{}, "no columns"},
		{Spec{Columns: []ColumnSpec{{Name: "a", Type: dec}, {Name: "a", Type: dec}}}, `duplicate column "a"`},
		{Spec{Columns: []ColumnSpec{{Name: "a"}}}, `column "a" has no type`},
		{Spec{Columns: []ColumnSpec{{Name: "a", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 40}}}}, `column "a": invalid type`},
		{Spec{Columns: []ColumnSpec{{Name: "a", Type: dec, From: "x..y"}}}, `column "a": bad field path`},
		{Spec{Columns: []ColumnSpec{{Name: "a", Type: dec, Expr: "1", From: "b"}}}, `column "a": has both expr and from`},
		{Spec{Columns: []ColumnSpec{{Name: "a", Type: dec, Expr: "b +"}}}, `column "a": expression "b +"`},
		{Spec{Columns: []ColumnSpec{{Name: "a", Type: dec, Expr: "nope * 2"}}}, `column "a": expression "nope * 2": unknown name nope`},
		{Spec{Columns: []ColumnSpec{{Name: "a", Type: dec, Expr: "b"}, {Name: "b", Type: dec, Expr: "1"}}}, `column "b" is computed at or after this column`},
		{Spec{Columns: []ColumnSpec{{Name: "a", Type: dec, Expr: "a + 1"}}}, `column "a" is computed at or after this column`},
		{Spec{Columns: []ColumnSpec{{Name: "a", Type: dec}}, Filters: []string{"a + 1"}}, `filter "a + 1"`},
		{Spec{Columns: []ColumnSpec{{Name: "a", Type: dec}}, Filters: []string{"a >"}}, `filter "a >"`},
	}
	for _, tt := range tests {
		_, err := Compile(tt.spec)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrSpec) {
			t.Errorf("Compile(%+v) = %v, want an ErrSpec error containing %q", tt.spec, err, tt.want)
		}
	}
}

func TestAccountingMixedBatch(t *testing.T) {
	spec := salesSpec(t)
	spec.Filters = []string{"quantity > 1"}
	p, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	recs := salesRecords(200)
	recs[3].Data = []byte(`{"broken`)
	recs[7].Err = "source error"
	recs[9].Data = []byte(`{"quantity":"x"}`)
	b := p.Process("lane", nil, recs)
	if !b.Accounted() {
		t.Fatalf("not accounted: read %d rows %d filtered %d dead %d", b.Read, b.Len(), b.Filtered, len(b.Dead))
	}
	if b.Read != 200 || len(b.Dead) != 3 || b.Filtered == 0 {
		t.Fatalf("read %d dead %d filtered %d", b.Read, len(b.Dead), b.Filtered)
	}
	if b.From != recs[0].Pos || b.To != recs[199].Pos {
		t.Fatalf("range %v..%v", b.From, b.To)
	}
	for i := 0; i < b.Len(); i++ {
		if b.Cols[3].Int32[i] <= 1 {
			t.Fatalf("row %d has quantity %d after the filter", i, b.Cols[3].Int32[i])
		}
		if b.Cols[8].Int64[i] != int64(b.Cols[3].Int32[i])*b.Cols[4].Int64[i] {
			t.Fatalf("row %d total %d", i, b.Cols[8].Int64[i])
		}
	}
}

func TestProcessConcurrent(t *testing.T) {
	spec := salesSpec(t)
	spec.Filters = []string{`region == "EU-WEST" and quantity < 9`}
	p, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	chunks := make([][]streamd.Record, 16)
	want := make([][]string, len(chunks))
	for i := range chunks {
		chunks[i] = salesRecords(100 + i*7)
		chunks[i][i].Data = []byte(`{"quantity":1e40}`)
		want[i] = append(rows(p.Process("l", nil, chunks[i])), fmt.Sprint(len(chunks[i])))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 4; k++ {
				for i, c := range chunks {
					b := p.Process("l", nil, c)
					got := append(rows(b), fmt.Sprint(b.Read))
					if !b.Accounted() || !reflect.DeepEqual(got, want[i]) || len(b.Dead) != 1 {
						errs <- fmt.Sprintf("chunk %d differs under concurrency", i)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestProcessEmpty(t *testing.T) {
	p, err := Compile(salesSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	b := p.Process("lane", nil, nil)
	if b.Read != 0 || b.Len() != 0 || !b.Accounted() || p.Schema() != b.Schema {
		t.Fatalf("empty batch = %+v", b)
	}
}
