package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/sink"
	"github.com/streamd/streamd/window"
)

// Processor turns a lane's raw records into a batch: decode, cast, computed
// columns and stateless operators. transform.Program implements it. Process
// is called concurrently from several goroutines.
type Processor interface {
	Process(lane string, header []byte, recs []streamd.Record) *streamd.Batch
	Schema() *streamd.Schema
}

// Recycler is implemented by a Processor that reuses the vectors of the
// batches it returned: the pipeline hands each decoded segment back once it
// has been appended to (copied into) the lane's open batch.
type Recycler interface {
	Recycle(b *streamd.Batch)
}

// Operator is a stateful, order-dependent step (dedup, rolling outlier
// statistics) that the pipeline runs on each lane's decoded segments in
// position order, after Processor.Process. Its per-lane state is saved with
// every commit and restored when the lane starts, so a redo decides exactly
// as the first attempt did. Calls for one lane never overlap; calls for
// different lanes may.
type Operator interface {
	// Restore sets the lane's state from what Snapshot returned for the
	// last committed batch; state is nil for a lane never committed.
	Restore(lane string, state []byte) error
	// Apply runs on the lane's next segment. It may remove rows, counting
	// each in b.Filtered, b.Deduplicated or b.Dead so b stays reconciled.
	Apply(lane string, b *streamd.Batch) error
	// Snapshot returns the lane's state as of the last Apply; it is
	// committed with the batch that ends there.
	Snapshot(lane string) ([]byte, error)
	// Forget drops the lane's state (the lane was revoked).
	Forget(lane string)
}

// Evolver is implemented by a Processor whose schema is not declared but
// inferred from the records at run time, growing as they bring new fields
// (transform.Evolver). Process decodes optimistically with the lane's
// current schema; the assembler then settles each decoded segment in
// position order, before the operators, so that the schema and rows do not
// depend on how records were cut into segments or raced through the decode
// workers. When a settled segment carries a newer schema than the open
// batch, the open batch is widened to it: a window still writes one file
// per partition, in the window's last schema. The lane's schema is saved
// with every commit, beside the operators' state, so a redo rebuilds the
// same schema.
type Evolver interface {
	// Settle returns the segment in the lane's settled schema, evolving
	// that schema with the segment's records.
	Settle(lane string, b *streamd.Batch) (*streamd.Batch, error)
	// Widen returns b's rows in s, a later schema of b's lane; b must not
	// be used after.
	Widen(b *streamd.Batch, s *streamd.Schema) (*streamd.Batch, error)
	// Restore, Snapshot and Forget are as for Operator.
	Restore(lane string, state []byte) error
	Snapshot(lane string) ([]byte, error)
	Forget(lane string)
}

// Config wires one pipeline.
type Config struct {
	// Name is the pipeline's name; it prefixes output names and checkpoints.
	Name      string
	Source    ingest.Source
	Processor Processor
	// Operator, if set, runs the stateful operators on each lane's
	// segments in order.
	Operator Operator
	// Sink receives the batch's rows; DeadLetter its dead letters. Both
	// must acknowledge before the lane is committed.
	Sink       sink.Sink
	DeadLetter sink.Sink
	Store      checkpoint.Store
	Window     window.Policy
	// Budget is the process-wide memory budget shared by every pipeline
	// (nil: unlimited). Lanes close batches early when it runs high and stop
	// reading while it is full.
	Budget *window.Budget
	// Workers is the number of decode goroutines (default GOMAXPROCS).
	Workers int
	// DrainTimeout bounds how long Run keeps flushing after ctx is done
	// (default 25s). What is not committed by then is abandoned and redone on
	// the next start.
	DrainTimeout time.Duration
	// FlushAttempts is how often a batch's intent → write → commit is tried
	// before the pipeline fails (default 6), with exponential backoff and
	// jitter from RetryBackoff (default 250ms) doubling up to 10s.
	FlushAttempts int
	RetryBackoff  time.Duration
	Logger        *slog.Logger
	// Observer, when set, is told of every committed batch (metrics).
	Observer Observer
}

// Observer is told about the pipeline's progress. Calls come from many
// goroutines and must not block.
type Observer interface {
	// Flushed is called after a batch was committed.
	Flushed(pipeline string, reason window.Reason, b *streamd.Batch, took time.Duration)
	// FlushFailed is called after a failed attempt at a batch.
	FlushFailed(pipeline, lane string, err error)
}

// ErrDrainTimeout is returned by Run when the drain deadline passed before
// everything read was committed.
var ErrDrainTimeout = errors.New("drain deadline passed with uncommitted batches (they are redone on the next start)")

// Stats are the pipeline's running totals. Read reconciles as
// Read == Written + Filtered + Deduplicated + DeadLettered for committed
// batches; InFlight counts records read but not yet committed.
type Stats struct {
	Read, Written, Filtered, Deduplicated, DeadLettered int64
	Batches, LanesEnded                                 int64
	Bytes                                               int64
}

// Pipeline runs one configured pipeline.
type Pipeline struct {
	cfg Config
	log *slog.Logger

	read, written, filtered, dedup, dead atomic.Int64
	batches, lanesEnded, bytes           atomic.Int64

	liveMu sync.Mutex
	live   map[string]*laneRun // running lanes, for LaneStats

	spares chan *streamd.Batch // committed batches whose vectors are reused
}

// LaneStat describes one running lane.
type LaneStat struct {
	Lane string
	// OldestUncommitted is when the oldest record read but not yet
	// committed arrived; zero when everything read is committed.
	OldestUncommitted time.Time
	// Committed is the lane's last committed position ("" if none yet).
	Committed string
	// Buffered is the bytes the lane holds in open and flushing batches.
	Buffered int64
}

// LaneStats returns the state of every running lane.
func (p *Pipeline) LaneStats() []LaneStat {
	p.liveMu.Lock()
	defer p.liveMu.Unlock()
	out := make([]LaneStat, 0, len(p.live))
	for _, l := range p.live {
		st := LaneStat{Lane: l.name, Buffered: l.openBytes.Load() + l.flushBytes.Load()}
		l.mu.Lock()
		if len(l.starts) > 0 {
			st.OldestUncommitted = l.starts[0]
		}
		st.Committed = l.committed
		l.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// New validates cfg. It does no I/O.
func New(cfg Config) (*Pipeline, error) {
	switch {
	case cfg.Name == "":
		return nil, errors.New("new pipeline: no name")
	case cfg.Source == nil, cfg.Processor == nil, cfg.Sink == nil, cfg.Store == nil:
		return nil, fmt.Errorf("new pipeline %q: source, processor, sink and store are required", cfg.Name)
	}
	if err := cfg.Window.Validate(); err != nil {
		return nil, fmt.Errorf("new pipeline %q: %w", cfg.Name, err)
	}
	cfg.Window = cfg.Window.WithDefaults()
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 25 * time.Second
	}
	if cfg.FlushAttempts <= 0 {
		cfg.FlushAttempts = 6
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 250 * time.Millisecond
	}
	if cfg.Budget == nil {
		cfg.Budget = window.NewBudget(0)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{cfg: cfg, log: log.With(slog.String("pipeline", cfg.Name)), live: map[string]*laneRun{},
		spares: make(chan *streamd.Batch, 1)}, nil
}

// Name returns the pipeline's name.
func (p *Pipeline) Name() string { return p.cfg.Name }

// Stats returns a snapshot of the running totals.
func (p *Pipeline) Stats() Stats {
	return Stats{
		Read: p.read.Load(), Written: p.written.Load(), Filtered: p.filtered.Load(),
		Deduplicated: p.dedup.Load(), DeadLettered: p.dead.Load(),
		Batches: p.batches.Load(), LanesEnded: p.lanesEnded.Load(), Bytes: p.bytes.Load(),
	}
}

// job is one segment of a lane to decode.
type job struct {
	lane   string
	header []byte
	recs   []streamd.Record
	res    chan *streamd.Batch // buffered 1
	done   func()              // called after Process; nil if nothing to release
}

// segment is what a lane's splitter hands its assembler, in order: a
// decoded batch to come (res), and/or the reason the open batch closes
// after it.
type segment struct {
	res   chan *streamd.Batch
	close window.Reason
	end   bool // the lane ended
}

// Run runs the pipeline until ctx is done (then drains: flushes open
// batches and commits them within DrainTimeout) or, for a finite source,
// until everything read is committed. It returns nil on a clean stop.
func (p *Pipeline) Run(ctx context.Context) error {
	// readCtx stops the source: on ctx done, or on a fatal error.
	readCtx, stopReading := context.WithCancelCause(ctx)
	defer stopReading(nil)
	// flushCtx outlives ctx by DrainTimeout so open batches can be committed.
	flushCtx, abandon := context.WithCancelCause(context.WithoutCancel(ctx))
	defer abandon(nil)
	finished := make(chan struct{})
	var watchers sync.WaitGroup
	watchers.Add(1)
	go func() {
		defer watchers.Done()
		select {
		case <-finished:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(p.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-finished:
		case <-t.C:
			abandon(ErrDrainTimeout)
		}
	}()
	defer func() { close(finished); watchers.Wait() }()

	var fatalOnce sync.Once
	var fatalErr error
	fail := func(err error) {
		fatalOnce.Do(func() {
			fatalErr = err
			stopReading(err)
		})
	}

	jobs := make(chan job)
	var workers sync.WaitGroup
	for i := 0; i < p.cfg.Workers; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range jobs {
				b := p.cfg.Processor.Process(j.lane, j.header, j.recs)
				if j.done != nil {
					j.done()
				}
				j.res <- b
			}
		}()
	}

	chunks := make(chan ingest.Chunk, 2)
	srcErr := make(chan error, 1)
	go func() {
		err := p.cfg.Source.Run(readCtx, resumer{p}, chunks)
		close(chunks)
		srcErr <- err
	}()

	lanes := map[string]*laneRun{}
	releasing := map[string]*laneRun{} // revoked or ended lanes still finishing
	var lanesWG sync.WaitGroup
	// retire stops a lane's goroutines once they have flushed what they
	// hold, then drops its state and closes released (if any).
	retire := func(l *laneRun, released chan struct{}) {
		close(l.in)
		delete(lanes, l.name)
		releasing[l.name] = l
		lanesWG.Add(1)
		go func() {
			defer lanesWG.Done()
			<-l.done
			p.forget(l.name)
			if released != nil {
				close(released)
			}
		}()
	}
	chunksSeen := 0
	for c := range chunks {
		if chunksSeen++; chunksSeen%1024 == 0 {
			// Forget lanes that finished retiring (a replay of many files
			// ends a lane per file).
			for name, old := range releasing {
				select {
				case <-old.done:
					delete(releasing, name)
				default:
				}
			}
		}
		l := lanes[c.Lane]
		if c.Revoked {
			if l == nil {
				if c.Released != nil {
					close(c.Released)
				}
				continue
			}
			retire(l, c.Released)
			continue
		}
		if l == nil {
			if old := releasing[c.Lane]; old != nil {
				<-old.done // never two runs of one lane at once
				delete(releasing, c.Lane)
			}
			st, err := p.cfg.Store.Load(flushCtx, p.cfg.Name, c.Lane)
			if err == nil {
				err = p.restore(c.Lane, st.OpState)
			}
			if err != nil {
				fail(fmt.Errorf("load lane %q: %w", c.Lane, err))
				continue // keep draining the source until it stops
			}
			l = p.startLane(flushCtx, readCtx.Done(), c.Lane, st, jobs, fail, &lanesWG)
			lanes[c.Lane] = l
		}
		l.in <- c
		if c.End {
			// A lane with no more records (a file read to its end, a closed
			// shard) keeps no goroutines nor operator state; should the
			// source send more for it, it starts again from its checkpoint.
			retire(l, nil)
		}
	}
	for _, l := range lanes {
		close(l.in)
	}
	lanesWG.Wait()
	close(jobs)
	workers.Wait()

	if err := <-srcErr; err != nil && !errors.Is(err, context.Canceled) {
		fail(fmt.Errorf("run source: %w", err))
	}
	if fatalErr != nil {
		return fmt.Errorf("pipeline %q: %w", p.cfg.Name, fatalErr)
	}
	if cause := context.Cause(flushCtx); cause != nil {
		return fmt.Errorf("pipeline %q: %w", p.cfg.Name, cause)
	}
	return nil
}

// resumer answers the source from the checkpoint store.
type resumer struct{ p *Pipeline }

func (r resumer) Resume(ctx context.Context, lane string) (streamd.Position, bool, error) {
	st, err := r.p.cfg.Store.Load(ctx, r.p.cfg.Name, lane)
	if err != nil {
		return streamd.Position{}, false, fmt.Errorf("resume lane %q: %w", lane, err)
	}
	if !st.HasCommit && st.Intent != nil {
		// The lane's first batch never committed: resume just before it so
		// a source whose start is "latest" still redoes it. Integer
		// positions (file offsets, Kafka offsets) step back by one; the
		// record there, if any, precedes the intent. Sequence positions
		// can't step back: Sub -1 on the intent's first sequence number
		// means "from that record on".
		from := st.Intent.From
		if from.Seq == "" {
			return streamd.Position{Offset: from.Offset - 1}, true, nil
		}
		return streamd.Position{Seq: from.Seq, Offset: from.Offset, Sub: from.Sub - 1}, true, nil
	}
	return st.Committed, st.HasCommit, nil
}

// laneRun is the state of one lane's three goroutines.
type laneRun struct {
	name string
	in   chan ingest.Chunk
	done chan struct{} // closed when all three have returned

	acct                  *window.Account
	openBytes, flushBytes atomic.Int64

	mu        sync.Mutex
	starts    []time.Time // arrival of the first record of each uncommitted batch
	committed string
}

// report tells the budget what the lane buffers.
func (l *laneRun) report() {
	open := l.openBytes.Load()
	l.acct.Set(open+l.flushBytes.Load(), open)
}

func (p *Pipeline) startLane(ctx context.Context, stop <-chan struct{}, name string, st checkpoint.State, jobs chan<- job, fail func(error), all *sync.WaitGroup) *laneRun {
	l := &laneRun{name: name, in: make(chan ingest.Chunk, 1), done: make(chan struct{}), acct: p.cfg.Budget.Account()}
	if st.HasCommit {
		l.committed = st.Committed.String()
	}
	p.liveMu.Lock()
	p.live[name] = l
	p.liveMu.Unlock()
	segs := make(chan segment, 2*p.cfg.Workers+2)
	type flush struct {
		b      *streamd.Batch
		reason window.Reason
		state  []byte
		size   int64 // bytes the batch counts against the budget
	}
	flushes := make(chan flush, 1)
	// wg counts the lane's three goroutines; all counts the watcher that
	// closes l.done after them.
	wg := &sync.WaitGroup{}
	wg.Add(3)
	all.Add(1)
	go func() {
		defer all.Done()
		wg.Wait()
		l.acct.Close()
		p.liveMu.Lock()
		if p.live[name] == l {
			delete(p.live, name)
		}
		p.liveMu.Unlock()
		close(l.done)
	}()

	// Splitter: cuts records into segments at window boundaries.
	go func() {
		defer wg.Done()
		defer close(segs)
		p.split(l, stop, st.Intent, jobs, segs)
	}()

	// Assembler: joins decoded segments, in order, into the open batch.
	go func() {
		defer wg.Done()
		defer close(flushes)
		var open *streamd.Batch
		failed := false
		ev, _ := p.cfg.Processor.(Evolver)
		for s := range segs {
			if s.res != nil {
				b := <-s.res
				if ev != nil && !failed {
					var err error
					if b, err = ev.Settle(name, b); err != nil {
						failed = true
						fail(fmt.Errorf("settle schema on lane %q: %w", name, err))
					}
				}
				if p.cfg.Operator != nil && !failed {
					if err := p.cfg.Operator.Apply(name, b); err != nil {
						failed = true
						fail(fmt.Errorf("apply operators on lane %q: %w", name, err))
					}
				}
				if failed {
					continue // a failed lane writes nothing more
				}
				if open == nil {
					open = p.newOpenBatch(name, b)
				} else if ev != nil && open.Schema != b.Schema {
					var err error
					if open, err = ev.Widen(open, b.Schema); err != nil {
						failed = true
						fail(fmt.Errorf("widen open batch of lane %q: %w", name, err))
						continue
					}
				}
				open.Append(b)
				if r, ok := p.cfg.Processor.(Recycler); ok {
					r.Recycle(b) // its rows are copied into the open batch
				}
				l.openBytes.Store(int64(open.MemSize()))
				l.report()
			}
			if s.close != "" && open != nil && open.Read > 0 && !failed {
				f := flush{b: open, reason: s.close}
				st, err := p.snapshot(name)
				if err != nil {
					failed = true
					fail(err)
					continue
				}
				f.state = st
				f.size = l.openBytes.Swap(0)
				l.flushBytes.Add(f.size)
				flushes <- f
				open = nil
			}
			if s.end {
				p.lanesEnded.Add(1)
			}
		}
	}()

	// Flusher: intent → write → commit, one batch at a time.
	go func() {
		defer wg.Done()
		failed := false
		for f := range flushes {
			if !failed {
				if err := p.flush(ctx, name, f.b, f.reason, f.state); errors.Is(err, checkpoint.ErrFenced) {
					// Another process owns the lane now (its lease expired
					// here): drop what this one holds; the owner redoes it.
					failed = true
					p.log.Warn("lane taken over by another process; abandoning its uncommitted batches",
						slog.String("lane", name), slog.String("error", err.Error()))
				} else if err != nil {
					failed = true
					fail(err)
				} else {
					l.mu.Lock()
					if len(l.starts) > 0 {
						l.starts = l.starts[1:]
					}
					l.committed = f.b.To.String()
					l.mu.Unlock()
					p.spareBatch(f.b)
				}
			}
			// A failed lane drains so its other goroutines can finish.
			l.flushBytes.Add(-f.size)
			l.report()
		}
	}()
	return l
}

// restore sets a starting lane's evolving schema and operator state from
// its committed state. With an Evolver the state is framed as
// uvarint(len(schema state)) · schema state · operator state; without one
// it is the operator state alone.
func (p *Pipeline) restore(lane string, state []byte) error {
	if ev, ok := p.cfg.Processor.(Evolver); ok {
		var evState []byte
		if len(state) > 0 {
			n, k := binary.Uvarint(state)
			if k <= 0 || uint64(len(state)-k) < n {
				return fmt.Errorf("restore lane %q: truncated schema state (%d bytes)", lane, len(state))
			}
			evState, state = state[k:k+int(n)], state[k+int(n):]
		}
		if err := ev.Restore(lane, evState); err != nil {
			return err
		}
	}
	if p.cfg.Operator != nil {
		return p.cfg.Operator.Restore(lane, state)
	}
	return nil
}

// snapshot returns the lane's state to commit (see restore).
func (p *Pipeline) snapshot(lane string) ([]byte, error) {
	var out []byte
	if ev, ok := p.cfg.Processor.(Evolver); ok {
		st, err := ev.Snapshot(lane)
		if err != nil {
			return nil, fmt.Errorf("snapshot schema of lane %q: %w", lane, err)
		}
		out = binary.AppendUvarint(out, uint64(len(st)))
		out = append(out, st...)
	}
	if p.cfg.Operator != nil {
		st, err := p.cfg.Operator.Snapshot(lane)
		if err != nil {
			return nil, fmt.Errorf("snapshot operators on lane %q: %w", lane, err)
		}
		out = append(out, st...)
	}
	return out, nil
}

// forget drops a revoked lane's schema and operator state.
func (p *Pipeline) forget(lane string) {
	if ev, ok := p.cfg.Processor.(Evolver); ok {
		ev.Forget(lane)
	}
	if p.cfg.Operator != nil {
		p.cfg.Operator.Forget(lane)
	}
}

// spareBatch keeps a committed batch's vectors for a later open batch of
// the same schema, so that each window does not allocate, zero and fault
// in a window's worth of fresh memory. At most cap(p.spares) batches are
// kept, each at most a sixteenth of the memory budget.
func (p *Pipeline) spareBatch(b *streamd.Batch) {
	if limit := p.cfg.Budget.Limit(); limit > 0 && int64(b.MemSize()) > limit/16 {
		return
	}
	b.Reset()
	select {
	case p.spares <- b:
	default:
	}
}

// newOpenBatch returns an empty batch sized, from its first segment first,
// for a full window, so that appending segments copies each value once.
func (p *Pipeline) newOpenBatch(lane string, first *streamd.Batch) *streamd.Batch {
	var b *streamd.Batch
	select {
	case b = <-p.spares:
	default:
	}
	if b != nil && b.Schema == first.Schema {
		b.Lane = lane
	} else {
		b = streamd.NewBatch(first.Schema, lane)
	}
	rows := p.cfg.Window.MaxRecords
	if first.Read > 0 && first.Bytes > 0 {
		// Rows that fit in max_bytes at this segment's bytes per record.
		if byBytes := int(int64(p.cfg.Window.MaxBytes) * int64(first.Read) / int64(first.Bytes)); byBytes < rows {
			rows = byBytes
		}
	}
	if n := first.Len(); n > 0 {
		// Reserve at most a sixteenth of what the memory budget has left:
		// with many lanes, reservations must not fill the budget by
		// themselves; a batch that outgrows it grows by appending.
		perRow := int64(first.MemSize()/n) + 1
		rows = int(min(int64(rows), p.cfg.Budget.Free()/16/perRow))
	}
	rows = min(rows, 1<<20) // a hint, not a limit: keep the up-front reservation bounded
	b.Reserve(rows+first.Len(), first.AvgBytesPerRow())
	return b
}

// split reads the lane's chunks and emits decode jobs and window closes.
func (p *Pipeline) split(l *laneRun, stop <-chan struct{}, redo *streamd.Intent, jobs chan<- job, segs chan<- segment) {
	w := window.NewOpen(p.cfg.Window)
	var timer *time.Timer
	var timerC <-chan time.Time
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
	}
	defer stopTimer()
	closeWindow := func(r window.Reason) {
		segs <- segment{close: r}
		w.Reset()
		l.acct.SetClosable(false)
		stopTimer()
	}
	// memoryFlush closes the open batch early when the budget asks, unless
	// it is a redo, whose range is fixed.
	memoryFlush := func() {
		if !w.Empty() && redo == nil {
			closeWindow(window.ReasonMemory)
		}
	}
	// waitForMemory holds the lane while the budget is full; stopping the
	// pipeline lifts the hold so it can drain.
	waitForMemory := func() {
		for p.cfg.Budget.Full() {
			select {
			case <-l.acct.FlushRequested():
				memoryFlush()
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	for {
		select {
		case <-l.acct.FlushRequested():
			memoryFlush()
		case c, ok := <-l.in:
			if !ok {
				if !w.Empty() {
					closeWindow(window.ReasonShutdown)
				}
				return
			}
			recs := c.Records
			release := releaser(c)
			for len(recs) > 0 {
				waitForMemory()
				now := time.Now()
				if w.Empty() {
					l.mu.Lock()
					l.starts = append(l.starts, now)
					l.mu.Unlock()
					if redo == nil {
						l.acct.SetClosable(true) // a redo batch's range is fixed
					}
				}
				n, reason := 0, window.Reason("")
				for n < len(recs) {
					r, full := w.Add(len(recs[n].Data), now)
					n++
					if redo != nil {
						if cmp := recs[n-1].Pos.Compare(redo.To); cmp >= 0 {
							if cmp > 0 {
								p.log.Error("redo range ends at a position the source did not deliver; the batch closes at the next record",
									slog.String("lane", l.name), slog.String("intent_to", redo.To.String()), slog.String("position", recs[n-1].Pos.String()))
							}
							redo, reason = nil, window.ReasonRedo
							break
						}
						continue // a redo batch closes only at the intent's end
					}
					if full {
						reason = r
						break
					}
				}
				j := job{lane: l.name, header: c.Header, recs: recs[:n], res: make(chan *streamd.Batch, 1), done: release.add()}
				jobs <- j
				segs <- segment{res: j.res}
				recs = recs[n:]
				if reason != "" {
					closeWindow(reason)
				} else if timer == nil {
					if d, ok := w.Deadline(); ok && redo == nil {
						timer = time.NewTimer(time.Until(d))
						timerC = timer.C
					}
				}
			}
			release.seal()
			if c.End {
				segs <- segment{close: window.ReasonEnd, end: true}
				w.Reset()
				l.acct.SetClosable(false)
				stopTimer()
			}
		case <-timerC:
			timer, timerC = nil, nil
			if !w.Empty() {
				closeWindow(window.ReasonAge)
			}
		}
	}
}

// flush carries out intent → write → commit for one batch, retrying with
// backoff.
func (p *Pipeline) flush(ctx context.Context, lane string, b *streamd.Batch, reason window.Reason, state []byte) error {
	in := streamd.Intent{Pipeline: p.cfg.Name, Lane: lane, From: b.From, To: b.To}
	if !b.Accounted() {
		return fmt.Errorf("flush lane %q [%s, %s]: batch does not reconcile: read %d != rows %d + filtered %d + deduplicated %d + dead %d",
			lane, in.From, in.To, b.Read, b.Len(), b.Filtered, b.Deduplicated, len(b.Dead))
	}
	start := time.Now()
	backoff := p.cfg.RetryBackoff
	var err error
	for attempt := 1; ; attempt++ {
		if err = p.flushOnce(ctx, in, b, state); err == nil {
			break
		}
		if p.cfg.Observer != nil {
			p.cfg.Observer.FlushFailed(p.cfg.Name, lane, err)
		}
		if ctx.Err() != nil || attempt >= p.cfg.FlushAttempts || errors.Is(err, checkpoint.ErrFenced) {
			return fmt.Errorf("flush lane %q [%s, %s] after %d attempts: %w", lane, in.From, in.To, attempt, err)
		}
		p.log.Warn("flush failed; retrying", slog.String("lane", lane), slog.Int("attempt", attempt),
			slog.Duration("backoff", backoff), slog.String("error", err.Error()))
		if !sleep(ctx, jitter(backoff)) {
			return fmt.Errorf("flush lane %q [%s, %s]: %w", lane, in.From, in.To, context.Cause(ctx))
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	if c, ok := p.cfg.Source.(ingest.Committer); ok {
		c.Committed(ctx, lane, in.To)
	}
	p.read.Add(int64(b.Read))
	p.written.Add(int64(b.Len()))
	p.filtered.Add(int64(b.Filtered))
	p.dedup.Add(int64(b.Deduplicated))
	p.dead.Add(int64(len(b.Dead)))
	p.bytes.Add(int64(b.Bytes))
	p.batches.Add(1)
	if p.cfg.Observer != nil {
		p.cfg.Observer.Flushed(p.cfg.Name, reason, b, time.Since(start))
	}
	p.log.Debug("batch committed", slog.String("lane", lane), slog.String("from", in.From.String()),
		slog.String("to", in.To.String()), slog.Int("rows", b.Len()), slog.Int("dead", len(b.Dead)), slog.String("reason", string(reason)))
	return nil
}

func (p *Pipeline) flushOnce(ctx context.Context, in streamd.Intent, b *streamd.Batch, state []byte) error {
	if err := p.cfg.Store.PutIntent(ctx, in); err != nil {
		return err
	}
	// The sink may move rows it rejects for good into b.Dead, so the dead
	// letter is written after it. A retried attempt starts from the batch as
	// the sink left it; sinks keep that idempotent.
	if err := p.cfg.Sink.Write(ctx, in, b); err != nil {
		return fmt.Errorf("write sink: %w", err)
	}
	if p.cfg.DeadLetter != nil {
		if err := p.cfg.DeadLetter.Write(ctx, in, b); err != nil {
			return fmt.Errorf("write dead letter: %w", err)
		}
	}
	if err := p.cfg.Store.Commit(ctx, in, state); err != nil {
		return err
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// jitter returns a duration in [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand64()%uint64(d/2+1))
}

// chunkRelease calls a chunk's Release once every job cut from it is done.
type chunkRelease struct {
	fn      func()
	pending atomic.Int64 // jobs not done, plus one until seal
}

func releaser(c ingest.Chunk) *chunkRelease {
	r := &chunkRelease{fn: c.Release}
	r.pending.Store(1)
	return r
}

// add counts one more job and returns its done func (nil when the chunk
// has no Release).
func (r *chunkRelease) add() func() {
	if r.fn == nil {
		return nil
	}
	r.pending.Add(1)
	return r.done
}

// seal marks that no more jobs are cut from the chunk.
func (r *chunkRelease) seal() {
	if r.fn != nil {
		r.done()
	}
}

func (r *chunkRelease) done() {
	if r.pending.Add(-1) == 0 {
		r.fn()
	}
}
