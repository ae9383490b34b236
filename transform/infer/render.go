package infer

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/streamd/streamd"
)

// YAML renders the schema as the config's `schema:` list.
func (r *Result) YAML() string {
	var sb strings.Builder
	sb.WriteString("schema:\n")
	for _, c := range r.Columns {
		fmt.Fprintf(&sb, "  - {name: %s, type: %s", yamlScalar(c.Name), yamlScalar(c.Type.String()))
		if c.From != "" {
			fmt.Fprintf(&sb, ", from: %s", yamlScalar(c.From))
		}
		sb.WriteString("}\n")
	}
	return sb.String()
}

// yamlScalar quotes s unless it is a plain YAML scalar that stays a string.
func yamlScalar(s string) string {
	plain := s != "" && !strings.ContainsAny(s, ":{}[],&*#?|-<>=!%@`'\" \t") &&
		!strings.ContainsAny(s[:1], "0123456789.+") &&
		!strings.EqualFold(s, "true") && !strings.EqualFold(s, "false") && !strings.EqualFold(s, "null") &&
		!strings.EqualFold(s, "yes") && !strings.EqualFold(s, "no") && !strings.EqualFold(s, "on") && !strings.EqualFold(s, "off")
	if plain {
		return s
	}
	return strconv.Quote(s)
}

// TableOptions describe the table for DDL.
type TableOptions struct {
	// Name is the table name (a pipeline name; '-' becomes '_').
	Name string
	// Location is the sink path: s3://bucket/prefix (a local path is
	// printed as a file:// URL, which Athena does not read).
	Location string
	// PartitionBy are the Hive partition columns, in directory order.
	PartitionBy []string
	// Compression is the Parquet codec: snappy (default), zstd or none.
	Compression string
}

// AthenaType is the Athena (Hive DDL) type of a column type: json columns
// are STRING (JSON text), timestamps TIMESTAMP (Parquet
// TIMESTAMP(MICROS, UTC)), dates DATE.
func AthenaType(t streamd.Type) string {
	switch t.Kind {
	case streamd.KindBool:
		return "BOOLEAN"
	case streamd.KindInt32:
		return "INT"
	case streamd.KindInt64:
		return "BIGINT"
	case streamd.KindFloat64:
		return "DOUBLE"
	case streamd.KindDecimal:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case streamd.KindDate:
		return "DATE"
	case streamd.KindTimestamp:
		return "TIMESTAMP"
	case streamd.KindBinary:
		return "BINARY"
	}
	return "STRING"
}

// DDL renders an Athena CREATE EXTERNAL TABLE statement for the schema as
// the Parquet sink writes it: partition columns move from the column list
// to PARTITIONED BY (the sink writes them as key=value/ directories, not
// into the files), STORED AS PARQUET, LOCATION, and the compression in
// TBLPROPERTIES.
func DDL(schema *streamd.Schema, t TableOptions) (string, error) {
	if schema == nil || len(schema.Fields) == 0 {
		return "", fmt.Errorf("render ddl: empty schema: %w", ErrInfer)
	}
	name := columnName(t.Name)
	if t.Name == "" {
		return "", fmt.Errorf("render ddl: no table name: %w", ErrInfer)
	}
	part := map[string]bool{}
	for _, p := range t.PartitionBy {
		if schema.Index(p) < 0 {
			return "", fmt.Errorf("render ddl: partition column %q is not in the schema: %w", p, ErrInfer)
		}
		part[p] = true
	}
	comp := strings.ToUpper(t.Compression)
	switch comp {
	case "":
		comp = "SNAPPY"
	case "SNAPPY", "ZSTD", "GZIP":
	case "NONE":
		comp = "UNCOMPRESSED"
	default:
		return "", fmt.Errorf("render ddl: compression %q: %w", t.Compression, ErrInfer)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "CREATE EXTERNAL TABLE IF NOT EXISTS `%s` (\n", name)
	var cols []string
	for _, f := range schema.Fields {
		if !part[f.Name] {
			cols = append(cols, fmt.Sprintf("  `%s` %s", f.Name, AthenaType(f.Type)))
		}
	}
	if len(cols) == 0 {
		return "", fmt.Errorf("render ddl: every column is a partition column: %w", ErrInfer)
	}
	sb.WriteString(strings.Join(cols, ",\n"))
	sb.WriteString("\n)\n")
	if len(t.PartitionBy) > 0 {
		var ps []string
		for _, p := range t.PartitionBy {
			f := schema.Fields[schema.Index(p)]
			// Hive partition values are directory names: keep them as text
			// unless the column is an integer or a date.
			typ := "STRING"
			switch f.Type.Kind {
			case streamd.KindInt32, streamd.KindInt64, streamd.KindDate:
				typ = AthenaType(f.Type)
			}
			ps = append(ps, fmt.Sprintf("`%s` %s", p, typ))
		}
		fmt.Fprintf(&sb, "PARTITIONED BY (%s)\n", strings.Join(ps, ", "))
	}
	sb.WriteString("STORED AS PARQUET\n")
	loc := t.Location
	if loc != "" && !strings.Contains(loc, "://") {
		loc = "file://" + loc
	}
	if loc != "" {
		if !strings.HasSuffix(loc, "/") {
			loc += "/"
		}
		fmt.Fprintf(&sb, "LOCATION '%s'\n", strings.ReplaceAll(loc, "'", "''"))
	}
	fmt.Fprintf(&sb, "TBLPROPERTIES ('parquet.compression'='%s')", comp)
	sb.WriteString(";\n")
	return sb.String(), nil
}

// Schema returns the inferred columns as a schema.
func (r *Result) Schema() (*streamd.Schema, error) {
	fields := make([]streamd.Field, len(r.Columns))
	for i, c := range r.Columns {
		fields[i] = streamd.Field{Name: c.Name, Type: c.Type}
	}
	return streamd.NewSchema(fields...)
}
