package kafka

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Metadata column names a schema can declare to receive a Kafka record's
// metadata instead of a field of its value. See README.md for their types.
const (
	ColKey       = "_kafka_key"       // string (binary keys: use type binary)
	ColTopic     = "_kafka_topic"     // string
	ColPartition = "_kafka_partition" // int32
	ColOffset    = "_kafka_offset"    // int64
	ColTimestamp = "_kafka_timestamp" // timestamp (µs UTC)
	ColHeaders   = "_kafka_headers"   // json: [{"key":"k","value":"v"}, ...]
)

// MetaColumns lists the metadata column names in documentation order.
var MetaColumns = []string{ColKey, ColTopic, ColPartition, ColOffset, ColTimestamp, ColHeaders}

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Meta is a Kafka record's metadata. It is what the proposed core field
// streamd.Record.Meta (see README.md) carries for Kafka records; until the
// core has it, the source puts the record timestamp into Record.Time and
// keeps the rest here for the decoder to come.
type Meta struct {
	Key       []byte
	Topic     string
	Partition int32
	Offset    int64
	// Timestamp is the record's timestamp in µs UTC.
	Timestamp int64
	Headers   []Header
}

// MetaOf returns the metadata of a fetched record. Key and header values
// alias the record's buffers.
func MetaOf(r *kgo.Record) Meta {
	m := Meta{Key: r.Key, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: micros(r.Timestamp)}
	if len(r.Headers) > 0 {
		m.Headers = make([]Header, len(r.Headers))
		for i, h := range r.Headers {
			m.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	return m
}

// micros converts a record timestamp to µs UTC, 0 for the zero time.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// AppendColumn appends the text form of metadata column name to dst, the
// way a decoder fills a declared _kafka_* column: the key as its bytes,
// topic as text, partition, offset and timestamp (µs UTC) as decimal
// integers, headers as a JSON array of {"key","value"} objects in record
// order (a value that is not UTF-8 is written as {"key","value_base64"}).
// null is true for an absent key (a null key, not an empty one); ok is
// false for a name that is not a metadata column.
func (m *Meta) AppendColumn(dst []byte, name string) (out []byte, null, ok bool) {
	switch name {
	case ColKey:
		if m.Key == nil {
			return dst, true, true
		}
		return append(dst, m.Key...), false, true
	case ColTopic:
		return append(dst, m.Topic...), false, true
	case ColPartition:
		return strconv.AppendInt(dst, int64(m.Partition), 10), false, true
	case ColOffset:
		return strconv.AppendInt(dst, m.Offset, 10), false, true
	case ColTimestamp:
		return strconv.AppendInt(dst, m.Timestamp, 10), false, true
	case ColHeaders:
		return appendHeadersJSON(dst, m.Headers), false, true
	}
	return dst, false, false
}

// IsMetaColumn reports whether name is one of the _kafka_* columns.
func IsMetaColumn(name string) bool {
	for _, c := range MetaColumns {
		if c == name {
			return true
		}
	}
	return false
}

type jsonHeader struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 []byte  `json:"value_base64,omitempty"`
}

func appendHeadersJSON(dst []byte, hs []Header) []byte {
	js := make([]jsonHeader, len(hs))
	for i, h := range hs {
		js[i].Key = h.Key
		if utf8.Valid(h.Value) {
			v := string(h.Value)
			js[i].Value = &v
		} else {
			js[i].ValueBase64 = h.Value
		}
	}
	b, err := json.Marshal(js)
	if err != nil { // cannot happen for strings and byte slices
		return append(dst, "[]"...)
	}
	return append(dst, b...)
}
