package streamd

import (
	"errors"
	"fmt"
	"testing"
)

func dec(p, s uint8) Type { return Type{Kind: KindDecimal, Precision: p, Scale: s} }

func TestParseDecimal(t *testing.T) {
	tests := []struct {
		in   string
		typ  Type
		want int64
		err  error
	}{
		{"12.3", dec(10, 2), 1230, nil},
		{"-0.5", dec(10, 2), -50, nil},
		{"1e3", dec(10, 2), 100000, nil},
		{"1E+3", dec(10, 0), 1000, nil},
		{"1.5e-2", dec(10, 3), 15, nil},
		{"+7", dec(3, 0), 7, nil},
		{".25", dec(4, 2), 25, nil},
		{"5.", dec(4, 2), 500, nil},
		{" 19.99 ", dec(10, 2), 1999, nil},
		{"0", dec(10, 2), 0, nil},
		{"-0.00", dec(10, 2), 0, nil},
		{"000123.4500", dec(10, 2), 12345, nil},
		// half-up rounding, ties away from zero
		{"1.005", dec(10, 2), 101, nil},
		{"1.004", dec(10, 2), 100, nil},
		{"-1.005", dec(10, 2), -101, nil},
		{"-1.0049", dec(10, 2), -100, nil},
		{"0.005", dec(10, 2), 1, nil},
		{"0.0049", dec(10, 2), 0, nil},
		{"0.0005", dec(10, 2), 0, nil},
		{"2.5", dec(10, 0), 3, nil},
		{"-2.5", dec(10, 0), -3, nil},
		{"1e-400", dec(10, 2), 0, nil},
		// precision
		{"99999999.99", dec(10, 2), 9999999999, nil},
		{"999999999.99", dec(10, 2), 0, ErrDecimalRange},
		{"99999999.995", dec(10, 2), 0, ErrDecimalRange}, // rounds up to 10^10
		{"1e8", dec(10, 2), 0, ErrDecimalRange},
		{"1e400", dec(10, 2), 0, ErrDecimalRange},
		{"999999999999999999", dec(18, 0), 999999999999999999, nil},
		{"-999999999999999999", dec(18, 0), -999999999999999999, nil},
		{"1000000000000000000", dec(18, 0), 0, ErrDecimalRange},
		// syntax
		{"", dec(10, 2), 0, ErrDecimalSyntax},
		{"abc", dec(10, 2), 0, ErrDecimalSyntax},
		{".", dec(10, 2), 0, ErrDecimalSyntax},
		{"-", dec(10, 2), 0, ErrDecimalSyntax},
		{"1e", dec(10, 2), 0, ErrDecimalSyntax},
		{"1.2.3", dec(10, 2), 0, ErrDecimalSyntax},
		{"12a", dec(10, 2), 0, ErrDecimalSyntax},
		{"NaN", dec(10, 2), 0, ErrDecimalSyntax},
		{"1 2", dec(10, 2), 0, ErrDecimalSyntax},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.in, tt.typ), func(t *testing.T) {
			got, err := ParseDecimal([]byte(tt.in), tt.typ)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseDecimal(%q, %v) error = %v, want %v", tt.in, tt.typ, err, tt.err)
			}
			if err == nil && got != tt.want {
				t.Fatalf("ParseDecimal(%q, %v) = %d, want %d", tt.in, tt.typ, got, tt.want)
			}
		})
	}
}

func TestParseDecimalRejectsBadTypes(t *testing.T) {
	for _, typ := range []Type{dec(20, 2), {Kind: KindInt32}, dec(0, 0), dec(3, 4)} {
		if _, err := ParseDecimal([]byte("1"), typ); err == nil {
			t.Errorf("ParseDecimal with %v: want error", typ)
		}
	}
	if _, err := ParseDecimalWide([]byte("1"), Type{Kind: KindString}); err == nil {
		t.Error("ParseDecimalWide with string type: want error")
	}
}

func TestDecimalWideRoundTrip(t *testing.T) {
	tests := []struct {
		in, want string
		typ      Type
		err      error
	}{
		{"12345678901234567890.123456789", "12345678901234567890.123456789", dec(38, 9), nil},
		{"-12345678901234567890.123456789", "-12345678901234567890.123456789", dec(38, 9), nil},
		{"99999999999999999999999999999.999999999", "99999999999999999999999999999.999999999", dec(38, 9), nil},
		{"-99999999999999999999999999999.999999999", "-99999999999999999999999999999.999999999", dec(38, 9), nil},
		{"99999999999999999999999999999999999999", "99999999999999999999999999999999999999", dec(38, 0), nil},
		{"999999999999999999999999999999.999999999", "", dec(38, 9), ErrDecimalRange},
		{"0.0000000005", "0.000000001", dec(38, 9), nil},
		{"-0.0000000005", "-0.000000001", dec(38, 9), nil},
		{"0", "0.000000000", dec(38, 9), nil},
		{"1e20", "100000000000000000000.000000000", dec(38, 9), nil},
		{"12.5", "13", dec(20, 0), nil},
		{"x", "", dec(38, 9), ErrDecimalSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			be, err := ParseDecimalWide([]byte(tt.in), tt.typ)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseDecimalWide(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if err != nil {
				return
			}
			if got := string(AppendDecimalWide(nil, be[:], int(tt.typ.Scale))); got != tt.want {
				t.Fatalf("round trip of %q = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFormatDecimal(t *testing.T) {
	tests := []struct {
		v     int64
		scale int
		want  string
	}{
		{1230, 2, "12.30"},
		{-50, 2, "-0.50"},
		{5, 3, "0.005"},
		{0, 2, "0.00"},
		{0, 0, "0"},
		{7, 0, "7"},
		{-9223372036854775808, 0, "-9223372036854775808"},
		{9223372036854775807, 18, "9.223372036854775807"},
		{-9223372036854775808, 19, "-0.9223372036854775808"},
		{10000000000000000, 0, "10000000000000000"},
	}
	for _, tt := range tests {
		if got := FormatDecimal(tt.v, tt.scale); got != tt.want {
			t.Errorf("FormatDecimal(%d, %d) = %q, want %q", tt.v, tt.scale, got, tt.want)
		}
	}
	if got := string(AppendDecimalWide(nil, []byte{1, 2}, 2)); got != "null" {
		t.Errorf("AppendDecimalWide(short) = %q, want null", got)
	}
}

func TestWideInt64Conversion(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 1999, -1999, 1<<63 - 1, -1 << 63} {
		w := WideFromInt64(v)
		got, ok := Int64FromWide(w[:])
		if !ok || got != v {
			t.Errorf("Int64FromWide(WideFromInt64(%d)) = %d, %v", v, got, ok)
		}
		if s1, s2 := string(AppendDecimalWide(nil, w[:], 3)), FormatDecimal(v, 3); s1 != s2 {
			t.Errorf("wide text %q != narrow text %q", s1, s2)
		}
	}
	big, err := ParseDecimalWide([]byte("12345678901234567890"), dec(38, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := Int64FromWide(big[:]); ok {
		t.Error("Int64FromWide of a 20-digit value: want !ok")
	}
	if _, ok := Int64FromWide([]byte{1}); ok {
		t.Error("Int64FromWide of 1 byte: want !ok")
	}
}

func BenchmarkParseDecimal(b *testing.B) {
	s := []byte("19.99")
	typ := dec(10, 2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseDecimal(s, typ); err != nil {
			b.Fatal(err)
		}
	}
}
