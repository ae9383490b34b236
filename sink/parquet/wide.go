package parquet

import (
	"encoding/binary"

	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// signedDecimalType is DECIMAL on FIXED_LEN_BYTE_ARRAY(16) with the sort
// order the Parquet format defines for DECIMAL: signed two's complement.
// parquet-go orders 16-byte values as unsigned bytes, which would put
// negative decimals above positive ones in the min/max statistics and the
// column index, and mislead predicate pushdown in Athena, Spark and DuckDB.
// The wrapper fixes the three places that order values: Compare (column
// chunk statistics), page bounds (page statistics and column index) and the
// column indexer. Everything else is parquet-go's decimal type.
type signedDecimalType struct{ pq.Type }

// compareSigned16 orders two 16-byte big-endian two's-complement integers.
func compareSigned16(a, b []byte) int {
	ah, bh := int64(binary.BigEndian.Uint64(a[:8])), int64(binary.BigEndian.Uint64(b[:8]))
	switch {
	case ah < bh:
		return -1
	case ah > bh:
		return 1
	}
	al, bl := binary.BigEndian.Uint64(a[8:16]), binary.BigEndian.Uint64(b[8:16])
	switch {
	case al < bl:
		return -1
	case al > bl:
		return 1
	}
	return 0
}

func (t signedDecimalType) Compare(a, b pq.Value) int {
	return compareSigned16(a.ByteArray(), b.ByteArray())
}

func (t signedDecimalType) NewColumnBuffer(columnIndex, numValues int) pq.ColumnBuffer {
	return &signedColumnBuffer{ColumnBuffer: t.Type.NewColumnBuffer(columnIndex, numValues)}
}

func (t signedDecimalType) NewColumnIndexer(int) pq.ColumnIndexer { return &signedIndexer{} }

// signedColumnBuffer returns pages with signed bounds.
type signedColumnBuffer struct{ pq.ColumnBuffer }

func (c *signedColumnBuffer) Page() pq.Page { return &signedPage{Page: c.ColumnBuffer.Page()} }

func (c *signedColumnBuffer) Clone() pq.ColumnBuffer {
	return &signedColumnBuffer{ColumnBuffer: c.ColumnBuffer.Clone()}
}

// signedPage is a page of 16-byte decimals whose bounds are signed.
type signedPage struct{ pq.Page }

func (p *signedPage) Bounds() (lo, hi pq.Value, ok bool) {
	vals := p.Page.Data()
	data, size := vals.FixedLenByteArray()
	if size != wideDecimalLen || len(data) < size {
		return p.Page.Bounds()
	}
	minV, maxV := data[:size], data[:size]
	for i := size; i+size <= len(data); i += size {
		v := data[i : i+size]
		if compareSigned16(v, minV) < 0 {
			minV = v
		}
		if compareSigned16(v, maxV) > 0 {
			maxV = v
		}
	}
	return pq.FixedLenByteArrayValue(minV), pq.FixedLenByteArrayValue(maxV), true
}

func (p *signedPage) Slice(i, j int64) pq.Page { return &signedPage{Page: p.Page.Slice(i, j)} }

// signedIndexer builds the column index of a wide decimal column: per page
// null flag, null count and signed min/max (empty for all-null pages, as
// the format requires). The boundary order is UNORDERED, which is always
// correct.
type signedIndexer struct {
	nullPages  []bool
	nullCounts []int64
	mins, maxs [][]byte
}

func (x *signedIndexer) Reset() {
	x.nullPages, x.nullCounts, x.mins, x.maxs = x.nullPages[:0], x.nullCounts[:0], x.mins[:0], x.maxs[:0]
}

func (x *signedIndexer) IndexPage(numValues, numNulls int64, lo, hi pq.Value) {
	allNull := numValues == numNulls
	x.nullPages = append(x.nullPages, allNull)
	x.nullCounts = append(x.nullCounts, numNulls)
	if allNull || lo.IsNull() || hi.IsNull() {
		x.mins = append(x.mins, []byte{})
		x.maxs = append(x.maxs, []byte{})
		return
	}
	x.mins = append(x.mins, append([]byte(nil), lo.ByteArray()...))
	x.maxs = append(x.maxs, append([]byte(nil), hi.ByteArray()...))
}

func (x *signedIndexer) ColumnIndex() format.ColumnIndex {
	return format.ColumnIndex{
		NullPages:     append([]bool(nil), x.nullPages...),
		NullCounts:    append([]int64(nil), x.nullCounts...),
		MinValues:     append([][]byte(nil), x.mins...),
		MaxValues:     append([][]byte(nil), x.maxs...),
		BoundaryOrder: format.Unordered,
	}
}
