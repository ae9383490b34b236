package pipeline_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/pipeline"
	"github.com/streamd/streamd/sink"
	"github.com/streamd/streamd/window"
)

// segSink is a memSink that also writes windows from their segments
// (sink.SegmentWriter); it checks that the index batch matches them.
type segSink struct {
	memSink
	segCalls atomic.Int64
}

var _ sink.SegmentWriter = (*segSink)(nil)

func (s *segSink) WriteSegments(ctx context.Context, in streamd.Intent, b *streamd.Batch, segs []*streamd.Batch) error {
	s.segCalls.Add(1)
	whole := streamd.NewBatch(b.Schema, b.Lane)
	for _, seg := range segs {
		whole.Append(seg)
	}
	if whole.Len() != b.Len() || b.Cols[0].Len() != 0 {
		return fmt.Errorf("index batch has %d rows and %d values; segments hold %d rows", b.Len(), b.Cols[0].Len(), whole.Len())
	}
	for i, pos := range whole.Pos {
		if b.Pos[i] != pos {
			return fmt.Errorf("row %d: index position %s, segment position %s", i, b.Pos[i], pos)
		}
	}
	return s.Write(ctx, in, whole)
}

// poisoningProcessor overwrites every value of a batch handed back by
// Recycle, so that a segment recycled before its window is durable shows
// up as wrong rows in the write (or in the write's retry).
type poisoningProcessor struct {
	*numProcessor
	recycled atomic.Int64
}

func (p *poisoningProcessor) Recycle(b *streamd.Batch) {
	for i := range b.Cols[0].Int64 {
		b.Cols[0].Int64[i] = -999
	}
	p.recycled.Add(1)
}

// TestSegmentedWindows runs windows written from their segments, through
// a sink that fails its first writes: every write (and retry) holds
// exactly its window's rows, and segments are handed back only once their
// window is committed.
func TestSegmentedWindows(t *testing.T) {
	for _, failFor := range []int{0, 3} {
		t.Run(fmt.Sprintf("failing %d writes", failFor), func(t *testing.T) {
			data := nums(2000)
			data[333] = "bad"
			src := &sliceSource{lanes: map[string][]string{"a": data, "b": nums(1500)}, chunk: 37}
			out, dl := &segSink{memSink: memSink{failFor: failFor}}, &memSink{}
			proc := &poisoningProcessor{numProcessor: newNumProcessor()}
			p, err := pipeline.New(pipeline.Config{Name: "t", Source: src, Processor: proc, Sink: out, DeadLetter: dl,
				Store: checkpoint.NewFileStore(t.TempDir()), Window: window.Policy{MaxRecords: 100}, Workers: 3,
				RetryBackoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got, want := out.segCalls.Load(), int64(len(out.writes)+failFor); got != want {
				t.Fatalf("%d WriteSegments calls, want %d (every window, plus the failed attempts)", got, want)
			}
			for _, in := range out.writes {
				rows := out.rows[in]
				want := int(in.To.Offset - in.From.Offset + 1)
				if in.Lane == "a" && in.From.Offset <= 333 && 333 <= in.To.Offset {
					want--
				}
				for i, v := range rows {
					if v < in.From.Offset || v > in.To.Offset || i > 0 && v <= rows[i-1] {
						t.Fatalf("write %+v: row %d is %d: a segment was reused before its window was durable", in, i, v)
					}
				}
				if len(rows) != want {
					t.Fatalf("write %+v holds %d rows, want %d", in, len(rows), want)
				}
			}
			if st := p.Stats(); st.Written != 3499 || st.DeadLettered != 1 {
				t.Fatalf("stats %+v", st)
			}
			// 2000/37 and 1500/37 chunks, some cut in two at window
			// boundaries: every one is handed back after its commit.
			if n := proc.recycled.Load(); n < 2000/37+1500/37 {
				t.Fatalf("%d segments recycled, want every segment (at least %d)", n, 2000/37+1500/37)
			}
		})
	}
}
