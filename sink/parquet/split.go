package parquet

import (
	"fmt"

	"github.com/streamd/streamd"
)

// Size defaults of the Sink.
const (
	// DefaultTargetFileBytes is the estimated size above which the rows of
	// one partition of a batch are split into several files.
	DefaultTargetFileBytes = 128 << 20
	// DefaultRowGroupBytes is the estimated size at which the Sink closes a
	// row group.
	DefaultRowGroupBytes = 64 << 20
	// streamThreshold is the estimated file size from which the Sink
	// encodes straight into the store's Put through a pipe instead of into
	// a buffer first.
	streamThreshold = 16 << 20
)

// sizer estimates the encoded size of rows from the column vectors: the
// width of every present fixed-size value plus the length of every present
// byte value, one byte per value for the definition level. It is a pure
// function of the rows, so splits made with it are deterministic. For data
// that compresses, the files come out smaller than the estimate.
type sizer struct {
	fixed int64   // bytes per row of the fixed-width columns (present or not)
	width []int64 // per fixed-width written column, value width
	fcols []*streamd.Column
	bcols []*streamd.Column // byte columns: length + 4 per present value
}

// newSizer returns a sizer over the written columns of b.
func (e *Encoder) newSizer(b *streamd.Batch) *sizer {
	z := &sizer{}
	for j, f := range e.fields {
		c := &b.Cols[e.cols[j]]
		z.fixed++ // definition level
		switch {
		case f.Type.Wide():
			z.fcols, z.width = append(z.fcols, c), append(z.width, wideDecimalLen)
		case streamd.StorageOf(f.Type) == streamd.StoreBytes:
			z.bcols = append(z.bcols, c)
		case streamd.StorageOf(f.Type) == streamd.StoreInt32:
			z.fcols, z.width = append(z.fcols, c), append(z.width, 4)
		case streamd.StorageOf(f.Type) == streamd.StoreBool:
			z.fcols, z.width = append(z.fcols, c), append(z.width, 1)
		default:
			z.fcols, z.width = append(z.fcols, c), append(z.width, 8)
		}
	}
	return z
}

// row returns the estimated size of row r.
func (z *sizer) row(r int) int64 {
	n := z.fixed
	for i, c := range z.fcols {
		if c.Valid[r] {
			n += z.width[i]
		}
	}
	for _, c := range z.bcols {
		if c.Valid[r] {
			n += int64(c.Bytes.Offs[r+1]-c.Bytes.Offs[r]) + 4
		}
	}
	return n
}

// total returns the estimated size of rows (all rows when rows is nil).
func (z *sizer) total(rows []int, n int) int64 {
	var t int64
	if rows == nil {
		for r := range n {
			t += z.row(r)
		}
		return t
	}
	for _, r := range rows {
		t += z.row(r)
	}
	return t
}

// splitRows cuts rows into k contiguous runs of about total/k estimated
// bytes each (every run non-empty); k is ceil(total/target).
func splitRows(z *sizer, rows []int, total, target int64) [][]int {
	k := (total + target - 1) / target
	if k <= 1 || len(rows) <= 1 {
		return [][]int{rows}
	}
	k = min(k, int64(len(rows)))
	out := make([][]int, 0, k)
	var acc int64
	start := 0
	for i, r := range rows {
		acc += z.row(r)
		left := int64(len(rows) - i - 1)        // rows after this one
		need := k - int64(len(out)) - 1         // runs still to fill after this one
		cut := acc*k >= total*int64(len(out)+1) // reached this run's share
		if (cut || left == need) && need > 0 && left >= need {
			out = append(out, rows[start:i+1])
			start = i + 1
		}
	}
	return append(out, rows[start:])
}

// allRows returns 0..n-1.
func allRows(n int) []int {
	rows := make([]int, n)
	for i := range rows {
		rows[i] = i
	}
	return rows
}

// partSuffix is the name suffix of file part (1-based) of a split
// partition.
func partSuffix(part int) string { return fmt.Sprintf("-p%04d", part) }
