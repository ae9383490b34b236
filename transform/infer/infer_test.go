package infer

import (
	"errors"
	"strings"
	"testing"

	"github.com/streamd/streamd"
)

func TestInferTypes(t *testing.T) {
	tests := []struct {
		name   string
		values []string // JSON values of field "v"
		want   string
	}{
		{"int32", []string{"1", "-7", `"12"`}, "int32"},
		{"int64", []string{"1", "3000000000"}, "int64"},
		{"decimal", []string{"1", "19.99", `"-123.5"`}, "decimal(5,2)"},
		{"float exp", []string{"1.5", "1e300"}, "float64"},
		{"huge", []string{"1.5", "123456789012345678901234567890123456789.5"}, "float64"},
		{"bool", []string{"true", "false", `"TRUE"`}, "bool"},
		{"date", []string{`"2026-03-14"`}, "date"},
		{"timestamp", []string{`"2026-03-14"`, `"2026-03-14T10:11:12Z"`, `"2026-03-14 10:11:12.5"`}, "timestamp"},
		{"conflict", []string{"1", `"abc"`}, "string"},
		{"zip code", []string{`"01234"`, `"12345"`}, "string"},
		{"nested", []string{`{"a":1}`, `[1]`}, "json"},
		{"all null", []string{"null"}, "string"},
	}
	for _, tt := range tests {
		var recs [][]byte
		for _, v := range tt.values {
			recs = append(recs, []byte(`{"v":`+v+`}`))
		}
		res, err := Infer(recs, nil, Options{})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := res.Columns[0].Type.String(); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestInferErrors(t *testing.T) {
	if _, err := Infer([][]byte{[]byte("{bad")}, nil, Options{}); !errors.Is(err, ErrInfer) {
		t.Errorf("all malformed: %v", err)
	}
	if _, err := Infer(nil, nil, Options{Format: "csv"}); !errors.Is(err, ErrInfer) {
		t.Errorf("csv without header: %v", err)
	}
	if _, err := Infer([][]byte{[]byte(`{}`)}, nil, Options{Nested: "struct"}); err == nil || !strings.Contains(err.Error(), "no struct type") {
		t.Errorf("struct: %v", err)
	}
	s, _ := streamd.NewSchema(streamd.Field{Name: "a", Type: streamd.Type{Kind: streamd.KindInt32}})
	for _, opts := range []TableOptions{{Name: "t", PartitionBy: []string{"b"}}, {Name: "t", PartitionBy: []string{"a"}}, {Name: "t", Compression: "lzma"}, {}} {
		if _, err := DDL(s, opts); !errors.Is(err, ErrInfer) {
			t.Errorf("DDL(%+v) = %v", opts, err)
		}
	}
}

func TestYAMLQuoting(t *testing.T) {
	r := &Result{Columns: []Column{{Name: "a", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 4, Scale: 2}, From: "x.Tier Level"}, {Name: "true", Type: streamd.Type{Kind: streamd.KindBool}}}}
	want := "schema:\n  - {name: a, type: \"decimal(4,2)\", from: \"x.Tier Level\"}\n  - {name: \"true\", type: bool}\n"
	if got := r.YAML(); got != want {
		t.Errorf("YAML:\n%s\nwant\n%s", got, want)
	}
}
