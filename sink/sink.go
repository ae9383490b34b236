package sink

import (
	"context"
	"errors"
	"io"

	"github.com/streamd/streamd"
)

// Sink writes batches durably.
type Sink interface {
	// Write makes the rows of b durable under intent in. It returns only when
	// everything is durable (nil) or it gave up (error: nothing is committed
	// and the intent is redone). Write must be idempotent per intent. It may
	// move rows that the destination rejects for good (a mapping error, say)
	// into b.Dead with the reason, keeping b's counters reconciled.
	Write(ctx context.Context, in streamd.Intent, b *streamd.Batch) error
	// Close releases resources. Write is not called after Close.
	Close(ctx context.Context) error
}

// ErrNotExist is returned by ObjectStore.Get for a missing object.
var ErrNotExist = errors.New("object does not exist")

// ObjectStore is the small interface over a local directory or an S3 bucket
// prefix that file-writing sinks use. Names are slash-separated and relative
// to the store's root.
type ObjectStore interface {
	// Put writes the object name with the content of r. The object becomes
	// visible whole or not at all: a failed or cancelled Put leaves no
	// object (and no partial object) under name. Putting the same name again
	// replaces it.
	Put(ctx context.Context, name string, r io.Reader) error
	// Get opens the object name; ErrNotExist (checked with errors.Is) when
	// it is missing.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// List calls fn with the name of every object under prefix, in
	// lexical order.
	List(ctx context.Context, prefix string, fn func(name string) error) error
}
