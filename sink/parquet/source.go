package parquet

import (
	"fmt"
	"sort"

	"github.com/streamd/streamd"
)

// source holds the column values of the rows of one write: those of one
// batch, or those of the consecutive segments a window was decoded into
// (Sink.WriteSegments). Rows are numbered across segments: segment k holds
// rows start[k] to start[k+1]-1. Everything that reads values (partitions,
// sizes, dictionary choice, encoding) goes through it, so a window is
// written from its segments as it would be from one batch holding them.
type source struct {
	segs  []*streamd.Batch
	start []int // len(segs)+1 entries; the last is the number of rows
}

// single returns the source of one batch.
func single(b *streamd.Batch) *source {
	return &source{segs: []*streamd.Batch{b}, start: []int{0, b.Len()}}
}

// segmented returns the source of segs, in order.
func segmented(segs []*streamd.Batch) *source {
	s := &source{segs: segs, start: make([]int, len(segs)+1)}
	for k, b := range segs {
		s.start[k+1] = s.start[k] + b.Len()
	}
	return s
}

// len returns the number of rows.
func (s *source) len() int { return s.start[len(s.segs)] }

// seg returns the index of the segment holding row r (0 <= r < len()).
func (s *source) seg(r int) int {
	// The first k whose segment ends after r; empty segments are skipped.
	return sort.SearchInts(s.start[1:], r+1)
}

// col returns column ci of the segment holding row r and r's index in it.
func (s *source) col(ci, r int) (*streamd.Column, int) {
	k := s.seg(r)
	return &s.segs[k].Cols[ci], r - s.start[k]
}

// runs calls fn for each run of consecutive entries of rows that lie in one
// segment, with that segment and the row number of its first row (subtract
// it from an entry to index the segment's vectors).
func (s *source) runs(rows []int, fn func(seg *streamd.Batch, base int, run []int) error) error {
	for len(rows) > 0 {
		k := s.seg(rows[0])
		lo, hi := s.start[k], s.start[k+1]
		n := 1
		for n < len(rows) && rows[n] >= lo && rows[n] < hi {
			n++
		}
		if err := fn(s.segs[k], lo, rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// check verifies that every segment's columns match schema sc.
func (s *source) check(sc *streamd.Schema) error {
	for k, b := range s.segs {
		if b == nil {
			return fmt.Errorf("encode batch: %w: nil batch", ErrSchemaMismatch)
		}
		if len(b.Cols) != len(sc.Fields) {
			return fmt.Errorf("encode batch: %d columns, schema has %d: %w", len(b.Cols), len(sc.Fields), ErrSchemaMismatch)
		}
		n := b.Len()
		for i, f := range sc.Fields {
			c := &b.Cols[i]
			if c.Type != f.Type {
				return fmt.Errorf("encode batch: column %q is %s, schema says %s: %w", f.Name, c.Type, f.Type, ErrSchemaMismatch)
			}
			if c.Len() != n {
				if len(s.segs) > 1 {
					return fmt.Errorf("encode batch: segment %d: column %q has %d rows, segment %d: %w", k, f.Name, c.Len(), n, ErrSchemaMismatch)
				}
				return fmt.Errorf("encode batch: column %q has %d rows, batch %d: %w", f.Name, c.Len(), n, ErrSchemaMismatch)
			}
		}
	}
	return nil
}
