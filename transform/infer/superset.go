package infer

import (
	"fmt"
	"slices"
	"strings"

	"github.com/streamd/streamd"
)

// Conflict is a column whose type differs between schemas in a way no
// widening reconciles; Superset gives it type string.
type Conflict struct {
	Column string
	Types  []streamd.Type
}

// String renders the conflict for a report.
func (c Conflict) String() string {
	ts := make([]string, len(c.Types))
	for i, t := range c.Types {
		ts[i] = t.String()
	}
	return fmt.Sprintf("column %q has types %s", c.Column, strings.Join(ts, ", "))
}

// Superset returns the schema that holds every column of schemas, for
// files written with different schemas read together by name (Athena, or
// DuckDB's union_by_name). Columns come in the order of the schemas sorted
// by width (schemas of one lane only grow, so narrower ones are older),
// each new name appended where first met. A column's type is the common
// one, or the widest of int32 < int64 < float64 and of decimals (a decimal
// meeting an integer or float becomes float64, decimals of different
// scales the one that holds both when it fits 38 digits); any other mix is
// a conflict and becomes string, reported so the DDL can be checked.
func Superset(schemas []*streamd.Schema) (*streamd.Schema, []Conflict) {
	order := slices.Clone(schemas)
	slices.SortStableFunc(order, func(a, b *streamd.Schema) int { return len(a.Fields) - len(b.Fields) })
	var fields []streamd.Field
	index := map[string]int{}
	seen := map[string][]streamd.Type{}
	for _, s := range order {
		for _, f := range s.Fields {
			if !slices.Contains(seen[f.Name], f.Type) {
				seen[f.Name] = append(seen[f.Name], f.Type)
			}
			i, ok := index[f.Name]
			if !ok {
				index[f.Name] = len(fields)
				fields = append(fields, f)
				continue
			}
			fields[i].Type = join(fields[i].Type, f.Type)
		}
	}
	var conflicts []Conflict
	for i, f := range fields {
		if f.Type.Kind == streamd.KindInvalid {
			fields[i].Type = streamd.Type{Kind: streamd.KindString}
			conflicts = append(conflicts, Conflict{Column: f.Name, Types: seen[f.Name]})
		}
	}
	return &streamd.Schema{Fields: fields}, conflicts
}

// join is the narrowest type holding a and b, or KindInvalid (a conflict,
// sticky).
func join(a, b streamd.Type) streamd.Type {
	if a == b || a.Kind == streamd.KindInvalid {
		return a
	}
	rank := func(k streamd.Kind) int {
		switch k {
		case streamd.KindInt32:
			return 1
		case streamd.KindInt64:
			return 2
		case streamd.KindFloat64:
			return 4
		}
		return 0
	}
	switch ra, rb := rank(a.Kind), rank(b.Kind); {
	case ra > 0 && rb > 0:
		if ra >= rb {
			return a
		}
		return b
	case a.Kind == streamd.KindDecimal && b.Kind == streamd.KindDecimal:
		scale := max(a.Scale, b.Scale)
		whole := max(int(a.Precision)-int(a.Scale), int(b.Precision)-int(b.Scale))
		if whole+int(scale) > streamd.MaxDecimalPrecision {
			return streamd.Type{Kind: streamd.KindFloat64}
		}
		return streamd.Type{Kind: streamd.KindDecimal, Precision: uint8(whole + int(scale)), Scale: scale}
	case (a.Kind == streamd.KindDecimal && rb > 0) || (b.Kind == streamd.KindDecimal && ra > 0):
		return streamd.Type{Kind: streamd.KindFloat64}
	case (a.Kind == streamd.KindString && b.Kind == streamd.KindJSON) || (a.Kind == streamd.KindJSON && b.Kind == streamd.KindString):
		return streamd.Type{Kind: streamd.KindString}
	}
	return streamd.Type{}
}

// SchemaYAML renders a schema as the config's `schema:` list.
func SchemaYAML(s *streamd.Schema) string {
	var sb strings.Builder
	sb.WriteString("schema:\n")
	for _, f := range s.Fields {
		fmt.Fprintf(&sb, "  - {name: %s, type: %s}\n", yamlScalar(f.Name), yamlScalar(f.Type.String()))
	}
	return sb.String()
}
