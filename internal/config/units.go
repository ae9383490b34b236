package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrInvalidValue is wrapped by every error about a value that does not
// parse or is out of range.
var ErrInvalidValue = errors.New("invalid value")

// ParseDuration parses a Go duration ("30s", "1h30m", "250ms") that may also
// use a "d" unit of 24 hours ("7d", "1d12h", "1.5d"). A bare number other
// than "0" is rejected because its unit would be a guess.
func ParseDuration(s string) (Duration, error) {
	in := strings.TrimSpace(s)
	bad := func() (Duration, error) {
		return 0, fmt.Errorf("%w: invalid duration %q (want a number with a unit: 500ms, 30s, 5m, 24h, 7d)", ErrInvalidValue, s)
	}
	if in == "" {
		return bad()
	}
	if in == "0" {
		return 0, nil
	}
	neg := false
	switch in[0] {
	case '-':
		neg = true
		in = in[1:]
	case '+':
		in = in[1:]
	}
	if in == "" {
		return bad()
	}
	var total time.Duration
	for in != "" {
		// number
		i := 0
		for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
			i++
		}
		if i == 0 {
			return bad()
		}
		num := in[:i]
		in = in[i:]
		// unit
		j := 0
		for j < len(in) && !(in[j] >= '0' && in[j] <= '9' || in[j] == '.') {
			j++
		}
		if j == 0 {
			return bad()
		}
		unit := in[:j]
		in = in[j:]
		var part time.Duration
		if unit == "d" {
			h, err := time.ParseDuration(num + "h")
			if err != nil || h > math.MaxInt64/24 {
				return bad()
			}
			part = h * 24
		} else {
			d, err := time.ParseDuration(num + unit)
			if err != nil {
				return bad()
			}
			part = d
		}
		if total > math.MaxInt64-part {
			return bad()
		}
		total += part
	}
	if neg {
		total = -total
	}
	return Duration(total), nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String renders d as a config value: whole days as "7d", everything else
// the way time.Duration prints it ("30s", "1h30m0s").
func (d Duration) String() string {
	const day = 24 * time.Hour
	td := time.Duration(d)
	if td != 0 && td%day == 0 {
		return strconv.FormatInt(int64(td/day), 10) + "d"
	}
	return td.String()
}

// UnmarshalYAML reads a duration scalar such as "30s" or "7d".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%w: a duration must be a scalar such as 30s", ErrInvalidValue)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes d as its String form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// byteUnits maps a lower-cased unit to its multiplier.
var byteUnits = map[string]int64{
	"":    1,
	"b":   1,
	"k":   1 << 10,
	"kb":  1000,
	"kib": 1 << 10,
	"m":   1 << 20,
	"mb":  1000 * 1000,
	"mib": 1 << 20,
	"g":   1 << 30,
	"gb":  1000 * 1000 * 1000,
	"gib": 1 << 30,
	"t":   1 << 40,
	"tb":  1000 * 1000 * 1000 * 1000,
	"tib": 1 << 40,
}

// ParseByteSize parses a byte count: a plain integer (bytes) or a number
// with a unit, decimal (KB, MB, GB, TB = powers of 1000) or binary (KiB,
// MiB, GiB, TiB and the shorthands K, M, G, T = powers of 1024). Units are
// case-insensitive; "1.5GiB" is allowed when it is a whole number of bytes.
func ParseByteSize(s string) (ByteSize, error) {
	in := strings.TrimSpace(s)
	bad := func(why string) (ByteSize, error) {
		return 0, fmt.Errorf("%w: invalid size %q (%s)", ErrInvalidValue, s, why)
	}
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, unit := in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	if num == "" {
		if strings.HasPrefix(in, "-") {
			return bad("must not be negative")
		}
		return bad("want bytes or a number with a unit: 512KiB, 64MiB, 1GB")
	}
	mult, ok := byteUnits[unit]
	if !ok {
		return bad("unknown unit; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB")
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return bad("want bytes or a number with a unit: 512KiB, 64MiB, 1GB")
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return bad("not a whole number of bytes")
	}
	if !r.Num().IsInt64() {
		return bad("too large")
	}
	return ByteSize(r.Num().Int64()), nil
}

// Int returns b as an int, saturating at the largest int.
func (b ByteSize) Int() int {
	if int64(b) > int64(math.MaxInt) {
		return math.MaxInt
	}
	return int(b)
}

// String renders b with the largest unit that divides it exactly, binary
// first ("64MiB", "1GB", "1500").
func (b ByteSize) String() string {
	n := int64(b)
	if n != 0 {
		for _, u := range []struct {
			name string
			mult int64
		}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
			{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
			if n%u.mult == 0 {
				return strconv.FormatInt(n/u.mult, 10) + u.name
			}
		}
	}
	return strconv.FormatInt(n, 10)
}

// UnmarshalYAML reads a size scalar such as 1048576 or "64MiB".
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%w: a size must be a scalar such as 64MiB", ErrInvalidValue)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalYAML writes b as its String form.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }
