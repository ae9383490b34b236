package sinktest

import (
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	row := func(js string) Row {
		r, err := DecodeRow([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name      string
		got, want []Row
		diff      string // substring of the diff, "" for equal
	}{
		{"equal", []Row{row(`{"a":1}`)}, []Row{row(`{"a":1}`)}, ""},
		{"numbers by value", []Row{row(`{"a":19.9,"b":1e2}`)}, []Row{row(`{"a":19.90,"b":100}`)}, ""},
		{"null is absent", []Row{row(`{"a":1}`)}, []Row{row(`{"a":1,"b":null}`)}, ""},
		{"nested order", []Row{row(`{"j":{"y":[1,{"q":2}],"x":"s"}}`)}, []Row{row(`{"j":{"x":"s","y":[1,{"q":2.0}]}}`)}, ""},
		{"order of rows", []Row{row(`{"a":2}`), row(`{"a":1}`)}, []Row{row(`{"a":1}`), row(`{"a":2}`)}, ""},
		{"duplicate", []Row{row(`{"a":1}`), row(`{"a":1}`)}, []Row{row(`{"a":1}`)}, "1 unexpected, 0 missing"},
		{"missing", nil, []Row{row(`{"a":1}`)}, "0 unexpected, 1 missing"},
		{"different value", []Row{row(`{"a":"1"}`)}, []Row{row(`{"a":1}`)}, "1 unexpected, 1 missing"},
		{"string vs bool", []Row{row(`{"a":"true"}`)}, []Row{row(`{"a":true}`)}, "1 unexpected"},
		{"list order matters", []Row{row(`{"a":[1,2]}`)}, []Row{row(`{"a":[2,1]}`)}, "1 missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Diff(tc.got, tc.want)
			if tc.diff == "" && d != "" || tc.diff != "" && !strings.Contains(d, tc.diff) {
				t.Fatalf("Diff = %q, want %q", d, tc.diff)
			}
		})
	}
}

func TestSubset(t *testing.T) {
	a, _ := DecodeRow([]byte(`{"a":1}`))
	b, _ := DecodeRow([]byte(`{"a":2}`))
	torn, _ := DecodeRow([]byte(`{"a":3}`))
	if got := subset([]Row{a, a, torn}, []Row{a, b}); len(got) != 1 || Diff(got, []Row{a}) != "" {
		t.Fatalf("subset = %v", got)
	}
}

func TestRecordsAreDistinct(t *testing.T) {
	b := NewBatch(t, 0, Records(0, 200), 2)
	if !b.Accounted() || b.Len() != 200 || b.Read != 202 {
		t.Fatalf("batch: len %d read %d", b.Len(), b.Read)
	}
	seen := map[string]bool{}
	for _, r := range RowsOf(t, b) {
		c := Canonical(r)
		if seen[c] {
			t.Fatalf("duplicate row %s", c)
		}
		seen[c] = true
	}
}
