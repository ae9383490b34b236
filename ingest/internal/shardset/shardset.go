package shardset

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint/lease"
	"github.com/streamd/streamd/ingest"
)

// Leases is the part of lease.Manager a Set uses.
type Leases interface {
	// Tick renews, takes and gives up leases; see lease.Manager.
	Tick(ctx context.Context) (lease.Changes, error)
	// Held returns the shards held.
	Held() []string
	// Finish marks a held, closed and fully committed shard finished.
	Finish(ctx context.Context, shard string) error
	// Release gives up a held lease.
	Release(ctx context.Context, shard string) error
	// Interval is how often Tick is to be called.
	Interval() time.Duration
}

// Config is what a Set needs from its source. Stopped, Finished and Held
// may be nil; everything else is required.
type Config struct {
	// Leases shares the shards with other workers (a lease.Manager).
	Leases Leases
	// Log receives shard changes and errors.
	Log *slog.Logger
	// List lists the stream's shards and syncs them to Leases. Run calls
	// it at once, every ListInterval and after a shard finished.
	List func(ctx context.Context) error
	// ListInterval is the time between listings.
	ListInterval time.Duration
	// ListRetry returns the wait before listing again after a failure.
	ListRetry func() time.Duration
	// ListFatal, given a failed listing's error and whether a listing
	// succeeded before, returns the error Run stops with, or nil to retry.
	ListFatal func(err error, listed bool) error
	// Read reads one leased shard, in its own goroutine, from where resume
	// says, sending its chunks to out, until ctx is done or the shard was
	// read to its end (Reader.Sent with end). An error, unless ctx ended,
	// stops Run.
	Read func(ctx context.Context, r *Reader, resume ingest.Resumer, out chan<- ingest.Chunk) error
	// ReadFailed wraps a reader's error for Run's caller.
	ReadFailed func(shard string, err error) error
	// Stopped is called once a shard's reader stopped here for good: the
	// lease was lost, handed over or finished, or the Set shut down.
	Stopped func(shard string)
	// Finished is called once a shard's lease was finished.
	Finished func(shard string)
	// Held is told the number of leases held after each lease round.
	Held func(n int)
}

// Set runs the readers of the shards its worker holds leases on.
type Set struct {
	cfg  Config
	wake chan struct{}

	mu      sync.Mutex
	readers map[string]*Reader
	// afterStop holds shards whose reader stopped (at shutdown, or handing
	// the shard over) with records not yet committed: the lease is
	// released once the pipeline committed them (Committed), or by
	// shutdown when nothing is pending.
	afterStop map[string]*Reader
}

// Reader is one leased shard's reader.
type Reader struct {
	// Shard is the shard id, which is also the lane name.
	Shard string

	set    *Set
	cancel context.CancelFunc
	done   chan struct{}

	// Guarded by set.mu.
	sent      streamd.Position // last position sent
	hasSent   bool
	committed streamd.Position
	hasCommit bool
	ended     bool // the shard is closed and every record was sent
	finishing bool
}

// New returns a Set. It does no I/O.
func New(cfg Config) *Set {
	return &Set{cfg: cfg, wake: make(chan struct{}, 1), readers: map[string]*Reader{}, afterStop: map[string]*Reader{}}
}

// poke asks Run for a listing and a lease round now.
func (s *Set) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run lists shards, runs lease rounds and reads each leased shard in its
// own goroutine (Config.Read), sending chunks to out, until ctx is done
// (nil) or a listing or a reader fails for good (that error). Before it
// returns it stops every reader, releases the leases with nothing pending
// (the others once Committed says their records are, or by expiry) and
// waits for the goroutines it started.
func (s *Set) Run(ctx context.Context, resume ingest.Resumer, out chan<- ingest.Chunk) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()

	list := time.NewTimer(0)
	defer list.Stop()
	tick := time.NewTimer(0)
	defer tick.Stop()
	listed := false
	fail := make(chan error, 1)
	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			return nil
		case err := <-fail:
			s.shutdown()
			return err
		case <-list.C:
			if err := s.cfg.List(runCtx); err != nil {
				if runCtx.Err() != nil {
					continue
				}
				if fatal := s.cfg.ListFatal(err, listed); fatal != nil {
					s.shutdown()
					return fatal
				}
				s.cfg.Log.Warn("listing shards failed; retrying", slog.String("error", err.Error()))
				list.Reset(s.cfg.ListRetry())
				continue
			}
			listed = true
			list.Reset(s.cfg.ListInterval)
		case <-s.wake:
			list.Reset(0)
			tick.Reset(0)
		case <-tick.C:
			tick.Reset(s.cfg.Leases.Interval())
			if !listed {
				continue
			}
			ch, err := s.cfg.Leases.Tick(runCtx)
			if err != nil && runCtx.Err() == nil {
				s.cfg.Log.Warn("lease round failed", slog.String("error", err.Error()))
			}
			for _, id := range ch.Lost {
				s.lose(runCtx, id, out, &wg)
			}
			for _, id := range ch.Yield {
				s.yield(runCtx, id, out, &wg)
			}
			for _, id := range ch.Gained {
				s.start(runCtx, id, resume, out, &wg, fail)
			}
			if s.cfg.Held != nil {
				s.cfg.Held(len(s.cfg.Leases.Held()))
			}
		}
	}
}

// pending reports whether records were sent and not committed.
func (r *Reader) pending() bool {
	return r.hasSent && (!r.hasCommit || r.committed.Compare(r.sent) < 0)
}

// Resumed records that the shard resumes after pos, which the pipeline
// has committed. Read calls it before sending anything.
func (r *Reader) Resumed(pos streamd.Position) {
	r.set.mu.Lock()
	r.committed, r.hasCommit = pos, true
	r.set.mu.Unlock()
}

// Sent records that a chunk of the shard's records was handed to the
// pipeline; end says the shard is closed and this was the end of it. A
// closed shard with nothing left to commit is finished at once.
func (r *Reader) Sent(ctx context.Context, recs []streamd.Record, end bool) {
	s := r.set
	s.mu.Lock()
	if len(recs) > 0 {
		r.sent, r.hasSent = recs[len(recs)-1].Pos, true
	}
	finish := false
	if end {
		r.ended = true
		finish = !r.pending() && !r.finishing
		r.finishing = r.finishing || finish
	}
	s.mu.Unlock()
	if finish {
		s.finish(ctx, r)
	}
}

// start begins reading a newly leased shard.
func (s *Set) start(ctx context.Context, shard string, resume ingest.Resumer, out chan<- ingest.Chunk, wg *sync.WaitGroup, fail chan<- error) {
	s.mu.Lock()
	if _, ok := s.readers[shard]; ok {
		s.mu.Unlock()
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &Reader{Shard: shard, set: s, cancel: cancel, done: make(chan struct{})}
	s.readers[shard] = r
	delete(s.afterStop, shard)
	s.mu.Unlock()
	s.cfg.Log.Info("reading shard", slog.String("shard", shard))
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(r.done)
		if err := s.cfg.Read(rctx, r, resume, out); err != nil && rctx.Err() == nil {
			select {
			case fail <- s.cfg.ReadFailed(shard, err):
			default:
			}
		}
	}()
}

// stopped tells the source that a shard's reader stopped for good.
func (s *Set) stopped(shard string) {
	if s.cfg.Stopped != nil {
		s.cfg.Stopped(shard)
	}
}

// stopReader cancels a shard's reader and waits for it; it returns the
// reader (nil if none).
func (s *Set) stopReader(shard string) *Reader {
	s.mu.Lock()
	r := s.readers[shard]
	delete(s.readers, shard)
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	r.cancel()
	<-r.done
	s.stopped(shard)
	return r
}

// lose stops a shard whose lease was taken by another worker and tells the
// pipeline (its pending commit will be fenced).
func (s *Set) lose(ctx context.Context, shard string, out chan<- ingest.Chunk, wg *sync.WaitGroup) {
	s.stopReader(shard)
	s.cfg.Log.Warn("shard lease lost; stopped reading", slog.String("shard", shard))
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case out <- ingest.Chunk{Lane: shard, Revoked: true}:
		case <-ctx.Done():
		}
	}()
}

// yield hands a shard over to a worker that asked for it: stop reading,
// let the pipeline finish (flush and commit) the lane, then release.
func (s *Set) yield(ctx context.Context, shard string, out chan<- ingest.Chunk, wg *sync.WaitGroup) {
	r := s.stopReader(shard)
	if r == nil {
		return
	}
	s.mu.Lock()
	s.afterStop[shard] = r // released below, or by shutdown / Committed
	s.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		released := make(chan struct{})
		select {
		case out <- ingest.Chunk{Lane: shard, Revoked: true, Released: released}:
		case <-ctx.Done():
			return
		}
		select {
		case <-released:
		case <-ctx.Done():
			return
		}
		s.mu.Lock()
		mine := s.afterStop[shard] == r
		if mine {
			delete(s.afterStop, shard)
		}
		s.mu.Unlock()
		if !mine {
			return
		}
		if err := s.cfg.Leases.Release(ctx, shard); err != nil {
			s.cfg.Log.Warn("release shard lease", slog.String("shard", shard), slog.String("error", err.Error()))
			return
		}
		s.cfg.Log.Info("handed shard over", slog.String("shard", shard))
	}()
}

// shutdown stops every reader. Leases of shards with nothing pending are
// released now; the others when the pipeline's drain commits them
// (Committed), or, if it never does, by expiry.
func (s *Set) shutdown() {
	s.mu.Lock()
	stopping := make([]*Reader, 0, len(s.readers)+len(s.afterStop))
	for _, r := range s.afterStop { // handing over: already stopped
		stopping = append(stopping, r)
	}
	for id, r := range s.readers {
		delete(s.readers, id)
		s.afterStop[id] = r
		stopping = append(stopping, r)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range stopping {
		r.cancel()
		<-r.done
		s.stopped(r.Shard)
		s.mu.Lock()
		release := !r.pending() && !r.finishing && s.afterStop[r.Shard] == r
		if release {
			delete(s.afterStop, r.Shard)
		}
		s.mu.Unlock()
		if release {
			if err := s.cfg.Leases.Release(ctx, r.Shard); err != nil {
				s.cfg.Log.Warn("release shard lease", slog.String("shard", r.Shard), slog.String("error", err.Error()))
			}
		}
	}
}

// Committed records that the pipeline durably committed lane up to pos
// (the source's ingest.Committer calls it). It finishes a closed shard
// whose last record is committed, so its children may start, and releases
// the lease of a shard stopped at shutdown or handed over once it is
// committed.
func (s *Set) Committed(ctx context.Context, lane string, pos streamd.Position) {
	s.mu.Lock()
	r := s.readers[lane]
	stopped := false
	if r == nil {
		r, stopped = s.afterStop[lane], true
	}
	if r == nil {
		s.mu.Unlock()
		return
	}
	if !r.hasCommit || r.committed.Compare(pos) < 0 {
		r.committed, r.hasCommit = pos, true
	}
	done := !r.pending()
	finish := done && r.ended && !r.finishing
	if finish {
		r.finishing = true
	}
	release := false
	if stopped && done && !finish {
		select {
		case <-r.done: // the reader can send nothing more
			delete(s.afterStop, lane)
			release = true
		default: // shutdown checks again once the reader has stopped
		}
	}
	s.mu.Unlock()
	switch {
	case finish:
		s.finish(ctx, r)
	case release:
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.cfg.Leases.Release(ctx, lane); err != nil {
			s.cfg.Log.Warn("release shard lease after drain", slog.String("shard", lane), slog.String("error", err.Error()))
		}
	}
}

// finish marks a closed, fully committed shard finished so its children
// may start, and wakes Run to list and lease them.
func (s *Set) finish(ctx context.Context, r *Reader) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.cfg.Leases.Finish(ctx, r.Shard); err != nil {
		s.cfg.Log.Warn("finish shard lease", slog.String("shard", r.Shard), slog.String("error", err.Error()))
		s.mu.Lock()
		r.finishing = false
		s.mu.Unlock()
		return
	}
	s.cfg.Log.Info("shard finished", slog.String("shard", r.Shard))
	s.mu.Lock()
	if s.readers[r.Shard] == r {
		delete(s.readers, r.Shard)
	}
	delete(s.afterStop, r.Shard)
	s.mu.Unlock()
	s.stopped(r.Shard)
	if s.cfg.Finished != nil {
		s.cfg.Finished(r.Shard)
	}
	s.poke()
}
