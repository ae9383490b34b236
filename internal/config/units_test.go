package config

import (
	"errors"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"0", 0, true},
		{"250ms", 250 * time.Millisecond, true},
		{"1h30m", 90 * time.Minute, true},
		{"24h", 24 * time.Hour, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"1.5d", 36 * time.Hour, true},
		{" 2m ", 2 * time.Minute, true},
		{"-5s", -5 * time.Second, true},
		{"", 0, false},
		{"30", 0, false},
		{"3 0s", 0, false},
		{"d", 0, false},
		{"5w", 0, false},
		{"1.2.3s", 0, false},
		{"-", 0, false},
		{"200000000d", 0, false}, // overflows int64 nanoseconds
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.ok != (err == nil) || got.Std() != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got.Std(), err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidValue) {
			t.Errorf("ParseDuration(%q) error does not wrap ErrInvalidValue: %v", tt.in, err)
		}
	}
}

func TestDurationString(t *testing.T) {
	for d, want := range map[Duration]string{
		0:                                 "0s",
		Duration(30 * time.Second):        "30s",
		Duration(7 * 24 * time.Hour):      "7d",
		Duration(36 * time.Hour):          "36h0m0s",
		Duration(1500 * time.Millisecond): "1.5s",
	} {
		if got := d.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int64(d), got, want)
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", d.String(), back, err, d)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"64MiB", 64 << 20, true},
		{"64mib", 64 << 20, true},
		{"512KiB", 512 << 10, true},
		{"1GB", 1_000_000_000, true},
		{"1 GiB", 1 << 30, true},
		{"1.5GiB", 3 << 29, true},
		{"2k", 2048, true},
		{"100B", 100, true},
		{"1TiB", 1 << 40, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"-1MiB", 0, false},
		{"64MiBs", 0, false},
		{"512MB B", 0, false},
		{"0.1B", 0, false},       // not whole bytes
		{"9000000TiB", 0, false}, // overflows int64
		{"1..5MiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if tt.ok != (err == nil) || int64(got) != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidValue) {
			t.Errorf("ParseByteSize(%q) error does not wrap ErrInvalidValue: %v", tt.in, err)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for b, want := range map[ByteSize]string{
		0:             "0",
		1500:          "1500",
		64 << 20:      "64MiB",
		1_000_000_000: "1GB",
		3 << 29:       "1536MiB",
		1 << 40:       "1TiB",
	} {
		if got := b.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int64(b), got, want)
		}
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", b.String(), back, err, b)
		}
	}
	if got := ByteSize(1 << 20).Int(); got != 1<<20 {
		t.Errorf("Int() = %d", got)
	}
}

// The types also work with plain yaml.v3 decoding and encoding.
func TestUnitsWithPlainYAML(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
		B ByteSize `yaml:"b"`
	}
	if err := yaml.Unmarshal([]byte("d: 7d\nb: 64MiB\n"), &v); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if v.D.Std() != 7*24*time.Hour || v.B != 64<<20 {
		t.Errorf("got %v %d", v.D, v.B)
	}
	out, err := yaml.Marshal(v)
	if err != nil || string(out) != "d: 7d\nb: 64MiB\n" {
		t.Errorf("Marshal = %q, %v", out, err)
	}
	for _, bad := range []string{"d: [1]\n", "b: {x: 1}\n", "d: soon\n", "b: lots\n"} {
		if err := yaml.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("Unmarshal(%q) succeeded", bad)
		}
	}
}
