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
		return pq.Compression(&fastSnappy{}), nil
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
	// RowGroupBytes, when positive, also closes a row group once its rows'
	// estimated size (see Options.TargetFileBytes) reaches it (default 0:
	// rows only). parquet-go holds a whole row group in memory until it is
	// flushed, so this bounds the encoder's memory for wide rows; smaller
	// row groups read with less memory but carry more metadata and prune
	// less well.
	RowGroupBytes int64
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
	fields  []streamd.Field // written columns
	cols    []int           // batch column of each written column
	strCols []int           // indexes into fields of the string columns
	rgRows  int
	rgBytes int64
	opts    []pq.WriterOption
	scratch sync.Pool // *[]pq.Value

	mu      sync.Mutex
	schemas map[string]*pq.Schema // by dictionary choice, see dictChoice
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
	e := &Encoder{schema: s, rgRows: opts.RowGroupRows, rgBytes: opts.RowGroupBytes}
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
	e.fields = fields
	for i, f := range fields {
		if f.Type.Kind == streamd.KindString {
			e.strCols = append(e.strCols, i)
		}
	}
	// Validate the mapping now, so that Encode fails only on data.
	if _, err := e.parquetSchema(make([]bool, len(fields))); err != nil {
		return nil, fmt.Errorf("new encoder: %w", err)
	}
	e.opts = []pq.WriterOption{
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

	pschema, err := e.parquetSchema(e.dictChoice(b, rows))
	if err != nil {
		return fmt.Errorf("encode batch: %w", err)
	}
	pw := pq.NewGenericWriter[any](w, append([]pq.WriterOption{pschema}, e.opts...)...)
	var z *sizer
	if e.rgBytes > 0 {
		z = e.newSizer(b)
	}
	for start := 0; start < len(rows); {
		end := min(start+e.rgRows, len(rows))
		if z != nil {
			var acc int64
			for i := start; i < end; i++ {
				if acc += z.row(rows[i]); acc >= e.rgBytes {
					end = i + 1
					break
				}
			}
		}
		rg := rows[start:end]
		start = end
		for j, cw := range pw.ColumnWriters() {
			if err := writeColumn(cw, &b.Cols[e.cols[j]], rg, vals); err != nil {
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

// dictSample is the number of rows dictChoice looks at per string column.
const dictSample = 2048

// dictChoice decides, per written column, whether a string column is
// dictionary encoded: yes when at most half of a sample of its values are
// distinct. High-cardinality columns are written plain, as
// parquet-mr ends up doing after its dictionary overflows, without paying for
// building a dictionary first. The choice is a pure function of the rows.
func (e *Encoder) dictChoice(b *streamd.Batch, rows []int) []bool {
	dict := make([]bool, len(e.fields))
	if len(e.strCols) == 0 || len(rows) == 0 {
		return dict
	}
	seen := make(map[uint64]struct{}, dictSample)
	for _, fi := range e.strCols {
		c := &b.Cols[e.cols[fi]]
		clear(seen)
		m := 0
		for k := range sampleBlocks(len(rows)) {
			start := sampleStart(k, len(rows))
			for _, r := range rows[start:min(start+sampleBlock, len(rows))] {
				m++
				if c.Valid[r] {
					seen[fnv64a(c.Bytes.At(r))] = struct{}{}
				}
			}
		}
		dict[fi] = 2*len(seen) <= m
	}
	return dict
}

// sampleBlock is the length of a run of consecutive rows in the sample.
const sampleBlock = 64

// sampleBlocks returns how many blocks of sampleBlock rows dictChoice looks at
// among n rows: enough for dictSample rows, all rows when n is small.
func sampleBlocks(n int) int {
	return min(dictSample/sampleBlock, (n+sampleBlock-1)/sampleBlock)
}

// sampleStart returns the first row of sample block k among n rows: block
// k itself when every block is sampled, else a fixed pseudo-random spread (a
// multiplicative hash of k), which does not alias with periodic data the way
// an even stride does. Consecutive rows keep the sample cache friendly.
func sampleStart(k, n int) int {
	if sampleBlocks(n)*sampleBlock >= n {
		return k * sampleBlock
	}
	return int((uint64(k) * 0x9E3779B97F4A7C15 >> 11) % uint64(n-sampleBlock+1))
}

// fnv64a is the FNV-1a hash of b.
func fnv64a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// parquetSchema returns the Parquet schema for a dictionary choice, built
// once per choice.
func (e *Encoder) parquetSchema(dict []bool) (*pq.Schema, error) {
	key := make([]byte, len(dict))
	for i, d := range dict {
		if d {
			key[i] = 1
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.schemas[string(key)]; ok {
		return s, nil
	}
	s, err := newSchema(e.fields, dict)
	if err != nil {
		return nil, err
	}
	if e.schemas == nil {
		e.schemas = make(map[string]*pq.Schema)
	}
	e.schemas[string(key)] = s
	return s, nil
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
// A null is the zero Value (definition level 0); a present value has
// definition level 1 (every column is OPTIONAL at the top level).
func writeColumn(cw *pq.ColumnWriter, c *streamd.Column, rows []int, vals []pq.Value) error {
	t := c.Type
	valid := c.Valid
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), len(vals))]
		rows = rows[len(chunk):]
		out := vals[:len(chunk)]
		switch {
		case t.Kind == streamd.KindDecimal && t.Precision <= 9:
			src := c.Int64
			for k, r := range chunk {
				if !valid[r] {
					out[k] = pq.Value{}
					continue
				}
				v := src[r]
				if int64(int32(v)) != v {
					return fmt.Errorf("row %d: unscaled %d does not fit %s: %w", r, v, t, ErrBadValue)
				}
				out[k] = pq.Int32Value(int32(v))
				out[k].SetDefinitionLevel(1)
			}
		case t.Wide():
			for k, r := range chunk {
				if !valid[r] {
					out[k] = pq.Value{}
					continue
				}
				v := c.Bytes.At(r)
				if len(v) != wideDecimalLen {
					return fmt.Errorf("row %d: wide decimal of %d bytes, want %d: %w", r, len(v), wideDecimalLen, ErrBadValue)
				}
				out[k] = pq.FixedLenByteArrayValue(v)
				out[k].SetDefinitionLevel(1)
			}
		default:
			switch streamd.StorageOf(t) {
			case streamd.StoreInt32:
				src := c.Int32
				for k, r := range chunk {
					if !valid[r] {
						out[k] = pq.Value{}
						continue
					}
					out[k] = pq.Int32Value(src[r])
					out[k].SetDefinitionLevel(1)
				}
			case streamd.StoreInt64:
				src := c.Int64
				for k, r := range chunk {
					if !valid[r] {
						out[k] = pq.Value{}
						continue
					}
					out[k] = pq.Int64Value(src[r])
					out[k].SetDefinitionLevel(1)
				}
			case streamd.StoreFloat64:
				src := c.Float64
				for k, r := range chunk {
					if !valid[r] {
						out[k] = pq.Value{}
						continue
					}
					out[k] = pq.DoubleValue(src[r])
					out[k].SetDefinitionLevel(1)
				}
			case streamd.StoreBool:
				src := c.Bool
				for k, r := range chunk {
					if !valid[r] {
						out[k] = pq.Value{}
						continue
					}
					out[k] = pq.BooleanValue(src[r])
					out[k].SetDefinitionLevel(1)
				}
			case streamd.StoreBytes:
				data, offs := c.Bytes.Data, c.Bytes.Offs
				for k, r := range chunk {
					if !valid[r] {
						out[k] = pq.Value{}
						continue
					}
					lo, hi := offs[r], offs[r+1]
					out[k] = pq.ByteArrayValue(data[lo:hi:hi])
					out[k].SetDefinitionLevel(1)
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
