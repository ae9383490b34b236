package streamd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind is a logical column type.
type Kind uint8

// The logical types a schema column can have. Their Parquet mapping is fixed
// by the sink (see sink/parquet): DECIMAL, DATE on INT32, TIMESTAMP(MICROS,
// UTC) on INT64, UTF8 strings.
const (
	KindInvalid   Kind = iota
	KindString         // UTF-8 text
	KindBool           // true / false
	KindInt32          // 32-bit signed integer
	KindInt64          // 64-bit signed integer
	KindFloat64        // IEEE 754 double
	KindDecimal        // exact decimal(precision, scale)
	KindDate           // days since 1970-01-01
	KindTimestamp      // microseconds since the Unix epoch, UTC
	KindBinary         // raw bytes
	KindJSON           // a nested value kept as JSON text
)

var kindNames = [...]string{
	KindInvalid:   "invalid",
	KindString:    "string",
	KindBool:      "bool",
	KindInt32:     "int32",
	KindInt64:     "int64",
	KindFloat64:   "float64",
	KindDecimal:   "decimal",
	KindDate:      "date",
	KindTimestamp: "timestamp",
	KindBinary:    "binary",
	KindJSON:      "json",
}

// String returns the kind's config name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MaxDecimalPrecision is the largest decimal precision a column may declare
// (what Athena, Spark and DuckDB all support).
const MaxDecimalPrecision = 38

// Type is a logical type; Precision and Scale apply to KindDecimal only.
type Type struct {
	Kind      Kind
	Precision uint8
	Scale     uint8
}

// String renders the type as written in a config: "decimal(10,2)", "int64".
func (t Type) String() string {
	if t.Kind == KindDecimal {
		return fmt.Sprintf("decimal(%d,%d)", t.Precision, t.Scale)
	}
	return t.Kind.String()
}

// Wide reports whether a decimal needs more than 18 digits and so is held as
// a 16-byte two's-complement big-endian value instead of an int64.
func (t Type) Wide() bool { return t.Kind == KindDecimal && t.Precision > 18 }

// ErrBadType is wrapped by ParseType for an unknown or malformed type.
var ErrBadType = errors.New("unknown type")

// ParseType parses a config type name: string, bool, int32, int64, float64,
// date, timestamp, binary, json, or decimal(p,s) with 1 ≤ p ≤ 38, 0 ≤ s ≤ p.
// Aliases: int (int32), long/bigint (int64), double (float64), boolean.
func ParseType(s string) (Type, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	switch name {
	case "string", "str", "varchar":
		return Type{Kind: KindString}, nil
	case "bool", "boolean":
		return Type{Kind: KindBool}, nil
	case "int32", "int", "integer":
		return Type{Kind: KindInt32}, nil
	case "int64", "long", "bigint":
		return Type{Kind: KindInt64}, nil
	case "float64", "double", "float":
		return Type{Kind: KindFloat64}, nil
	case "date":
		return Type{Kind: KindDate}, nil
	case "timestamp":
		return Type{Kind: KindTimestamp}, nil
	case "binary", "bytes":
		return Type{Kind: KindBinary}, nil
	case "json":
		return Type{Kind: KindJSON}, nil
	}
	if rest, ok := strings.CutPrefix(name, "decimal("); ok && strings.HasSuffix(rest, ")") {
		ps := strings.Split(strings.TrimSuffix(rest, ")"), ",")
		if len(ps) == 2 {
			p, err1 := strconv.Atoi(strings.TrimSpace(ps[0]))
			sc, err2 := strconv.Atoi(strings.TrimSpace(ps[1]))
			if err1 == nil && err2 == nil && p >= 1 && p <= MaxDecimalPrecision && sc >= 0 && sc <= p {
				return Type{Kind: KindDecimal, Precision: uint8(p), Scale: uint8(sc)}, nil
			}
		}
		return Type{}, fmt.Errorf("parse type %q: decimal needs decimal(p,s) with 1<=p<=38 and 0<=s<=p: %w", s, ErrBadType)
	}
	return Type{}, fmt.Errorf("parse type %q (want string, bool, int32, int64, float64, decimal(p,s), date, timestamp, binary or json): %w", s, ErrBadType)
}

// Field is one output column.
type Field struct {
	Name string
	Type Type
}

// Schema is the ordered list of output columns. All columns are nullable.
type Schema struct {
	Fields []Field
}

// NewSchema returns a schema of the given fields; it fails on an empty or
// duplicate name.
func NewSchema(fields ...Field) (*Schema, error) {
	seen := make(map[string]bool, len(fields))
	for _, f := range fields {
		if f.Name == "" {
			return nil, errors.New("new schema: empty column name")
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("new schema: duplicate column %q", f.Name)
		}
		if f.Type.Kind == KindInvalid {
			return nil, fmt.Errorf("new schema: column %q has no type", f.Name)
		}
		seen[f.Name] = true
	}
	return &Schema{Fields: fields}, nil
}

// Index returns the position of the named column, or -1.
func (s *Schema) Index(name string) int {
	for i, f := range s.Fields {
		if f.Name == name {
			return i
		}
	}
	return -1
}

// Fingerprint returns a stable string identifying the schema's names and
// types, for telling files of different schemas apart.
func (s *Schema) Fingerprint() string {
	var b strings.Builder
	for i, f := range s.Fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f.Name)
		b.WriteByte(':')
		b.WriteString(f.Type.String())
	}
	return b.String()
}
