package telemetry

import "testing"

func TestParseTHPMode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"always [madvise] never\n", "madvise"},
		{"[always] madvise never", "always"},
		{"always madvise [never]", "never"},
		{"", ""},
		{"always madvise never", ""},
		{"[] x", ""},
	}
	for _, tt := range tests {
		if got := parseTHPMode(tt.in); got != tt.want {
			t.Errorf("parseTHPMode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
