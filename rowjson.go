package streamd

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendRowJSON appends row of b as a JSON object keyed by column name, in
// schema order, to dst. It is the dead-letter `raw` of rows rejected after
// decoding. Nulls render as null; decimals as JSON numbers with exactly
// their scale's digits ("19.90"); dates as "YYYY-MM-DD"; timestamps as
// RFC 3339 with microseconds in UTC ("2026-03-14T10:11:12.123000Z"); json
// columns inline (null when empty); binary as standard base64; float64 NaN
// and ±Inf, which JSON cannot hold, as the strings "NaN", "+Inf", "-Inf".
func AppendRowJSON(dst []byte, b *Batch, row int) []byte {
	dst = append(dst, '{')
	for ci := range b.Cols {
		if ci > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, b.Schema.Fields[ci].Name)
		dst = append(dst, ':')
		dst = appendValueJSON(dst, &b.Cols[ci], row)
	}
	return append(dst, '}')
}

func appendValueJSON(dst []byte, c *Column, i int) []byte {
	if !c.Valid[i] {
		return append(dst, "null"...)
	}
	switch c.Type.Kind {
	case KindString:
		return AppendJSONString(dst, string(c.Bytes.At(i)))
	case KindBool:
		return strconv.AppendBool(dst, c.Bool[i])
	case KindInt32:
		return strconv.AppendInt(dst, int64(c.Int32[i]), 10)
	case KindInt64:
		return strconv.AppendInt(dst, c.Int64[i], 10)
	case KindFloat64:
		f := c.Float64[i]
		switch {
		case math.IsNaN(f):
			return append(dst, `"NaN"`...)
		case math.IsInf(f, 1):
			return append(dst, `"+Inf"`...)
		case math.IsInf(f, -1):
			return append(dst, `"-Inf"`...)
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	case KindDecimal:
		if c.Type.Wide() {
			return AppendDecimalWide(dst, c.Bytes.At(i), int(c.Type.Scale))
		}
		return AppendDecimal(dst, c.Int64[i], int(c.Type.Scale))
	case KindDate:
		dst = append(dst, '"')
		dst = time.Unix(int64(c.Int32[i])*86400, 0).UTC().AppendFormat(dst, time.DateOnly)
		return append(dst, '"')
	case KindTimestamp:
		dst = append(dst, '"')
		dst = time.UnixMicro(c.Int64[i]).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
		return append(dst, '"')
	case KindJSON:
		v := c.Bytes.At(i)
		if len(v) == 0 {
			return append(dst, "null"...)
		}
		return append(dst, v...)
	case KindBinary:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, c.Bytes.At(i))
		return append(dst, '"')
	}
	return append(dst, "null"...)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a quoted JSON string to dst, escaping
// quotes, backslashes and control characters, and replacing invalid UTF-8
// with U+FFFD.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
