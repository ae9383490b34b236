package transform

import (
	"encoding/base64"
	"math"
	"strconv"
	"unsafe"

	"github.com/streamd/streamd"
)

// Epoch-number thresholds for timestamps: a number whose magnitude is below
// 1e11 is seconds, below 1e14 milliseconds, otherwise microseconds.
const (
	epochSecondsBelow = 1e11
	epochMillisBelow  = 1e14
)

var (
	dec18s0 = streamd.Type{Kind: streamd.KindDecimal, Precision: 18, Scale: 0}
	dec18s3 = streamd.Type{Kind: streamd.KindDecimal, Precision: 18, Scale: 3}
	dec18s6 = streamd.Type{Kind: streamd.KindDecimal, Precision: 18, Scale: 6}
	dec38s9 = streamd.Type{Kind: streamd.KindDecimal, Precision: 38, Scale: 9}
)

// bstr views b as a string without copying; the string must not outlive a
// change to b.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// castFailure renders "cannot cast VALUE to TYPE".
func castFailure(t token, text []byte, typ streamd.Type, why string) string {
	const maxShown = 64
	shown := text
	cut := len(shown) > maxShown
	if cut {
		shown = shown[:maxShown]
	}
	var v string
	if t.kind == kString {
		v = strconv.Quote(string(shown))
	} else {
		v = string(shown)
	}
	if cut {
		v += "..."
	}
	msg := "cannot cast " + v + " to " + typ.String()
	if why != "" {
		msg += ": " + why
	}
	return msg
}

// kindName names a JSON value kind in messages.
func kindName(k kind) string {
	switch k {
	case kString:
		return "string"
	case kNumber:
		return "number"
	case kTrue, kFalse:
		return "boolean"
	case kObject:
		return "object"
	case kArray:
		return "array"
	}
	return "null"
}

// cast appends the value of t to c, converting it to c's type. data holds
// the record (JSON) or the unquoted CSV fields; csv tells which. It returns
// "" or the reason the value cannot be cast (nothing is appended then).
func (w *worker) cast(c *streamd.Column, t token, data []byte, csv bool) string {
	if t.kind == kNone || t.kind == kNull {
		c.AppendNull()
		return ""
	}
	text := data[t.start:t.end]
	typ := c.Type
	if t.kind == kString && typ.Kind == streamd.KindString {
		if t.esc {
			if len(c.Bytes.Offs) == 0 {
				c.Bytes.Offs = append(c.Bytes.Offs, 0)
			}
			c.Bytes.Data, _ = unescape(c.Bytes.Data, text)
			c.Bytes.Offs = append(c.Bytes.Offs, len(c.Bytes.Data))
			c.Valid = append(c.Valid, true)
			return ""
		}
		c.AppendBytes(text)
		return ""
	}
	if t.kind == kString && t.esc {
		w.esc, _ = unescape(w.esc[:0], text)
		text = w.esc
	}
	switch typ.Kind {
	case streamd.KindString:
		// Numbers, booleans and nested values keep their JSON text.
		c.AppendBytes(text)
		return ""
	case streamd.KindInt32, streamd.KindInt64:
		if t.kind != kString && t.kind != kNumber {
			return castFailure(t, text, typ, "want a number, got "+kindName(t.kind))
		}
		v, why := parseInt(text)
		if why == "" && typ.Kind == streamd.KindInt32 && (v < math.MinInt32 || v > math.MaxInt32) {
			why = "out of range"
		}
		if why != "" {
			return castFailure(t, text, typ, why)
		}
		if typ.Kind == streamd.KindInt32 {
			c.AppendInt32(int32(v))
		} else {
			c.AppendInt64(v)
		}
		return ""
	case streamd.KindFloat64:
		if t.kind != kString && t.kind != kNumber {
			return castFailure(t, text, typ, "want a number, got "+kindName(t.kind))
		}
		f, err := strconv.ParseFloat(bstr(trimBlank(text)), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return castFailure(t, text, typ, "")
		}
		c.AppendFloat64(f)
		return ""
	case streamd.KindDecimal:
		if t.kind != kString && t.kind != kNumber {
			return castFailure(t, text, typ, "want a number, got "+kindName(t.kind))
		}
		if typ.Wide() {
			v, err := streamd.ParseDecimalWide(text, typ)
			if err != nil {
				return castFailure(t, text, typ, err.Error())
			}
			c.AppendBytes(v[:])
			return ""
		}
		v, err := streamd.ParseDecimal(text, typ)
		if err != nil {
			return castFailure(t, text, typ, err.Error())
		}
		c.AppendInt64(v)
		return ""
	case streamd.KindBool:
		switch t.kind {
		case kTrue:
			c.AppendBool(true)
			return ""
		case kFalse:
			c.AppendBool(false)
			return ""
		case kString, kNumber:
			switch s := trimBlank(text); {
			case string(s) == "1" || equalFold(s, "true"):
				c.AppendBool(true)
				return ""
			case string(s) == "0" || equalFold(s, "false"):
				c.AppendBool(false)
				return ""
			}
		}
		return castFailure(t, text, typ, "want true, false, 0 or 1")
	case streamd.KindDate:
		if t.kind != kString {
			return castFailure(t, text, typ, "want a YYYY-MM-DD or RFC 3339 string, got "+kindName(t.kind))
		}
		d, ok := parseDate(trimBlank(text))
		if !ok {
			return castFailure(t, text, typ, "want YYYY-MM-DD or RFC 3339")
		}
		c.AppendInt32(d)
		return ""
	case streamd.KindTimestamp:
		var us int64
		var ok bool
		switch t.kind {
		case kString:
			s := trimBlank(text)
			if us, ok = parseTimestamp(s); !ok {
				us, ok = parseEpoch(s)
			}
		case kNumber:
			us, ok = parseEpoch(text)
		}
		if !ok {
			return castFailure(t, text, typ, "want RFC 3339 text or epoch seconds/milliseconds/microseconds")
		}
		c.AppendInt64(us)
		return ""
	case streamd.KindJSON:
		switch {
		case t.kind == kString && !csv:
			c.AppendBytes(data[t.start-1 : t.end+1]) // with its quotes
		case t.kind == kString && !validJSONValue(text):
			return castFailure(t, text, typ, "not valid JSON")
		default:
			c.AppendBytes(text)
		}
		return ""
	case streamd.KindBinary:
		if t.kind != kString {
			return castFailure(t, text, typ, "want a base64 string, got "+kindName(t.kind))
		}
		if len(c.Bytes.Offs) == 0 {
			c.Bytes.Offs = append(c.Bytes.Offs, 0)
		}
		n := len(c.Bytes.Data)
		out, err := base64.StdEncoding.AppendDecode(c.Bytes.Data, text)
		if err != nil {
			c.Bytes.Data = c.Bytes.Data[:n]
			return castFailure(t, text, typ, "invalid base64")
		}
		c.Bytes.Data = out
		c.Bytes.Offs = append(c.Bytes.Offs, len(out))
		c.Valid = append(c.Valid, true)
		return ""
	}
	return castFailure(t, text, typ, "unsupported column type")
}

func trimBlank(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// parseInt parses an integer; "3.0" and "1e3" are accepted when the value is
// integral. It returns the value or why it is not an int64.
func parseInt(b []byte) (int64, string) {
	b = trimBlank(b)
	i := 0
	neg := false
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	if i == len(b) {
		return 0, "not a number"
	}
	var u uint64
	j := i
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		if u > (math.MaxUint64-9)/10 {
			return 0, "out of range"
		}
		u = u*10 + uint64(b[j]-'0')
	}
	if j == len(b) {
		if neg {
			if u > 1<<63 {
				return 0, "out of range"
			}
			return -int64(u), ""
		}
		if u > math.MaxInt64 {
			return 0, "out of range"
		}
		return int64(u), ""
	}
	// A fraction or exponent: accept only an integral value.
	w, err := streamd.ParseDecimalWide(b, dec38s9)
	if err != nil {
		if err == streamd.ErrDecimalRange {
			return 0, "out of range"
		}
		return 0, "not a number"
	}
	txt := streamd.AppendDecimalWide(nil, w[:], 9)
	frac := txt[len(txt)-9:]
	for _, c := range frac {
		if c != '0' {
			return 0, "not an integer"
		}
	}
	v, err := strconv.ParseInt(string(txt[:len(txt)-10]), 10, 64)
	if err != nil {
		return 0, "out of range"
	}
	return v, ""
}

// parseEpoch reads a number of epoch seconds (|n| < 1e11), milliseconds
// (|n| < 1e14) or microseconds, fractions allowed, as µs (rounded half-up).
func parseEpoch(b []byte) (int64, bool) {
	if v, err := streamd.ParseDecimal(b, dec18s6); err == nil && v > -epochSecondsBelow*1e6 && v < epochSecondsBelow*1e6 {
		return v, true
	}
	if v, err := streamd.ParseDecimal(b, dec18s3); err == nil && v > -epochMillisBelow*1e3 && v < epochMillisBelow*1e3 {
		return v, true
	}
	if v, err := streamd.ParseDecimal(b, dec18s0); err == nil {
		return v, true
	}
	return 0, false
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns days since 1970-01-01 for a proleptic Gregorian date.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := m + 9
	if m > 2 {
		mp = m - 3
	}
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

func num2(b []byte) (int, bool) {
	if b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

// parseYMD parses YYYY-MM-DD at the start of b into days since the epoch.
func parseYMD(b []byte) (int64, bool) {
	if len(b) < 10 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	y1, ok1 := num2(b[0:2])
	y2, ok2 := num2(b[2:4])
	m, ok3 := num2(b[5:7])
	d, ok4 := num2(b[8:10])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return 0, false
	}
	y := y1*100 + y2
	if m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, false
	}
	return daysFromCivil(y, m, d), true
}

// parseDate parses YYYY-MM-DD, or an RFC 3339 timestamp whose UTC date is taken.
func parseDate(b []byte) (int32, bool) {
	if len(b) == 10 {
		d, ok := parseYMD(b)
		return int32(d), ok
	}
	us, ok := parseTimestamp(b)
	if !ok {
		return 0, false
	}
	d := us / 86_400_000_000
	if us%86_400_000_000 < 0 {
		d--
	}
	return int32(d), true
}

// parseTimestamp parses RFC 3339 ("2026-03-14T10:11:12.123Z", offsets
// ±HH:MM, 'T', 't' or ' ' between date and time, any number of fraction
// digits truncated to µs); a missing offset means UTC and a bare date means
// its midnight UTC. It returns µs since the epoch.
func parseTimestamp(b []byte) (int64, bool) {
	days, ok := parseYMD(b)
	if !ok {
		return 0, false
	}
	if len(b) == 10 {
		return days * 86_400_000_000, true
	}
	if len(b) < 19 || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	hh, ok1 := num2(b[11:13])
	mm, ok2 := num2(b[14:16])
	ss, ok3 := num2(b[17:19])
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 59 {
		return 0, false
	}
	i := 19
	var frac int64
	if i < len(b) && (b[i] == '.' || b[i] == ',') {
		i++
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if n < 6 {
				frac = frac*10 + int64(b[i]-'0')
			}
			n++
			i++
		}
		if n == 0 {
			return 0, false
		}
		for ; n < 6; n++ {
			frac *= 10
		}
	}
	offset := 0
	switch {
	case i == len(b):
	case b[i] == 'Z' || b[i] == 'z':
		i++
	case b[i] == '+' || b[i] == '-':
		if len(b)-i < 6 || b[i+3] != ':' {
			return 0, false
		}
		oh, ok1 := num2(b[i+1 : i+3])
		om, ok2 := num2(b[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = oh*3600 + om*60
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return 0, false
	}
	if i != len(b) {
		return 0, false
	}
	secs := days*86400 + int64(hh*3600+mm*60+ss) - int64(offset)
	return secs*1_000_000 + frac, true
}
