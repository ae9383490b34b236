package checkpoint

import (
	"context"
	"errors"

	"github.com/streamd/streamd"
)

// State is what a store holds for one lane.
type State struct {
	Lane string
	// Committed is the last position written durably; valid if HasCommit.
	Committed streamd.Position
	HasCommit bool
	// Intent is the open intent, nil if none.
	Intent *streamd.Intent
	// OpState is operator state (dedup, outliers) saved with the commit.
	OpState []byte
}

// ErrFenced is returned by Commit or PutIntent when this process no longer
// owns the lane (its lease was taken); check with errors.Is.
var ErrFenced = errors.New("lane is owned by another process")

// ErrConflict is returned by PutIntent when the intent does not follow the
// lane's committed position or another intent is open.
var ErrConflict = errors.New("intent conflicts with lane state")

// Store keeps lane checkpoints. Implementations are safe for concurrent use
// across lanes; calls for one lane are serialised by the caller.
type Store interface {
	// Load returns the state of a lane; a lane never seen has a zero State.
	Load(ctx context.Context, pipeline, lane string) (State, error)
	// Lanes returns the state of every lane of a pipeline.
	Lanes(ctx context.Context, pipeline string) ([]State, error)
	// PutIntent durably records an open intent for in.Lane.
	PutIntent(ctx context.Context, in streamd.Intent) error
	// Commit durably sets the lane's committed position to in.To, stores
	// opState with it and clears the intent.
	Commit(ctx context.Context, in streamd.Intent, opState []byte) error
	// Close releases the store.
	Close() error
}
