package streamd

import (
	"errors"
	"fmt"
	"math/bits"
)

// ErrDecimalSyntax is wrapped by the decimal parsers for text that is not a
// decimal number.
var ErrDecimalSyntax = errors.New("malformed decimal")

// ErrDecimalRange is wrapped by the decimal parsers for a value that needs
// more digits than the column's precision allows.
var ErrDecimalRange = errors.New("decimal exceeds precision")

// u128 is an unsigned 128-bit magnitude.
type u128 struct{ hi, lo uint64 }

// pow10u128[i] is 10^i for 0 ≤ i ≤ 38.
var pow10u128 = func() (t [39]u128) {
	t[0] = u128{lo: 1}
	for i := 1; i < len(t); i++ {
		t[i] = t[i-1].mul10()
	}
	return t
}()

func (v u128) mul10() u128 {
	h, l := bits.Mul64(v.lo, 10)
	return u128{hi: v.hi*10 + h, lo: l}
}

func (v u128) add64(d uint64) u128 {
	l, c := bits.Add64(v.lo, d, 0)
	return u128{hi: v.hi + c, lo: l}
}

func (v u128) less(w u128) bool { return v.hi < w.hi || (v.hi == w.hi && v.lo < w.lo) }

// neg returns the two's complement of v.
func (v u128) neg() u128 {
	l, c := bits.Sub64(0, v.lo, 0)
	h, _ := bits.Sub64(0, v.hi, c)
	return u128{hi: h, lo: l}
}

// parseDecimal parses text as a decimal and returns its magnitude scaled by
// 10^scale, rounded half-up (away from zero on a tie), and checked to have
// at most prec digits.
func parseDecimal(s []byte, prec, scale int) (neg bool, v u128, err error) {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	intStart := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if i < len(s) && s[i] == '.' {
		i++
		fracStart = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		fracEnd = i
	}
	if intEnd == intStart && fracEnd == fracStart {
		return false, v, ErrDecimalSyntax
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if exp < 1_000_000 {
				exp = exp*10 + int(s[i]-'0')
			}
			i++
		}
		if i == start {
			return false, v, ErrDecimalSyntax
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return false, v, ErrDecimalSyntax
	}
	nInt := intEnd - intStart
	n := nInt + fracEnd - fracStart
	digit := func(k int) byte {
		if k < nInt {
			return s[intStart+k]
		}
		return s[fracStart+k-nInt]
	}
	first := 0
	for first < n && digit(first) == '0' {
		first++
	}
	m := n - first // significant digits, the first one non-zero
	if m == 0 {
		return false, v, nil
	}
	// value·10^scale = D·10^shift where D is the m significant digits.
	shift := exp - (fracEnd - fracStart) + scale
	keep := m
	roundUp := false
	if shift < 0 {
		keep = m + shift
		switch {
		case keep < 0:
			keep = 0
		case keep < m:
			roundUp = digit(first+keep) >= '5'
		}
		shift = 0
	}
	if keep > 0 && keep+shift > prec {
		return false, v, ErrDecimalRange
	}
	for k := 0; k < keep; k++ {
		v = v.mul10().add64(uint64(digit(first+k) - '0'))
	}
	if keep > 0 {
		for k := 0; k < shift; k++ {
			v = v.mul10()
		}
	}
	if roundUp {
		v = v.add64(1)
		if !v.less(pow10u128[prec]) {
			return false, v, ErrDecimalRange
		}
	}
	if v == (u128{}) {
		neg = false
	}
	return neg, v, nil
}

func checkDecimalType(t Type) error {
	if t.Kind != KindDecimal || t.Precision < 1 || t.Precision > MaxDecimalPrecision || t.Scale > t.Precision {
		return fmt.Errorf("parse decimal: %v is not a valid decimal type", t)
	}
	return nil
}

// ParseDecimal parses a decimal number — "12.3", "-0.5", "+7", ".25", "1e3",
// "1.5E-2", the text of a JSON number or of a JSON string holding one,
// surrounding blanks ignored — into the unscaled int64 value of a narrow
// decimal type t (precision ≤ 18): the value times 10^scale, rounded half-up
// (ties away from zero). It fails with ErrDecimalSyntax for other text and
// with ErrDecimalRange when the rounded value needs more than t.Precision
// digits.
func ParseDecimal(s []byte, t Type) (int64, error) {
	if err := checkDecimalType(t); err != nil {
		return 0, err
	}
	if t.Wide() {
		return 0, fmt.Errorf("parse decimal: %v is wide, use ParseDecimalWide", t)
	}
	neg, v, err := parseDecimal(s, int(t.Precision), int(t.Scale))
	if err != nil {
		return 0, err
	}
	if neg {
		return -int64(v.lo), nil
	}
	return int64(v.lo), nil
}

// ParseDecimalWide is ParseDecimal for any decimal type; it returns the
// unscaled value as 16 bytes of big-endian two's complement, the storage of
// wide (precision > 18) decimal columns.
func ParseDecimalWide(s []byte, t Type) ([16]byte, error) {
	if err := checkDecimalType(t); err != nil {
		return [16]byte{}, err
	}
	neg, v, err := parseDecimal(s, int(t.Precision), int(t.Scale))
	if err != nil {
		return [16]byte{}, err
	}
	if neg {
		v = v.neg()
	}
	return putU128(v), nil
}

func putU128(v u128) (b [16]byte) {
	for i := 0; i < 8; i++ {
		b[7-i] = byte(v.hi >> (8 * i))
		b[15-i] = byte(v.lo >> (8 * i))
	}
	return b
}

func getU128(b []byte) (v u128) {
	for i := 0; i < 8; i++ {
		v.hi = v.hi<<8 | uint64(b[i])
		v.lo = v.lo<<8 | uint64(b[8+i])
	}
	return v
}

// WideFromInt64 converts an unscaled int64 to the 16-byte big-endian two's
// complement form of wide decimals.
func WideFromInt64(v int64) [16]byte {
	u := u128{lo: uint64(v)}
	if v < 0 {
		u.hi = ^uint64(0)
	}
	return putU128(u)
}

// Int64FromWide converts a 16-byte big-endian two's complement unscaled
// value to int64; ok is false when it does not fit.
func Int64FromWide(b []byte) (v int64, ok bool) {
	if len(b) != 16 {
		return 0, false
	}
	u := getU128(b)
	lo := int64(u.lo)
	if (lo < 0 && u.hi == ^uint64(0)) || (lo >= 0 && u.hi == 0) {
		return lo, true
	}
	return 0, false
}

// AppendDecimal appends the text of an unscaled decimal value with the given
// scale ("-12.30" for -1230 at scale 2) to dst. The text is a valid JSON
// number and parses back exactly.
func AppendDecimal(dst []byte, unscaled int64, scale int) []byte {
	neg := unscaled < 0
	mag := uint64(unscaled)
	if neg {
		mag = -mag
	}
	return appendDecimalMag(dst, neg, u128{lo: mag}, scale)
}

// AppendDecimalWide appends the text of a 16-byte big-endian two's
// complement unscaled decimal value with the given scale to dst. A value of
// the wrong length renders as "null".
func AppendDecimalWide(dst []byte, be []byte, scale int) []byte {
	if len(be) != 16 {
		return append(dst, "null"...)
	}
	v := getU128(be)
	neg := int64(v.hi) < 0
	if neg {
		v = v.neg()
	}
	return appendDecimalMag(dst, neg, v, scale)
}

// FormatDecimal returns the text of an unscaled decimal value with the given scale.
func FormatDecimal(unscaled int64, scale int) string {
	var buf [48]byte
	return string(AppendDecimal(buf[:0], unscaled, scale))
}

func appendDecimalMag(dst []byte, neg bool, v u128, scale int) []byte {
	// Render the magnitude's digits, least significant first, 19 at a time.
	var digits [48]byte
	n := 0
	const chunk = 1e19
	for {
		qhi := v.hi / chunk
		rhi := v.hi % chunk
		qlo, rem := bits.Div64(rhi, v.lo, chunk)
		v = u128{hi: qhi, lo: qlo}
		last := v == (u128{})
		for k := 0; k < 19; k++ {
			digits[n] = byte('0' + rem%10)
			rem /= 10
			n++
			if last && rem == 0 {
				break
			}
		}
		if last {
			break
		}
	}
	for n > 1 && digits[n-1] == '0' {
		n--
	}
	for n <= scale {
		digits[n] = '0'
		n++
	}
	if neg {
		dst = append(dst, '-')
	}
	for k := n - 1; k >= 0; k-- {
		if k == scale-1 {
			dst = append(dst, '.')
		}
		dst = append(dst, digits[k])
	}
	return dst
}
