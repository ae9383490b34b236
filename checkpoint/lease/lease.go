package lease

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/checkpoint/dynamodb"
)

// Shard is a shard of a stream as the source lists it: its id and the ids
// of its parents (one after a split, two after a merge, none for a shard of
// the stream's first generation).
type Shard struct {
	ID      string
	Parents []string
}

// Changes is what a Tick changed in the set of leases this worker holds.
type Changes struct {
	// Gained are shards newly leased: start reading them.
	Gained []string
	// Lost are shards this worker no longer holds (another worker took the
	// lease after it expired): stop reading them at once; their pending
	// commits fail with checkpoint.ErrFenced.
	Lost []string
	// Yield are held shards another worker asked for to balance the load:
	// stop reading, let the pipeline finish the lane, then call Release.
	// A shard is reported here once per request.
	Yield []string
}

// Manager hands out the shards of one pipeline's stream to the workers
// reading it. The source calls Sync with every shard listing, Tick every
// Interval, Finish when a closed shard is fully consumed and committed, and
// Release when it has let go of a lane. It also fences the checkpoint
// store's writes (dynamodb.Fence). Methods are safe for concurrent use.
type Manager interface {
	dynamodb.Fence
	// Sync records shards and their lineage; it creates a free lease for
	// each shard not known yet.
	Sync(ctx context.Context, shards []Shard) error
	// Tick renews the leases held, takes free and expired ones up to the
	// balanced target, and asks the most loaded worker for one when below it.
	Tick(ctx context.Context) (Changes, error)
	// Held returns the shards held, sorted.
	Held() []string
	// Finish marks a held shard finished (every record of the closed shard
	// is committed) and releases it; its children become eligible.
	Finish(ctx context.Context, shard string) error
	// Release gives up a held lease (after its lane was let go).
	Release(ctx context.Context, shard string) error
	// Interval is how often Tick is to be called.
	Interval() time.Duration
}

// eligible reports whether a shard may be leased: it is not finished and
// every parent that is still known is finished. A parent no longer listed
// (past the stream's retention) counts as finished.
func eligible(id string, finished map[string]bool, parents map[string][]string) bool {
	if finished[id] {
		return false
	}
	for _, p := range parents[id] {
		if _, known := parents[p]; known && !finished[p] {
			return false
		}
	}
	return true
}

// Local is the Manager for a single process (the embedded file store): it
// holds every eligible shard itself and keeps lineage and finished flags in
// memory. After a restart a finished parent is read again from its
// checkpoint, ends at once and is finished again before its children start.
type Local struct {
	mu       sync.Mutex
	parents  map[string][]string
	finished map[string]bool
	held     map[string]bool
}

// NewLocal returns an in-memory Manager.
func NewLocal() *Local {
	return &Local{parents: map[string][]string{}, finished: map[string]bool{}, held: map[string]bool{}}
}

var _ Manager = (*Local)(nil)

// Sync implements Manager.
func (l *Local) Sync(_ context.Context, shards []Shard) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range shards {
		l.parents[s.ID] = append([]string(nil), s.Parents...)
	}
	return nil
}

// Tick implements Manager: every eligible shard not held is gained.
func (l *Local) Tick(context.Context) (Changes, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ch Changes
	for id := range l.parents {
		if !l.held[id] && eligible(id, l.finished, l.parents) {
			l.held[id] = true
			ch.Gained = append(ch.Gained, id)
		}
	}
	sort.Strings(ch.Gained)
	return ch, nil
}

// Held implements Manager.
func (l *Local) Held() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sortedKeys(l.held)
}

// Finish implements Manager.
func (l *Local) Finish(_ context.Context, shard string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held[shard] {
		return fmt.Errorf("finish shard %q: %w", shard, ErrNotHeld)
	}
	delete(l.held, shard)
	l.finished[shard] = true
	return nil
}

// Release implements Manager. A released shard is gained again by the next
// Tick (there is no other worker).
func (l *Local) Release(_ context.Context, shard string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, shard)
	return nil
}

// Interval implements Manager: one second (the interval at which new
// shards and finished parents are noticed).
func (l *Local) Interval() time.Duration { return time.Second }

// Fenced implements dynamodb.Fence: write runs while the shard is held.
func (l *Local) Fenced(_ context.Context, _, lane string, write func(string, int64) error) error {
	l.mu.Lock()
	held := l.held[lane]
	l.mu.Unlock()
	if !held {
		return fmt.Errorf("lane %q: %w", lane, ErrNotHeld)
	}
	return write("", 0)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// ErrNotHeld is returned by Finish and Release for a shard this worker does
// not hold; it wraps checkpoint.ErrFenced.
var ErrNotHeld = fmt.Errorf("shard not leased by this worker: %w", checkpoint.ErrFenced)
