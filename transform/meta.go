package transform

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/streamd/streamd"
)

// Record metadata columns: a schema column with one of these names (and no
// expr or from) is filled from the record's source metadata instead of its
// payload. They are null for records without metadata.
const (
	ColKafkaKey       = "_kafka_key"       // string or binary
	ColKafkaTopic     = "_kafka_topic"     // string
	ColKafkaPartition = "_kafka_partition" // int32 or int64
	ColKafkaOffset    = "_kafka_offset"    // int64
	ColKafkaTimestamp = "_kafka_timestamp" // timestamp (or int64 µs)
	ColKafkaHeaders   = "_kafka_headers"   // json (or string): [{"key":..,"value":..}] (value_base64 when not UTF-8)
)

// metaCol is a schema column filled from Record.Meta.
type metaCol struct {
	col  int
	name string
}

// metaKinds lists the types each metadata column may be declared with.
var metaKinds = map[string][]streamd.Kind{
	ColKafkaKey:       {streamd.KindString, streamd.KindBinary},
	ColKafkaTopic:     {streamd.KindString},
	ColKafkaPartition: {streamd.KindInt32, streamd.KindInt64},
	ColKafkaOffset:    {streamd.KindInt64},
	ColKafkaTimestamp: {streamd.KindTimestamp, streamd.KindInt64},
	ColKafkaHeaders:   {streamd.KindJSON, streamd.KindString},
}

// MetaColumn reports whether name is a record metadata column.
func MetaColumn(name string) bool { _, ok := metaKinds[name]; return ok }

// checkMetaColumn validates a metadata column's declared type.
func checkMetaColumn(c ColumnSpec) error {
	for _, k := range metaKinds[c.Name] {
		if c.Type.Kind == k {
			return nil
		}
	}
	return fmt.Errorf("compile transform: column %q: metadata column cannot be %v (want one of %v): %w", c.Name, c.Type, metaKinds[c.Name], ErrSpec)
}

// fillMeta sets the metadata columns of the batch's last row from m.
func fillMeta(b *streamd.Batch, cols []metaCol, m *streamd.RecordMeta, tmp []byte) []byte {
	for _, mc := range cols {
		c := &b.Cols[mc.col]
		switch mc.name {
		case ColKafkaKey:
			if m.Key != nil {
				c.SetLast(func(c *streamd.Column) { c.AppendBytes(m.Key) })
			}
		case ColKafkaTopic:
			c.SetLast(func(c *streamd.Column) { c.AppendBytes([]byte(m.Topic)) })
		case ColKafkaPartition:
			if c.Type.Kind == streamd.KindInt32 {
				c.SetLast(func(c *streamd.Column) { c.AppendInt32(m.Partition) })
			} else {
				c.SetLast(func(c *streamd.Column) { c.AppendInt64(int64(m.Partition)) })
			}
		case ColKafkaOffset:
			c.SetLast(func(c *streamd.Column) { c.AppendInt64(m.Offset) })
		case ColKafkaTimestamp:
			c.SetLast(func(c *streamd.Column) { c.AppendInt64(m.Timestamp) })
		case ColKafkaHeaders:
			tmp = appendHeaders(tmp[:0], m.Headers)
			c.SetLast(func(c *streamd.Column) { c.AppendBytes(tmp) })
		}
	}
	return tmp
}

// appendHeaders renders headers as a JSON array of {"key","value"} objects;
// a value that is not UTF-8 is given as "value_base64" instead.
func appendHeaders(dst []byte, hs []streamd.RecordHeader) []byte {
	dst = append(dst, '[')
	for i, h := range hs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"key":`...)
		dst = strconv.AppendQuote(dst, h.Key)
		switch {
		case h.Value == nil:
			dst = append(dst, `,"value":null`...)
		case utf8.Valid(h.Value):
			dst = append(dst, `,"value":`...)
			dst = streamd.AppendJSONString(dst, string(h.Value))
		default:
			dst = append(dst, `,"value_base64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, h.Value)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}
