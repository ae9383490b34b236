package parquet

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink"
)

var _ sink.SegmentWriter = (*Sink)(nil)

// cut splits b into consecutive segments ending before each of ends (and
// at b.Len()), each with its own columns, and returns them with the index
// batch (positions and counters only) that the pipeline would build.
func cut(b *streamd.Batch, ends []int) (*streamd.Batch, []*streamd.Batch) {
	index := streamd.NewBatch(b.Schema, b.Lane)
	var segs []*streamd.Batch
	lo := 0
	for _, hi := range append(ends, b.Len()) {
		s := streamd.NewBatch(b.Schema, b.Lane)
		for r := lo; r < hi; r++ {
			for i := range s.Cols {
				s.Cols[i].AppendFrom(&b.Cols[i], r)
			}
			s.NoteRead(b.Pos[r], 1)
			s.AddRowMeta(b.Pos[r], b.EventTime[r])
		}
		index.AppendIndex(s)
		segs = append(segs, s)
		lo = hi
	}
	return index, segs
}

// TestWriteSegmentsIsByteIdentical writes the same rows once as one batch
// and, for several random cuts (including empty segments and one-row
// segments), as segments: every object must be the same bytes, across
// partitions, row groups and split files.
func TestWriteSegmentsIsByteIdentical(t *testing.T) {
	cases := []struct {
		name string
		b    *streamd.Batch
		opts Options
	}{
		{"partitioned sales, small row groups", salesBatch(t, 9000), Options{PartitionBy: []string{"region"}, RowGroupRows: 700}},
		{"unpartitioned sales", salesBatch(t, 5000), Options{}},
		{"split files by size", blobBatch(t, 3, 0, 3000, 200, "eu", "us"), Options{PartitionBy: []string{"region"}, TargetFileBytes: 100 << 10, RowGroupBytes: 30 << 10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			want := newMemStore()
			s, err := New(want, "sales", tc.opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Write(ctx, intentOf(tc.b), tc.b); err != nil {
				t.Fatal(err)
			}
			if len(want.names()) == 0 {
				t.Fatal("the one-batch write wrote nothing")
			}
			rng := rand.New(rand.NewPCG(7, uint64(len(tc.name))))
			for round := range 6 {
				var ends []int
				for r := 0; r < tc.b.Len(); {
					switch rng.IntN(4) {
					case 0:
						r++ // one-row segment
					case 1:
						// an empty segment
					default:
						r += rng.IntN(2000)
					}
					ends = append(ends, min(r, tc.b.Len()))
				}
				index, segs := cut(tc.b, ends)
				if index.Len() != tc.b.Len() || index.Read != tc.b.Read || index.From != tc.b.From || index.To != tc.b.To {
					t.Fatalf("round %d: index batch: %d rows, read %d, [%s, %s]; want %d, %d, [%s, %s]", round,
						index.Len(), index.Read, index.From, index.To, tc.b.Len(), tc.b.Read, tc.b.From, tc.b.To)
				}
				got := newMemStore()
				s, err := New(got, "sales", tc.opts, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.WriteSegments(ctx, intentOf(tc.b), index, segs); err != nil {
					t.Fatalf("round %d (%d segments): %v", round, len(segs), err)
				}
				if !equalObjects(maps(want), maps(got)) {
					t.Fatalf("round %d (%d segments): objects %q differ from the one-batch write %q", round, len(segs), got.names(), want.names())
				}
			}
		})
	}
}

func TestWriteSegmentsRefusesMismatches(t *testing.T) {
	b := salesBatch(t, 100)
	other := blobBatch(t, 1, 0, 10, 10)
	cases := []struct {
		name string
		edit func(index *streamd.Batch, segs []*streamd.Batch) []*streamd.Batch
	}{
		{"a segment missing", func(_ *streamd.Batch, segs []*streamd.Batch) []*streamd.Batch { return segs[1:] }},
		{"a segment of another schema", func(_ *streamd.Batch, segs []*streamd.Batch) []*streamd.Batch {
			return append(segs[:1:1], other)
		}},
		{"a nil segment", func(_ *streamd.Batch, segs []*streamd.Batch) []*streamd.Batch { return append(segs, nil) }},
		{"a short column", func(_ *streamd.Batch, segs []*streamd.Batch) []*streamd.Batch {
			segs[1].Cols[2].Valid = segs[1].Cols[2].Valid[:3]
			return segs
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			index, segs := cut(b, []int{40})
			store := newMemStore()
			s, err := New(store, "sales", Options{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = s.WriteSegments(context.Background(), intentOf(b), index, tc.edit(index, segs))
			if !errors.Is(err, ErrSchemaMismatch) {
				t.Fatalf("err = %v, want ErrSchemaMismatch", err)
			}
			if n := len(store.names()); n != 0 {
				t.Fatalf("%d objects written, want none", n)
			}
		})
	}
}
