package ingest

import (
	"context"

	"github.com/streamd/streamd"
)

// Chunk is a run of consecutive records of one lane, in position order.
type Chunk struct {
	Lane    string
	Records []streamd.Record
	// Header is the lane's CSV header line (nil for other formats). Every
	// chunk of a CSV lane carries it, so a lane resumed mid-file decodes.
	Header []byte
	// End marks that the lane has no more records (a file read to its end,
	// a closed shard). A chunk with End may carry records too.
	End bool
	// Revoked marks that the source no longer owns the lane (a Kafka
	// partition revoked in a rebalance, a shard lease lost). The chunk
	// carries no records. The pipeline finishes the lane's open batch
	// (flushes and commits it) or, if it cannot, abandons it uncommitted,
	// forgets the lane, and then closes Released. A source that must not
	// let go of the lane before that (Kafka's revoke callback) waits on
	// Released. A later chunk of the same lane starts it afresh, resuming
	// from the checkpoint store.
	Revoked  bool
	Released chan struct{}
	// Release, if set, is called once every record of the chunk has been
	// decoded (the decoded batch holds copies), so the source can reuse the
	// records' buffers. It may never be called (a chunk dropped on a fatal
	// error); a source must not depend on it for correctness.
	Release func()
}

// Resumer tells a source where each lane resumes. It is implemented by the
// pipeline on top of the checkpoint store.
type Resumer interface {
	// Resume returns the last committed position of lane; reading resumes
	// with the record after it. ok is false when nothing was committed, in
	// which case the lane starts at the source's configured start. When the
	// lane's first batch was never committed but its intent is open, and
	// positions are integers, Resume returns the position just before the
	// intent's first record (possibly -1), so that batch is redone whatever
	// the configured start; for sequence-number positions it returns the
	// intent's first position with Sub one less (-1 for a plain record),
	// meaning "resume at this sequence number, after sub-record Sub".
	Resume(ctx context.Context, lane string) (pos streamd.Position, ok bool, err error)
}

// Source reads lanes and sends their chunks to out.
//
// Run blocks until ctx is done (return nil: a stop is not an error) or, for
// a finite source, until every lane has ended (return nil after sending the
// last chunk). It returns an error only for a fatal condition. Run must not
// close out; the caller does when Run has returned. A Source starts its own
// goroutines only inside Run and waits for them before returning.
//
// Chunks of one lane are sent in position order and never concurrently;
// chunks of different lanes may interleave.
type Source interface {
	Run(ctx context.Context, resume Resumer, out chan<- Chunk) error
}

// Committer is implemented by sources that mirror commits upstream (Kafka
// group offsets). The pipeline calls Committed after the checkpoint store
// durably committed lane up to and including pos. It must not block for long
// and errors are the source's to log: the checkpoint store stays the source
// of truth.
type Committer interface {
	Committed(ctx context.Context, lane string, pos streamd.Position)
}
