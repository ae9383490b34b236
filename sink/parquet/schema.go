package parquet

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"

	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/streamd/streamd"
)

// ErrUnsupportedType is returned for a column whose logical type has no
// Parquet mapping.
var ErrUnsupportedType = errors.New("unsupported column type")

// wideDecimalLen is the byte length of a FIXED_LEN_BYTE_ARRAY decimal.
const wideDecimalLen = 16

// leafNode returns the OPTIONAL Parquet node for a logical type; dict asks
// for dictionary encoding of a string column.
func leafNode(t streamd.Type, dict bool) (pq.Node, error) {
	var n pq.Node
	switch t.Kind {
	case streamd.KindString:
		n = pq.String()
		if dict {
			n = pq.Encoded(n, &pq.RLEDictionary)
		}
	case streamd.KindJSON:
		n = pq.String()
	case streamd.KindBinary:
		n = pq.Leaf(pq.ByteArrayType)
	case streamd.KindBool:
		n = pq.Leaf(pq.BooleanType)
	case streamd.KindInt32:
		n = pq.Leaf(pq.Int32Type)
	case streamd.KindInt64:
		n = pq.Leaf(pq.Int64Type)
	case streamd.KindFloat64:
		n = pq.Leaf(pq.DoubleType)
	case streamd.KindDate:
		n = pq.Date()
	case streamd.KindTimestamp:
		n = pq.Timestamp(pq.Microsecond)
	case streamd.KindDecimal:
		p, s := int(t.Precision), int(t.Scale)
		if p < 1 || p > streamd.MaxDecimalPrecision || s > p {
			return nil, fmt.Errorf("map type %s: %w", t, ErrUnsupportedType)
		}
		switch {
		case p <= 9:
			n = pq.Decimal(s, p, pq.Int32Type)
		case p <= 18:
			n = pq.Decimal(s, p, pq.Int64Type)
		default:
			n = pq.Leaf(signedDecimalType{pq.Decimal(s, p, pq.FixedLenByteArrayType(wideDecimalLen)).Type()})
		}
	default:
		return nil, fmt.Errorf("map type %s: %w", t, ErrUnsupportedType)
	}
	return pq.Optional(n), nil
}

// group is a Parquet group node that keeps its fields in the given order
// (parquet.Group sorts them by name).
type group struct {
	fields []pq.Field
}

func (g *group) ID() int                     { return 0 }
func (g *group) String() string              { return "group" }
func (g *group) Type() pq.Type               { return pq.Group{}.Type() }
func (g *group) Optional() bool              { return false }
func (g *group) Repeated() bool              { return false }
func (g *group) Required() bool              { return true }
func (g *group) Leaf() bool                  { return false }
func (g *group) Fields() []pq.Field          { return g.fields }
func (g *group) Encoding() encoding.Encoding { return nil }
func (g *group) Compression() compress.Codec { return nil }
func (g *group) GoType() reflect.Type        { return goTypeOfGroup(g.fields) }

// field is a named child of a group.
type field struct {
	pq.Node
	name string
}

func (f *field) Name() string { return f.name }

// Value is not used: the encoder never maps Go values through reflection.
func (f *field) Value(reflect.Value) reflect.Value { return reflect.Value{} }

// goTypeOfGroup returns a struct type with one field per Parquet field; it
// exists only to satisfy parquet.Node (the encoder never uses reflection).
func goTypeOfGroup(fields []pq.Field) reflect.Type {
	sf := make([]reflect.StructField, len(fields))
	for i, f := range fields {
		sf[i] = reflect.StructField{
			Name: "F" + strconv.Itoa(i),
			Type: f.GoType(),
			Tag:  reflect.StructTag(`parquet:"` + f.Name() + `"`),
		}
	}
	return reflect.StructOf(sf)
}

// newSchema builds the Parquet schema of the given fields, in order;
// dict[i] asks for dictionary encoding of string field i.
func newSchema(fields []streamd.Field, dict []bool) (*pq.Schema, error) {
	g := &group{fields: make([]pq.Field, len(fields))}
	for i, f := range fields {
		n, err := leafNode(f.Type, dict[i])
		if err != nil {
			return nil, fmt.Errorf("map column %q: %w", f.Name, err)
		}
		g.fields[i] = &field{Node: n, name: f.Name}
	}
	return pq.NewSchema("schema", g), nil
}
