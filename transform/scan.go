package transform

import (
	"encoding/binary"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// kind is the syntactic kind of an input value.
type kind uint8

const (
	kNone   kind = iota // field absent
	kNull               // JSON null
	kString             // JSON string or CSV field (text is its content)
	kNumber             // JSON number
	kTrue               // JSON true
	kFalse              // JSON false
	kObject             // JSON object (text is its raw JSON)
	kArray              // JSON array (text is its raw JSON)
)

// token is one input value located in the record's bytes.
type token struct {
	kind kind
	// esc marks a JSON string with escapes (text must be unescaped) or a
	// CSV field with doubled quotes.
	esc bool
	// quoted marks a CSV field that was quoted.
	quoted     bool
	start, end int32
}

// fieldNode maps the keys of one JSON object level to the columns they feed
// and to the nested fields of the value.
type fieldNode struct {
	cols []int
	sub  *fieldLevel
}

// fieldLevel is the set of keys wanted at one object level. Lookups try the
// key after the previous match first, since records of a lane usually
// repeat their key order, and fall back to a scan of all keys.
type fieldLevel struct {
	keys  []string
	nodes []*fieldNode
}

// node returns the node for key, adding it if absent.
func (l *fieldLevel) node(key string) *fieldNode {
	for i, k := range l.keys {
		if k == key {
			return l.nodes[i]
		}
	}
	n := &fieldNode{}
	l.keys = append(l.keys, key)
	l.nodes = append(l.nodes, n)
	return n
}

// find looks key up starting at *hint and leaves *hint after the match.
func (l *fieldLevel) find(key []byte, hint *int) *fieldNode {
	n := len(l.keys)
	h := *hint
	for k := 0; k < n; k++ {
		i := h + k
		if i >= n {
			i -= n
		}
		if l.keys[i] == string(key) {
			*hint = i + 1
			return l.nodes[i]
		}
	}
	return nil
}

const maxDepth = 512

// jsonScanner validates one JSON line and records the tokens of the fields
// the program needs.
type jsonScanner struct {
	data  []byte
	pos   int
	toks  []token
	err   string
	keyBf []byte
	// unknown is set when the record's top-level object has a non-null
	// value under a key the program does not read (schema evolution looks
	// for it).
	unknown bool
	// onTop, when set, is called with every top-level key (unescaped,
	// valid during the call) and value. Only for a root that reads no
	// nested fields: a nested object's keys reuse the unescape buffer.
	onTop func(key []byte, t token)
}

func (s *jsonScanner) fail(msg string) bool {
	if s.err == "" {
		s.err = "malformed JSON at byte " + strconv.Itoa(s.pos) + ": " + msg
	}
	return false
}

func (s *jsonScanner) unexpected(what string) bool {
	if s.pos >= len(s.data) {
		return s.fail("unexpected end of input, want " + what)
	}
	return s.fail("unexpected " + strconv.QuoteRune(rune(s.data[s.pos])) + ", want " + what)
}

func (s *jsonScanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// scanRecord scans a whole line that must hold one JSON object.
func (s *jsonScanner) scanRecord(root *fieldLevel) bool {
	s.pos = 0
	s.err = ""
	s.unknown = false
	s.ws()
	if s.pos >= len(s.data) {
		return s.fail("empty record")
	}
	if s.data[s.pos] != '{' {
		return s.unexpected("'{' (a record must be a JSON object)")
	}
	if !s.object(root, 0) {
		return false
	}
	s.ws()
	if s.pos != len(s.data) {
		return s.unexpected("end of record after the object")
	}
	return true
}

// object scans an object at s.pos ('{'); fields found in node are recorded.
func (s *jsonScanner) object(node *fieldLevel, depth int) bool {
	if depth > maxDepth {
		return s.fail("nesting too deep")
	}
	s.pos++ // '{'
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return true
	}
	hint := 0
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.unexpected("'\"' starting an object key")
		}
		ks, ke, esc, ok := s.str()
		if !ok {
			return false
		}
		var f *fieldNode
		var key []byte
		if node != nil {
			key = s.data[ks:ke]
			if esc {
				s.keyBf, ok = unescape(s.keyBf[:0], key)
				if !ok {
					return s.fail("invalid escape in object key")
				}
				key = s.keyBf
			}
			f = node.find(key, &hint)
		}
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.unexpected("':' after object key")
		}
		s.pos++
		s.ws()
		var t token
		if f != nil && f.sub != nil && s.pos < len(s.data) && s.data[s.pos] == '{' {
			start := s.pos
			if !s.object(f.sub, depth+1) {
				return false
			}
			t = token{kind: kObject, start: int32(start), end: int32(s.pos)}
		} else if !s.value(&t, depth+1) {
			return false
		}
		if f != nil {
			for _, c := range f.cols {
				s.toks[c] = t
			}
		} else if depth == 0 && t.kind != kNull {
			s.unknown = true
		}
		if depth == 0 && s.onTop != nil {
			s.onTop(key, t)
		}
		s.ws()
		if s.pos >= len(s.data) {
			return s.unexpected("',' or '}' in object")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.ws()
		case '}':
			s.pos++
			return true
		default:
			return s.unexpected("',' or '}' in object")
		}
	}
}

func (s *jsonScanner) array(depth int) bool {
	if depth > maxDepth {
		return s.fail("nesting too deep")
	}
	s.pos++ // '['
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return true
	}
	var t token
	for {
		if !s.value(&t, depth+1) {
			return false
		}
		s.ws()
		if s.pos >= len(s.data) {
			return s.unexpected("',' or ']' in array")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.ws()
		case ']':
			s.pos++
			return true
		default:
			return s.unexpected("',' or ']' in array")
		}
	}
}

// value scans any JSON value at s.pos into t.
func (s *jsonScanner) value(t *token, depth int) bool {
	if s.pos >= len(s.data) {
		return s.unexpected("a value")
	}
	start := s.pos
	switch c := s.data[s.pos]; {
	case c == '"':
		cs, ce, esc, ok := s.str()
		if !ok {
			return false
		}
		*t = token{kind: kString, esc: esc, start: int32(cs), end: int32(ce)}
		return true
	case c == '-' || (c >= '0' && c <= '9'):
		if !s.number() {
			return false
		}
		*t = token{kind: kNumber, start: int32(start), end: int32(s.pos)}
		return true
	case c == '{':
		if !s.object(nil, depth) {
			return false
		}
		*t = token{kind: kObject, start: int32(start), end: int32(s.pos)}
		return true
	case c == '[':
		if !s.array(depth) {
			return false
		}
		*t = token{kind: kArray, start: int32(start), end: int32(s.pos)}
		return true
	case c == 't':
		return s.literal("true", kTrue, t)
	case c == 'f':
		return s.literal("false", kFalse, t)
	case c == 'n':
		return s.literal("null", kNull, t)
	}
	return s.unexpected("a value")
}

func (s *jsonScanner) literal(lit string, k kind, t *token) bool {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return s.unexpected(lit)
	}
	*t = token{kind: k, start: int32(s.pos), end: int32(s.pos + len(lit))}
	s.pos += len(lit)
	return true
}

// str scans a string at s.pos ('"') and returns its content span.
func (s *jsonScanner) str() (start, end int, esc, ok bool) {
	s.pos++
	start = s.pos
	d := s.data
	i := s.pos
	for {
		for i+8 <= len(d) {
			x := binary.LittleEndian.Uint64(d[i:])
			if hasSpecial(x) {
				break
			}
			i += 8
		}
		for i < len(d) && d[i] != '"' && d[i] != '\\' && d[i] >= 0x20 {
			i++
		}
		if i >= len(d) {
			s.pos = i
			return 0, 0, false, s.fail("unterminated string")
		}
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			return start, i, esc, true
		case c == '\\':
			esc = true
			if i+1 >= len(d) {
				s.pos = i
				return 0, 0, false, s.fail("unterminated string")
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex4(d[i+2:i+6]) {
					s.pos = i
					return 0, 0, false, s.fail(`invalid \u escape in string`)
				}
				i += 6
			default:
				s.pos = i
				return 0, 0, false, s.fail("invalid escape in string")
			}
		default:
			s.pos = i
			return 0, 0, false, s.fail("control character in string")
		}
	}
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasSpecial reports whether any byte of x is '"', '\\' or below 0x20.
func hasSpecial(x uint64) bool {
	q := x ^ (lsb * '"')
	b := x ^ (lsb * '\\')
	return ((q-lsb)&^q|(b-lsb)&^b|(x-lsb*0x20)&^x)&msb != 0
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// number scans a JSON number at s.pos.
func (s *jsonScanner) number() bool {
	d := s.data
	i := s.pos
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return s.unexpected("a digit")
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			s.pos = i
			return s.unexpected("a digit after '.'")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			s.pos = i
			return s.unexpected("a digit in the exponent")
		}
	}
	s.pos = i
	return true
}

// validJSONValue reports whether b is exactly one JSON value.
func validJSONValue(b []byte) bool {
	s := jsonScanner{data: b}
	var t token
	s.ws()
	if !s.value(&t, 0) {
		return false
	}
	s.ws()
	return s.pos == len(b)
}

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	default:
		return rune(c - 'A' + 10)
	}
}

func hex4(b []byte) rune {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}

// unescape appends the unescaped content of a JSON string (already
// validated by the scanner) to dst. Lone surrogates become U+FFFD.
func unescape(dst, src []byte) ([]byte, bool) {
	for i := 0; i < len(src); {
		c := src[i]
		if c != '\\' {
			j := i + 1
			for j < len(src) && src[j] != '\\' {
				j++
			}
			dst = append(dst, src[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(src) {
			return dst, false
		}
		switch src[i+1] {
		case '"', '\\', '/':
			dst = append(dst, src[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if i+6 > len(src) || !isHex4(src[i+2:]) {
				return dst, false
			}
			r := hex4(src[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(src) && src[i] == '\\' && src[i+1] == 'u' && isHex4(src[i+2:]) {
					if d := utf16.DecodeRune(r, hex4(src[i+2:])); d != utf8.RuneError {
						r2 = d
						i += 6
					}
				}
				r = r2
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, false
		}
		i += 2
	}
	return dst, true
}
