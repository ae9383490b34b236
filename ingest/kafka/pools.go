package kafka

import (
	"math/bits"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Size classes of recordSlabs: powers of two from 1<<minSlabShift to
// 1<<maxSlabShift records. A record batch holds at most a few thousand
// records in practice; larger ones are allocated and left to the GC.
const (
	minSlabShift = 6
	maxSlabShift = 16
)

// recordSlabs is a kgo.PoolRecords: the client decodes each fetched record
// batch into a slab of kgo.Record taken from here instead of a new one.
// A slab returns once every record in it was recycled, which the source
// does when the pipeline released the chunk holding them, so at steady
// state the records of a fetch reuse the memory of an earlier one instead
// of allocating (and the GC scanning and clearing) ~200 bytes per record.
type recordSlabs struct {
	classes [maxSlabShift - minSlabShift + 1]sync.Pool
}

var _ kgo.PoolRecords = (*recordSlabs)(nil)

// slabClass returns the class index for a slab of at least n records, or
// -1 if n is too large to pool.
func slabClass(n int) int {
	if n <= 1<<minSlabShift {
		return 0
	}
	shift := bits.Len(uint(n - 1)) // 1<<shift >= n
	if shift > maxSlabShift {
		return -1
	}
	return shift - minSlabShift
}

// GetRecords implements kgo.PoolRecords.
func (p *recordSlabs) GetRecords(n int) []kgo.Record {
	c := slabClass(n)
	if c < 0 {
		return make([]kgo.Record, 0, n)
	}
	if s, ok := p.classes[c].Get().(*[]kgo.Record); ok {
		return (*s)[:0]
	}
	return make([]kgo.Record, 0, 1<<(c+minSlabShift))
}

// PutRecords implements kgo.PoolRecords. The client hands back slabs
// whose records were all recycled (zeroed).
func (p *recordSlabs) PutRecords(s []kgo.Record) {
	c := slabClass(cap(s))
	if c < 0 || cap(s) != 1<<(c+minSlabShift) {
		return // not one of ours
	}
	s = s[:0]
	p.classes[c].Put(&s)
}
