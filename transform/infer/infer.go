package infer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/streamd/streamd"
)

// Nested says how nested JSON objects become columns.
type Nested string

// The ways nested objects are inferred.
const (
	// NestedJSON keeps a nested object as one json column (the default).
	NestedJSON Nested = "json"
	// NestedFlatten makes a column per leaf field, named by joining the
	// path with Options.Separator (a.b → a_b) and read with from: a.b.
	NestedFlatten Nested = "flatten"
)

// Options configures inference.
type Options struct {
	// Format is jsonl (default) or csv.
	Format string
	// Nested is json (default) or flatten. "struct" is refused: the
	// writers have no struct type yet.
	Nested Nested
	// Separator joins the path of a flattened field (default "_").
	Separator string
}

// ErrInfer is wrapped by Infer's errors.
var ErrInfer = errors.New("cannot infer schema")

// Column is one inferred column.
type Column struct {
	// Name is the column name: the field name lower-cased, with characters
	// other than [a-z0-9_] replaced by '_' (what Athena accepts unquoted).
	Name string
	// From is the input field when it differs from Name ("a.b" for a
	// flattened nested field).
	From string
	// Type is the widest type that every sampled value casts to.
	Type streamd.Type
	// Nulls counts the sampled records where the field was missing or null.
	Nulls int
}

// Result is an inferred schema.
type Result struct {
	Columns []Column
	// Records is how many records were sampled; Malformed how many of them
	// could not be parsed and were skipped.
	Records, Malformed int
}

// observed is what the samples of one field showed.
type observed struct {
	name, from string
	seen       int // non-null values
	nulls      int
	// kinds seen
	str, boolean, date, ts, obj, num bool
	// numbers: integral values fit int32 / int64; frac → decimal digits.
	fits32       bool
	fits64       bool
	intDigits    int
	scale        int
	float        bool // exponent form or too many digits for a decimal
	numberString bool // numbers came as strings
}

// Infer samples records (JSON lines, or CSV lines whose header is header)
// and returns the schema they fit.
//
// Type rules: integers widen int32 → int64 → decimal(p,s) (when any value
// has a fraction; p and s cover the widest integer part and scale seen) →
// float64 (exponents, or more than 38 digits); strings holding such
// numbers count as numbers; "YYYY-MM-DD" strings are dates and RFC 3339
// strings ('T' or space, optional offset) timestamps, a mix of both is
// timestamp; true/false are bool; anything else, or a conflict between
// these families, is string. Arrays are json; objects are json or
// flattened (Options.Nested). A field null in every sample is string.
func Infer(records [][]byte, header []byte, opts Options) (*Result, error) {
	if opts.Separator == "" {
		opts.Separator = "_"
	}
	switch opts.Nested {
	case "":
		opts.Nested = NestedJSON
	case NestedJSON, NestedFlatten:
	case "struct":
		return nil, fmt.Errorf("infer: nested %q: the writers have no struct type; use json or flatten: %w", opts.Nested, ErrInfer)
	default:
		return nil, fmt.Errorf("infer: nested %q (want json or flatten): %w", opts.Nested, ErrInfer)
	}
	in := &inferrer{opts: opts, byFrom: map[string]*observed{}}
	res := &Result{}
	var csvNames []string
	if strings.EqualFold(opts.Format, "csv") {
		if len(header) == 0 {
			return nil, fmt.Errorf("infer: csv without a header line: %w", ErrInfer)
		}
		names, ok := splitCSV(header)
		if !ok {
			return nil, fmt.Errorf("infer: malformed csv header %q: %w", header, ErrInfer)
		}
		csvNames = names
		for _, n := range names {
			in.field(n)
		}
	} else if opts.Format != "" && !strings.EqualFold(opts.Format, "jsonl") {
		return nil, fmt.Errorf("infer: format %q (want jsonl or csv): %w", opts.Format, ErrInfer)
	}
	for _, r := range records {
		res.Records++
		var ok bool
		if csvNames != nil {
			ok = in.csvRecord(csvNames, r)
		} else {
			ok = in.jsonRecord(r)
		}
		if !ok {
			res.Malformed++
			continue
		}
		in.rows++
	}
	if in.rows == 0 {
		return nil, fmt.Errorf("infer: none of %d sampled records could be parsed: %w", res.Records, ErrInfer)
	}
	used := map[string]bool{}
	for _, o := range in.order {
		name := o.name
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s_%d", o.name, i)
		}
		used[name] = true
		c := Column{Name: name, Type: o.typ(), Nulls: in.rows - o.seen}
		if o.from != name {
			c.From = o.from
		}
		res.Columns = append(res.Columns, c)
	}
	return res, nil
}

type inferrer struct {
	opts   Options
	byFrom map[string]*observed
	order  []*observed
	rows   int
}

// field returns the observation of the input field at path from.
func (in *inferrer) field(from string) *observed {
	if o := in.byFrom[from]; o != nil {
		return o
	}
	o := &observed{name: columnName(strings.ReplaceAll(from, ".", in.opts.Separator)), from: from, fits32: true, fits64: true}
	in.byFrom[from] = o
	in.order = append(in.order, o)
	return o
}

// columnName lower-cases s and replaces characters Athena does not accept
// in an unquoted column name.
func columnName(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

func (in *inferrer) jsonRecord(r []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(r))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil || t != json.Delim('{') {
		return false
	}
	if !in.object(dec, "") {
		return false
	}
	_, err = dec.Token()
	return err == io.EOF
}

// object reads the members of an object whose '{' was read.
func (in *inferrer) object(dec *json.Decoder, prefix string) bool {
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return false
		}
		key, _ := kt.(string)
		path := key
		if prefix != "" {
			path = prefix + "." + key
		}
		vt, err := dec.Token()
		if err != nil {
			return false
		}
		switch v := vt.(type) {
		case json.Delim:
			if v == '{' && in.opts.Nested == NestedFlatten {
				if !in.object(dec, path) {
					return false
				}
			} else {
				if !skip(dec, v) {
					return false
				}
				in.field(path).observeNested()
			}
			continue
		case nil:
			in.field(path).nulls++
		case bool:
			o := in.field(path)
			o.seen++
			o.boolean = true
		case json.Number:
			in.field(path).observeNumber(string(v), false)
		case string:
			in.field(path).observeString(v)
		}
	}
	_, err := dec.Token() // '}'
	return err == nil
}

// skip reads the rest of a nested value whose opening delimiter was read.
func skip(dec *json.Decoder, open json.Delim) bool {
	depth := 1
	for depth > 0 {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		if d, ok := t.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	_ = open
	return true
}

func (o *observed) observeNested() {
	o.seen++
	o.obj = true
}

func (in *inferrer) csvRecord(names []string, r []byte) bool {
	vals, ok := splitCSV(r)
	if !ok || len(vals) != len(names) {
		return false
	}
	for i, v := range vals {
		o := in.byFrom[names[i]]
		if v == "" {
			o.nulls++
			continue
		}
		o.observeString(v)
	}
	return true
}

func (o *observed) observeString(v string) {
	s := strings.TrimSpace(v)
	switch {
	case s == "":
		o.seen++
		o.str = true
	case isNumber(s):
		o.observeNumber(s, true)
	case strings.EqualFold(s, "true") || strings.EqualFold(s, "false"):
		o.seen++
		o.boolean = true
	case isDate(s):
		o.seen++
		o.date = true
	case isTimestamp(s):
		o.seen++
		o.ts = true
	default:
		o.seen++
		o.str = true
	}
}

func isNumber(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	digits := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '-' || s[i] == '+') {
		if s[i] >= '0' && s[i] <= '9' {
			digits++
		}
		i++
	}
	if i != len(s) || digits == 0 {
		return false
	}
	// A leading zero on a multi-digit integer part ("007", a zip code) is an
	// identifier, not a number.
	t := strings.TrimLeft(s, "+-")
	if len(t) > 1 && t[0] == '0' && t[1] != '.' {
		return false
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && !math.IsInf(f, 0)
}

func (o *observed) observeNumber(s string, fromString bool) {
	o.seen++
	o.num = true
	o.numberString = o.numberString || fromString
	s = strings.TrimLeft(s, "+-")
	if strings.ContainsAny(s, "eE") {
		o.float = true
		return
	}
	intPart, frac, _ := strings.Cut(s, ".")
	intPart = strings.TrimLeft(intPart, "0")
	o.intDigits = max(o.intDigits, len(intPart))
	o.scale = max(o.scale, len(frac))
	if strings.Trim(frac, "0") != "" {
		o.fits32, o.fits64 = false, false
	}
	if frac == "" && len(intPart) <= 19 {
		n, err := strconv.ParseInt(intPart, 10, 64)
		if err != nil && intPart != "" {
			o.fits64, o.fits32 = false, false
		} else if n > math.MaxInt32 {
			o.fits32 = false
		}
	} else if frac == "" {
		o.fits64, o.fits32 = false, false
	}
}

var dateLayouts = []string{time.DateOnly}

var timestampLayouts = []string{
	time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

func isDate(s string) bool {
	if len(s) != 10 {
		return false
	}
	for _, l := range dateLayouts {
		if _, err := time.Parse(l, s); err == nil {
			return true
		}
	}
	return false
}

func isTimestamp(s string) bool {
	for _, l := range timestampLayouts {
		if _, err := time.Parse(l, s); err == nil {
			return true
		}
	}
	return false
}

// typ is the widest type of what was observed.
func (o *observed) typ() streamd.Type {
	families := 0
	for _, f := range []bool{o.str, o.boolean, o.date || o.ts, o.obj, o.num} {
		if f {
			families++
		}
	}
	switch {
	case families == 0:
		return streamd.Type{Kind: streamd.KindString}
	case families > 1:
		return streamd.Type{Kind: streamd.KindString}
	case o.obj:
		return streamd.Type{Kind: streamd.KindJSON}
	case o.boolean:
		return streamd.Type{Kind: streamd.KindBool}
	case o.ts:
		return streamd.Type{Kind: streamd.KindTimestamp}
	case o.date:
		return streamd.Type{Kind: streamd.KindDate}
	case o.str:
		return streamd.Type{Kind: streamd.KindString}
	}
	// numbers
	switch {
	case o.float:
		return streamd.Type{Kind: streamd.KindFloat64}
	case o.scale == 0 && o.fits32:
		return streamd.Type{Kind: streamd.KindInt32}
	case o.scale == 0 && o.fits64:
		return streamd.Type{Kind: streamd.KindInt64}
	}
	p := max(o.intDigits, 1) + o.scale
	if p > streamd.MaxDecimalPrecision {
		return streamd.Type{Kind: streamd.KindFloat64}
	}
	return streamd.Type{Kind: streamd.KindDecimal, Precision: uint8(p), Scale: uint8(o.scale)}
}

// splitCSV splits one RFC 4180 line.
func splitCSV(line []byte) ([]string, bool) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	var out []string
	var sb strings.Builder
	i := 0
	for {
		sb.Reset()
		if i < len(line) && line[i] == '"' {
			i++
			for {
				if i >= len(line) {
					return nil, false
				}
				if line[i] == '"' {
					if i+1 < len(line) && line[i+1] == '"' {
						sb.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				sb.WriteByte(line[i])
				i++
			}
			if i < len(line) && line[i] != ',' {
				return nil, false
			}
		} else {
			for i < len(line) && line[i] != ',' {
				sb.WriteByte(line[i])
				i++
			}
		}
		out = append(out, sb.String())
		if i >= len(line) {
			return out, true
		}
		i++ // ','
	}
}
