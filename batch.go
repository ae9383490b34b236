package streamd

import "slices"

// Bytes is a vector of variable-length values stored back to back: value i
// is Data[Offs[i]:Offs[i+1]]. Offs always has one more entry than values.
type Bytes struct {
	Data []byte
	Offs []int
}

// Len returns the number of values.
func (b *Bytes) Len() int {
	if len(b.Offs) == 0 {
		return 0
	}
	return len(b.Offs) - 1
}

// At returns value i; the slice aliases the vector's storage.
func (b *Bytes) At(i int) []byte { return b.Data[b.Offs[i]:b.Offs[i+1]] }

// Append adds one value.
func (b *Bytes) Append(v []byte) {
	if len(b.Offs) == 0 {
		b.Offs = append(b.Offs, 0)
	}
	b.Data = append(b.Data, v...)
	b.Offs = append(b.Offs, len(b.Data))
}

// AppendString adds one value.
func (b *Bytes) AppendString(v string) {
	if len(b.Offs) == 0 {
		b.Offs = append(b.Offs, 0)
	}
	b.Data = append(b.Data, v...)
	b.Offs = append(b.Offs, len(b.Data))
}

func (b *Bytes) reset() {
	b.Data = b.Data[:0]
	b.Offs = b.Offs[:0]
}

// Column is one typed vector plus a null mask. Which slice holds the values
// depends on the logical type:
//
//	int32, date                        → Int32 (date: days since epoch)
//	int64, timestamp, decimal(p≤18)    → Int64 (timestamp: µs UTC; decimal: unscaled)
//	float64                            → Float64
//	bool                               → Bool
//	string, binary, json, decimal(p>18)→ Bytes (wide decimal: 16-byte big-endian two's complement)
//
// A null row still occupies a slot (zero value) in the value slice, so row i
// of every slice lines up.
type Column struct {
	Type    Type
	Valid   []bool
	Int32   []int32
	Int64   []int64
	Float64 []float64
	Bool    []bool
	Bytes   Bytes
}

// Len returns the number of rows in the column.
func (c *Column) Len() int { return len(c.Valid) }

// IsNull reports whether row i is null.
func (c *Column) IsNull(i int) bool { return !c.Valid[i] }

// AppendNull adds a null row.
func (c *Column) AppendNull() {
	c.Valid = append(c.Valid, false)
	switch c.storage() {
	case StoreInt32:
		c.Int32 = append(c.Int32, 0)
	case StoreInt64:
		c.Int64 = append(c.Int64, 0)
	case StoreFloat64:
		c.Float64 = append(c.Float64, 0)
	case StoreBool:
		c.Bool = append(c.Bool, false)
	case StoreBytes:
		c.Bytes.Append(nil)
	}
}

// AppendInt32 adds a value to an int32 or date column.
func (c *Column) AppendInt32(v int32) {
	c.Valid = append(c.Valid, true)
	c.Int32 = append(c.Int32, v)
}

// AppendInt64 adds a value to an int64, timestamp or narrow decimal column.
func (c *Column) AppendInt64(v int64) {
	c.Valid = append(c.Valid, true)
	c.Int64 = append(c.Int64, v)
}

// AppendFloat64 adds a value to a float64 column.
func (c *Column) AppendFloat64(v float64) {
	c.Valid = append(c.Valid, true)
	c.Float64 = append(c.Float64, v)
}

// AppendBool adds a value to a bool column.
func (c *Column) AppendBool(v bool) {
	c.Valid = append(c.Valid, true)
	c.Bool = append(c.Bool, v)
}

// AppendBytes adds a value to a string, binary, json or wide decimal column.
func (c *Column) AppendBytes(v []byte) {
	c.Valid = append(c.Valid, true)
	c.Bytes.Append(v)
}

// Storage names which Column slice holds a type's values.
type Storage uint8

// The value slices of a Column.
const (
	StoreNone    Storage = iota // no storage (invalid type)
	StoreInt32                  // Column.Int32
	StoreInt64                  // Column.Int64
	StoreFloat64                // Column.Float64
	StoreBool                   // Column.Bool
	StoreBytes                  // Column.Bytes
)

func (c *Column) storage() Storage { return StorageOf(c.Type) }

// StorageOf names which Column slice holds values of type t.
func StorageOf(t Type) Storage {
	switch t.Kind {
	case KindInt32, KindDate:
		return StoreInt32
	case KindInt64, KindTimestamp:
		return StoreInt64
	case KindDecimal:
		if t.Wide() {
			return StoreBytes
		}
		return StoreInt64
	case KindFloat64:
		return StoreFloat64
	case KindBool:
		return StoreBool
	case KindString, KindBinary, KindJSON:
		return StoreBytes
	}
	return StoreNone
}

// SetLast replaces the value of the column's last row, which must be null
// and, for variable-length storage, empty: it is how a decoder fills a
// column after the row was appended (record metadata columns).
func (c *Column) SetLast(set func(c *Column)) {
	n := len(c.Valid) - 1
	c.Valid = c.Valid[:n]
	switch c.storage() {
	case StoreInt32:
		c.Int32 = c.Int32[:n]
	case StoreInt64:
		c.Int64 = c.Int64[:n]
	case StoreFloat64:
		c.Float64 = c.Float64[:n]
	case StoreBool:
		c.Bool = c.Bool[:n]
	case StoreBytes:
		c.Bytes.Offs = c.Bytes.Offs[:n+1]
		c.Bytes.Data = c.Bytes.Data[:c.Bytes.Offs[n]]
	}
	set(c)
}

// AppendFrom adds row i of src (a column of the same type) to c.
func (c *Column) AppendFrom(src *Column, i int) {
	if !src.Valid[i] {
		c.AppendNull()
		return
	}
	switch c.storage() {
	case StoreInt32:
		c.AppendInt32(src.Int32[i])
	case StoreInt64:
		c.AppendInt64(src.Int64[i])
	case StoreFloat64:
		c.AppendFloat64(src.Float64[i])
	case StoreBool:
		c.AppendBool(src.Bool[i])
	case StoreBytes:
		c.AppendBytes(src.Bytes.At(i))
	}
}

// AppendColumn adds every row of src (a column of the same type) to c.
func (c *Column) AppendColumn(src *Column) {
	c.Valid = append(c.Valid, src.Valid...)
	switch c.storage() {
	case StoreInt32:
		c.Int32 = append(c.Int32, src.Int32...)
	case StoreInt64:
		c.Int64 = append(c.Int64, src.Int64...)
	case StoreFloat64:
		c.Float64 = append(c.Float64, src.Float64...)
	case StoreBool:
		c.Bool = append(c.Bool, src.Bool...)
	case StoreBytes:
		n := src.Bytes.Len()
		if n == 0 {
			return
		}
		if len(c.Bytes.Offs) == 0 {
			c.Bytes.Offs = append(c.Bytes.Offs, 0)
		}
		base := len(c.Bytes.Data) - src.Bytes.Offs[0]
		c.Bytes.Data = append(c.Bytes.Data, src.Bytes.Data[src.Bytes.Offs[0]:src.Bytes.Offs[n]]...)
		for _, o := range src.Bytes.Offs[1:] {
			c.Bytes.Offs = append(c.Bytes.Offs, o+base)
		}
	}
}

// Reset empties the column, keeping its capacity.
func (c *Column) Reset() {
	c.Valid = c.Valid[:0]
	c.Int32 = c.Int32[:0]
	c.Int64 = c.Int64[:0]
	c.Float64 = c.Float64[:0]
	c.Bool = c.Bool[:0]
	c.Bytes.reset()
}

// keep compacts the column to the rows whose keep[i] is true.
func (c *Column) keep(keep []bool) {
	j := 0
	st := c.storage()
	var data []byte
	var dataEnd int
	if st == StoreBytes && len(c.Bytes.Offs) > 0 {
		data = c.Bytes.Data
	}
	for i, k := range keep {
		if !k {
			continue
		}
		c.Valid[j] = c.Valid[i]
		switch st {
		case StoreInt32:
			c.Int32[j] = c.Int32[i]
		case StoreInt64:
			c.Int64[j] = c.Int64[i]
		case StoreFloat64:
			c.Float64[j] = c.Float64[i]
		case StoreBool:
			c.Bool[j] = c.Bool[i]
		case StoreBytes:
			// Values only move towards the front, so copying in place is safe.
			start, end := c.Bytes.Offs[i], c.Bytes.Offs[i+1]
			c.Bytes.Offs[j] = dataEnd
			dataEnd += copy(data[dataEnd:], data[start:end])
		}
		j++
	}
	c.Valid = c.Valid[:j]
	switch st {
	case StoreInt32:
		c.Int32 = c.Int32[:j]
	case StoreInt64:
		c.Int64 = c.Int64[:j]
	case StoreFloat64:
		c.Float64 = c.Float64[:j]
	case StoreBool:
		c.Bool = c.Bool[:j]
	case StoreBytes:
		if len(c.Bytes.Offs) > 0 {
			c.Bytes.Offs[j] = dataEnd
			c.Bytes.Offs = c.Bytes.Offs[:j+1]
			c.Bytes.Data = data[:dataEnd]
		}
	}
}

// DeadLetter is a record that was not written, with the reason. It belongs
// to the batch (and so the intent) its record was read in.
type DeadLetter struct {
	Lane  string
	Pos   Position
	Error string
	Raw   []byte
}

// Batch is a columnar set of rows from one lane: one Column per schema
// field plus per-row metadata. Decoders append straight into the columns,
// operators work on whole batches and sinks read the vectors.
//
// The counters account for every record read into the batch, so that
// Read == Len() + Filtered + Deduplicated + len(Dead) holds at all times.
type Batch struct {
	Schema *Schema
	Lane   string
	// From and To are the positions of the first and last record read into
	// the batch (written or not). Valid only when Read > 0.
	From, To Position
	Cols     []Column
	// Pos is the position of each row.
	Pos []Position
	// EventTime is each row's event time in µs UTC, 0 when unknown.
	EventTime []int64
	// Dead holds the records of this batch that go to the dead letter.
	Dead []DeadLetter

	Read         int // records read into the batch
	Bytes        int // raw input bytes read into the batch
	Filtered     int // rows removed by filters
	Deduplicated int // rows removed as duplicates
}

// NewBatch returns an empty batch for schema s.
func NewBatch(s *Schema, lane string) *Batch {
	b := &Batch{Schema: s, Lane: lane, Cols: make([]Column, len(s.Fields))}
	for i, f := range s.Fields {
		b.Cols[i].Type = f.Type
	}
	return b
}

// Len returns the number of rows that are still to be written.
func (b *Batch) Len() int { return len(b.Pos) }

// Accounted reports whether the batch's counters reconcile:
// Read == Len() + Filtered + Deduplicated + len(Dead).
func (b *Batch) Accounted() bool {
	return b.Read == b.Len()+b.Filtered+b.Deduplicated+len(b.Dead)
}

// NoteRead records that a record at pos with n raw bytes was read into the
// batch, extending its range.
func (b *Batch) NoteRead(pos Position, n int) {
	if b.Read == 0 {
		b.From = pos
	}
	b.To = pos
	b.Read++
	b.Bytes += n
}

// AddRowMeta appends the metadata of a new row whose column values the
// caller appends to every column.
func (b *Batch) AddRowMeta(pos Position, eventTime int64) {
	b.Pos = append(b.Pos, pos)
	b.EventTime = append(b.EventTime, eventTime)
}

// AddDead records a dead-lettered record of this batch.
func (b *Batch) AddDead(pos Position, reason string, raw []byte) {
	b.Dead = append(b.Dead, DeadLetter{Lane: b.Lane, Pos: pos, Error: reason, Raw: append([]byte(nil), raw...)})
}

// Keep compacts the batch to the rows whose keep[i] is true; len(keep) must
// equal Len(). The caller accounts for the removed rows (Filtered,
// Deduplicated or Dead).
func (b *Batch) Keep(keep []bool) {
	for i := range b.Cols {
		b.Cols[i].keep(keep)
	}
	j := 0
	for i, k := range keep {
		if k {
			b.Pos[j] = b.Pos[i]
			b.EventTime[j] = b.EventTime[i]
			j++
		}
	}
	b.Pos = b.Pos[:j]
	b.EventTime = b.EventTime[:j]
}

// Append adds all rows, dead letters and counters of o (same schema, same
// lane, positions after b's) to b.
func (b *Batch) Append(o *Batch) {
	if o.Read == 0 {
		return
	}
	if b.Read == 0 {
		b.From = o.From
	}
	b.To = o.To
	for i := range b.Cols {
		b.Cols[i].AppendColumn(&o.Cols[i])
	}
	b.Pos = append(b.Pos, o.Pos...)
	b.EventTime = append(b.EventTime, o.EventTime...)
	b.Dead = append(b.Dead, o.Dead...)
	b.Read += o.Read
	b.Bytes += o.Bytes
	b.Filtered += o.Filtered
	b.Deduplicated += o.Deduplicated
}

// Reserve grows the batch's capacity so that rows more rows, holding about
// bytesPerRow bytes of variable-length data per column, append without
// reallocating. It is a hint; appending beyond it still works.
func (b *Batch) Reserve(rows int, bytesPerRow []int) {
	b.Pos = slices.Grow(b.Pos, rows)
	b.EventTime = slices.Grow(b.EventTime, rows)
	for i := range b.Cols {
		c := &b.Cols[i]
		c.Valid = slices.Grow(c.Valid, rows)
		switch c.storage() {
		case StoreInt32:
			c.Int32 = slices.Grow(c.Int32, rows)
		case StoreInt64:
			c.Int64 = slices.Grow(c.Int64, rows)
		case StoreFloat64:
			c.Float64 = slices.Grow(c.Float64, rows)
		case StoreBool:
			c.Bool = slices.Grow(c.Bool, rows)
		case StoreBytes:
			c.Bytes.Offs = slices.Grow(c.Bytes.Offs, rows+1)
			if i < len(bytesPerRow) {
				c.Bytes.Data = slices.Grow(c.Bytes.Data, rows*bytesPerRow[i])
			}
		}
	}
}

// AvgBytesPerRow returns, per column, the average variable-length bytes a
// row holds (0 for fixed-width columns), rounded up; a sizing hint for
// Reserve.
func (b *Batch) AvgBytesPerRow() []int {
	out := make([]int, len(b.Cols))
	n := b.Len()
	if n == 0 {
		return out
	}
	for i := range b.Cols {
		if b.Cols[i].storage() == StoreBytes {
			out[i] = (len(b.Cols[i].Bytes.Data) + n - 1) / n
		}
	}
	return out
}

// Reset empties the batch for reuse, keeping its capacity.
func (b *Batch) Reset() {
	for i := range b.Cols {
		b.Cols[i].Reset()
	}
	b.Pos = b.Pos[:0]
	b.EventTime = b.EventTime[:0]
	b.Dead = nil
	b.From, b.To = Position{}, Position{}
	b.Read, b.Bytes, b.Filtered, b.Deduplicated = 0, 0, 0, 0
}

// MemSize estimates the bytes the batch holds, for memory budgets.
func (b *Batch) MemSize() int {
	n := len(b.Pos)*40 + len(b.EventTime)*8
	for i := range b.Cols {
		c := &b.Cols[i]
		n += cap(c.Valid) + cap(c.Int32)*4 + cap(c.Int64)*8 + cap(c.Float64)*8 + cap(c.Bool) +
			cap(c.Bytes.Data) + cap(c.Bytes.Offs)*8
	}
	for _, d := range b.Dead {
		n += len(d.Raw) + len(d.Error) + 64
	}
	return n
}
