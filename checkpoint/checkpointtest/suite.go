package checkpointtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
)

// Run exercises a fresh store returned by newStore against the Store
// contract: empty lanes, intent then commit, redo of an open intent,
// conflicting intents, operator state, listing and concurrent lanes.
func Run(t *testing.T, newStore func(t *testing.T) checkpoint.Store) {
	ctx := context.Background()
	pos := func(n int64) streamd.Position { return streamd.Position{Offset: n} }

	t.Run("UnknownLaneIsEmpty", func(t *testing.T) {
		s := newStore(t)
		st, err := s.Load(ctx, "p", "lane-a")
		if err != nil {
			t.Fatal(err)
		}
		if st.HasCommit || st.Intent != nil || st.Lane != "lane-a" {
			t.Fatalf("got %+v, want an empty state for lane-a", st)
		}
	})

	t.Run("IntentThenCommit", func(t *testing.T) {
		s := newStore(t)
		in := streamd.Intent{Pipeline: "p", Lane: "data/a.jsonl", From: pos(0), To: pos(900)}
		if err := s.PutIntent(ctx, in); err != nil {
			t.Fatal(err)
		}
		st, err := s.Load(ctx, "p", in.Lane)
		if err != nil {
			t.Fatal(err)
		}
		if st.Intent == nil || *st.Intent != in || st.HasCommit {
			t.Fatalf("after PutIntent got %+v, want open intent %+v", st, in)
		}
		if err := s.PutIntent(ctx, in); err != nil {
			t.Fatalf("re-putting the open intent (a redo) must succeed: %v", err)
		}
		if err := s.Commit(ctx, in, []byte("state-1")); err != nil {
			t.Fatal(err)
		}
		st, err = s.Load(ctx, "p", in.Lane)
		if err != nil {
			t.Fatal(err)
		}
		if st.Intent != nil || !st.HasCommit || st.Committed != in.To || !bytes.Equal(st.OpState, []byte("state-1")) {
			t.Fatalf("after Commit got %+v", st)
		}
	})

	t.Run("Conflicts", func(t *testing.T) {
		s := newStore(t)
		first := streamd.Intent{Pipeline: "p", Lane: "l", From: pos(0), To: pos(10)}
		if err := s.PutIntent(ctx, first); err != nil {
			t.Fatal(err)
		}
		other := streamd.Intent{Pipeline: "p", Lane: "l", From: pos(0), To: pos(20)}
		if err := s.PutIntent(ctx, other); !errors.Is(err, checkpoint.ErrConflict) {
			t.Fatalf("second intent while one is open: got %v, want ErrConflict", err)
		}
		if err := s.Commit(ctx, first, nil); err != nil {
			t.Fatal(err)
		}
		stale := streamd.Intent{Pipeline: "p", Lane: "l", From: pos(5), To: pos(30)}
		if err := s.PutIntent(ctx, stale); !errors.Is(err, checkpoint.ErrConflict) {
			t.Fatalf("intent starting inside the committed range: got %v, want ErrConflict", err)
		}
		next := streamd.Intent{Pipeline: "p", Lane: "l", From: pos(11), To: pos(30)}
		if err := s.PutIntent(ctx, next); err != nil {
			t.Fatalf("next intent: %v", err)
		}
	})

	t.Run("SequencePositions", func(t *testing.T) {
		s := newStore(t)
		in := streamd.Intent{Pipeline: "p", Lane: "shardId-000000000001",
			From: streamd.Position{Seq: "49590338271490256608559692538361571095921575989136588898", Sub: 3},
			To:   streamd.Position{Seq: "49590338271490256608559692538361571095921575989136588999"}}
		if err := s.PutIntent(ctx, in); err != nil {
			t.Fatal(err)
		}
		st, err := s.Load(ctx, "p", in.Lane)
		if err != nil {
			t.Fatal(err)
		}
		if st.Intent == nil || *st.Intent != in {
			t.Fatalf("got %+v, want %+v", st.Intent, in)
		}
	})

	t.Run("LanesAndPipelinesAreSeparate", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				in := streamd.Intent{Pipeline: "p", Lane: fmt.Sprintf("lane-%02d", i), From: pos(0), To: pos(int64(i))}
				if err := s.PutIntent(ctx, in); err != nil {
					errs <- err
					return
				}
				errs <- s.Commit(ctx, in, nil)
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		lanes, err := s.Lanes(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		if len(lanes) != 16 {
			t.Fatalf("got %d lanes, want 16", len(lanes))
		}
		for i, st := range lanes {
			if st.Lane != fmt.Sprintf("lane-%02d", i) || st.Committed != pos(int64(i)) {
				t.Fatalf("lane %d: got %+v", i, st)
			}
		}
		other, err := s.Lanes(ctx, "q")
		if err != nil {
			t.Fatal(err)
		}
		if len(other) != 0 {
			t.Fatalf("pipeline q sees %d lanes of pipeline p", len(other))
		}
	})
}
