package parquet

import (
	"math/big"
	"strconv"
	"time"

	"github.com/streamd/streamd"
)

// DefaultPartition is the Hive partition value of a null or empty value.
const DefaultPartition = "__HIVE_DEFAULT_PARTITION__"

// hiveEscape reports whether Hive and Spark escape byte c in a partition
// path segment (FileUtils.escapePathName / ExternalCatalogUtils).
func hiveEscape(c byte) bool {
	if c < 0x20 || c == 0x7F {
		return true
	}
	switch c {
	case '"', '#', '%', '\'', '*', '/', ':', '=', '?', '\\', '{', '[', ']', '^':
		return true
	}
	return false
}

// appendEscaped appends v to dst, escaping like Hive: %XX, upper-case hex.
func appendEscaped(dst []byte, v []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range v {
		if hiveEscape(c) {
			dst = append(dst, '%', hex[c>>4], hex[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// EscapePathValue escapes a partition column name or value for a Hive path
// segment the way Hive and Spark do; the empty string becomes
// DefaultPartition.
func EscapePathValue(v string) string {
	if v == "" {
		return DefaultPartition
	}
	return string(appendEscaped(nil, []byte(v)))
}

// partitionable reports whether a column of type t can partition output.
func partitionable(t streamd.Type) bool {
	return t.Kind != streamd.KindBinary && streamd.StorageOf(t) != streamd.StoreNone
}

// appendPartitionValue appends the escaped Hive rendering of row r of c to
// dst, scratch is a reusable buffer.
func appendPartitionValue(dst, scratch []byte, c *streamd.Column, r int) ([]byte, []byte) {
	if !c.Valid[r] {
		return append(dst, DefaultPartition...), scratch
	}
	t := c.Type
	scratch = scratch[:0]
	switch t.Kind {
	case streamd.KindString, streamd.KindJSON:
		v := c.Bytes.At(r)
		if len(v) == 0 {
			return append(dst, DefaultPartition...), scratch
		}
		return appendEscaped(dst, v), scratch
	case streamd.KindBool:
		scratch = strconv.AppendBool(scratch, c.Bool[r])
	case streamd.KindInt32:
		scratch = strconv.AppendInt(scratch, int64(c.Int32[r]), 10)
	case streamd.KindInt64:
		scratch = strconv.AppendInt(scratch, c.Int64[r], 10)
	case streamd.KindFloat64:
		scratch = strconv.AppendFloat(scratch, c.Float64[r], 'f', -1, 64)
	case streamd.KindDate:
		scratch = time.Unix(int64(c.Int32[r])*86400, 0).UTC().AppendFormat(scratch, time.DateOnly)
	case streamd.KindTimestamp:
		scratch = time.UnixMicro(c.Int64[r]).UTC().AppendFormat(scratch, "2006-01-02 15:04:05.999999")
	case streamd.KindDecimal:
		var unscaled *big.Int
		if t.Wide() {
			unscaled = wideToBig(c.Bytes.At(r))
		} else {
			unscaled = big.NewInt(c.Int64[r])
		}
		scratch = appendDecimal(scratch, unscaled, int(t.Scale))
	}
	return appendEscaped(dst, scratch), scratch
}

// wideToBig decodes a big-endian two's-complement integer.
func wideToBig(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

// appendDecimal appends unscaled·10^-scale in plain decimal notation.
func appendDecimal(dst []byte, unscaled *big.Int, scale int) []byte {
	neg := unscaled.Sign() < 0
	digits := new(big.Int).Abs(unscaled).String()
	if neg {
		dst = append(dst, '-')
	}
	if scale == 0 {
		return append(dst, digits...)
	}
	for len(digits) <= scale {
		digits = "0" + digits
	}
	dst = append(dst, digits[:len(digits)-scale]...)
	dst = append(dst, '.')
	return append(dst, digits[len(digits)-scale:]...)
}
