package parquet

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	pq "github.com/parquet-go/parquet-go"

	"github.com/streamd/streamd"
)

// Compression is a Parquet compression codec. The zero value is Snappy.
type Compression uint8

// The supported codecs.
const (
	Snappy Compression = iota // SNAPPY (the default)
	Zstd                      // ZSTD
	None                      // UNCOMPRESSED
)

// String returns the codec's config name.
func (c Compression) String() string {
	switch c {
	case Snappy:
		return "snappy"
	case Zstd:
		return "zstd"
	case None:
		return "none"
	}
	return "compression(" + fmt.Sprint(uint8(c)) + ")"
}

// ErrBadOption is wrapped by errors for an invalid option value.
var ErrBadOption = errors.New("invalid option")

// ParseCompression parses a config codec name: "snappy" (also ""), "zstd",
// "none" (also "uncompressed").
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "snappy":
		return Snappy, nil
	case "zstd":
		return Zstd, nil
	case "none", "uncompressed":
		return None, nil
	}
	return 0, fmt.Errorf("parse compression %q (want snappy, zstd or none): %w", s, ErrBadOption)
}

func (c Compression) codec() (pq.WriterOption, error) {
	switch c {
	case Snappy:
		return pq.Compression(&pq.Snappy), nil
	case Zstd:
		return pq.Compression(&pq.Zstd), nil
	case None:
		return pq.Compression(&pq.Uncompressed), nil
	}
	return nil, fmt.Errorf("use compression %s: %w", c, ErrBadOption)
}

// DefaultRowGroupRows is the number of rows per row group when
// EncoderOptions.RowGroupRows is 0.
const DefaultRowGroupRows = 1 << 20

// DictionaryMaxBytes is the dictionary size of a string column chunk beyond
// which further pages of the chunk are plain encoded.
const DictionaryMaxBytes = 1 << 20

// createdBy is the writer name stored in every file: fixed, so that output
// does not depend on build metadata.
const createdBy = "streamd"

// EncoderOptions configure an Encoder.
type EncoderOptions struct {
	// Compression is the codec of every column (default Snappy).
	Compression Compression
	// RowGroupRows is the maximum number of rows per row group
	// (default DefaultRowGroupRows).
	RowGroupRows int
	// Omit names schema columns that are not written, such as Hive
	// partition columns.
	Omit []string
}

// ErrUnknownColumn is returned for a column name that is not in the schema.
var ErrUnknownColumn = errors.New("unknown column")

// ErrSchemaMismatch is returned by Encode for a batch whose columns do not
// match the encoder's schema.
var ErrSchemaMismatch = errors.New("batch does not match schema")

// ErrBadValue is returned by Encode for a value that the column's type cannot
// hold, such as a wide decimal that is not 16 bytes.
var ErrBadValue = errors.New("bad value")

// Encoder writes batches of one schema as Parquet files. It is safe for
// concurrent use.
type Encoder struct {
	schema  *streamd.Schema
	pschema *pq.Schema
	cols    []int // batch column of each written column
	rgRows  int
	opts    []pq.WriterOption
	scratch sync.Pool // *[]pq.Value
}

// chunkRows is how many values are handed to parquet-go per call.
const chunkRows = 1024

// NewEncoder returns an encoder for batches of schema s. It fails on a type
// without a Parquet mapping, an unknown name in opts.Omit or an invalid
// option.
func NewEncoder(s *streamd.Schema, opts EncoderOptions) (*Encoder, error) {
	if s == nil {
		return nil, fmt.Errorf("new encoder: %w: nil schema", ErrBadOption)
	}
	if opts.RowGroupRows < 0 {
		return nil, fmt.Errorf("new encoder: row group rows %d: %w", opts.RowGroupRows, ErrBadOption)
	}
	codec, err := opts.Compression.codec()
	if err != nil {
		return nil, fmt.Errorf("new encoder: %w", err)
	}
	omit := make(map[string]bool, len(opts.Omit))
	for _, name := range opts.Omit {
		if s.Index(name) < 0 {
			return nil, fmt.Errorf("new encoder: omit %q: %w", name, ErrUnknownColumn)
		}
		omit[name] = true
	}
	e := &Encoder{schema: s, rgRows: opts.RowGroupRows}
	if e.rgRows == 0 {
		e.rgRows = DefaultRowGroupRows
	}
	var fields []streamd.Field
	for i, f := range s.Fields {
		if omit[f.Name] {
			continue
		}
		fields = append(fields, f)
		e.cols = append(e.cols, i)
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("new encoder: %w: no columns left to write", ErrBadOption)
	}
	if e.pschema, err = newSchema(fields); err != nil {
		return nil, fmt.Errorf("new encoder: %w", err)
	}
	e.opts = []pq.WriterOption{
		e.pschema,
		codec,
		&pq.WriterConfig{CreatedBy: createdBy},
		pq.DataPageVersion(1),
		pq.DictionaryMaxBytes(DictionaryMaxBytes),
	}
	e.scratch.New = func() any {
		v := make([]pq.Value, chunkRows)
		return &v
	}
	return e, nil
}

// Schema returns the streamd schema the encoder was built for.
func (e *Encoder) Schema() *streamd.Schema { return e.schema }

// Encode writes rows of b (all rows, in order, when rows is nil) to w as one
// Parquet file. An empty selection still writes a valid file with no rows.
func (e *Encoder) Encode(w io.Writer, b *streamd.Batch, rows []int) error {
	if err := e.check(b); err != nil {
		return err
	}
	if rows == nil {
		rows = make([]int, b.Len())
		for i := range rows {
			rows[i] = i
		}
	}
	n := b.Len()
	for _, r := range rows {
		if r < 0 || r >= n {
			return fmt.Errorf("encode batch: row %d out of range [0,%d): %w", r, n, ErrBadOption)
		}
	}
	sp := e.scratch.Get().(*[]pq.Value)
	defer e.scratch.Put(sp)
	vals := *sp

	pw := pq.NewGenericWriter[any](w, e.opts...)
	for start := 0; start < len(rows); start += e.rgRows {
		rg := rows[start:min(start+e.rgRows, len(rows))]
		for j, cw := range pw.ColumnWriters() {
			if err := writeColumn(cw, &b.Cols[e.cols[j]], j, rg, vals); err != nil {
				return fmt.Errorf("encode column %q: %w", e.schema.Fields[e.cols[j]].Name, err)
			}
		}
		if err := pw.Flush(); err != nil {
			return fmt.Errorf("encode row group: %w", err)
		}
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("encode footer: %w", err)
	}
	return nil
}

// check verifies that b's columns match the encoder's schema.
func (e *Encoder) check(b *streamd.Batch) error {
	if b == nil {
		return fmt.Errorf("encode batch: %w: nil batch", ErrSchemaMismatch)
	}
	if len(b.Cols) != len(e.schema.Fields) {
		return fmt.Errorf("encode batch: %d columns, schema has %d: %w", len(b.Cols), len(e.schema.Fields), ErrSchemaMismatch)
	}
	n := b.Len()
	for i, f := range e.schema.Fields {
		c := &b.Cols[i]
		if c.Type != f.Type {
			return fmt.Errorf("encode batch: column %q is %s, schema says %s: %w", f.Name, c.Type, f.Type, ErrSchemaMismatch)
		}
		if c.Len() != n {
			return fmt.Errorf("encode batch: column %q has %d rows, batch %d: %w", f.Name, c.Len(), n, ErrSchemaMismatch)
		}
	}
	return nil
}

// writeColumn writes the rows of one column to a column writer, chunkRows
// values at a time, building parquet values straight from the typed vector.
func writeColumn(cw *pq.ColumnWriter, c *streamd.Column, colIdx int, rows []int, vals []pq.Value) error {
	null := pq.NullValue().Level(0, 0, colIdx)
	t := c.Type
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), len(vals))]
		rows = rows[len(chunk):]
		out := vals[:len(chunk)]
		switch {
		case t.Kind == streamd.KindDecimal && t.Precision <= 9:
			for k, r := range chunk {
				if !c.Valid[r] {
					out[k] = null
					continue
				}
				v := c.Int64[r]
				if int64(int32(v)) != v {
					return fmt.Errorf("row %d: unscaled %d does not fit %s: %w", r, v, t, ErrBadValue)
				}
				out[k] = pq.Int32Value(int32(v)).Level(0, 1, colIdx)
			}
		case t.Wide():
			for k, r := range chunk {
				if !c.Valid[r] {
					out[k] = null
					continue
				}
				v := c.Bytes.At(r)
				if len(v) != wideDecimalLen {
					return fmt.Errorf("row %d: wide decimal of %d bytes, want %d: %w", r, len(v), wideDecimalLen, ErrBadValue)
				}
				out[k] = pq.FixedLenByteArrayValue(v).Level(0, 1, colIdx)
			}
		default:
			switch streamd.StorageOf(t) {
			case streamd.StoreInt32:
				for k, r := range chunk {
					if !c.Valid[r] {
						out[k] = null
						continue
					}
					out[k] = pq.Int32Value(c.Int32[r]).Level(0, 1, colIdx)
				}
			case streamd.StoreInt64:
				for k, r := range chunk {
					if !c.Valid[r] {
						out[k] = null
						continue
					}
					out[k] = pq.Int64Value(c.Int64[r]).Level(0, 1, colIdx)
				}
			case streamd.StoreFloat64:
				for k, r := range chunk {
					if !c.Valid[r] {
						out[k] = null
						continue
					}
					out[k] = pq.DoubleValue(c.Float64[r]).Level(0, 1, colIdx)
				}
			case streamd.StoreBool:
				for k, r := range chunk {
					if !c.Valid[r] {
						out[k] = null
						continue
					}
					out[k] = pq.BooleanValue(c.Bool[r]).Level(0, 1, colIdx)
				}
			case streamd.StoreBytes:
				data, offs := c.Bytes.Data, c.Bytes.Offs
				for k, r := range chunk {
					if !c.Valid[r] {
						out[k] = null
						continue
					}
					out[k] = pq.ByteArrayValue(data[offs[r]:offs[r+1]:offs[r+1]]).Level(0, 1, colIdx)
				}
			default:
				return fmt.Errorf("write %s: %w", t, ErrUnsupportedType)
			}
		}
		if _, err := cw.WriteRowValues(out); err != nil {
			return err
		}
	}
	clear(vals) // drop references to the batch's byte data
	return nil
}

// Encode writes rows of b (all rows when rows is nil) to w as one Parquet
// file; it is NewEncoder(b.Schema, opts) followed by Encode. Build an Encoder
// once to encode many batches of a schema.
func Encode(w io.Writer, b *streamd.Batch, rows []int, opts EncoderOptions) error {
	if b == nil {
		return fmt.Errorf("encode batch: %w: nil batch", ErrSchemaMismatch)
	}
	e, err := NewEncoder(b.Schema, opts)
	if err != nil {
		return err
	}
	return e.Encode(w, b, rows)
}
