package kafka

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
)

// Source consumes Kafka topics as a member of a consumer group. Each
// assigned topic-partition is a lane named "topic/partition" whose positions
// are offsets. It implements ingest.Source and ingest.Committer. Run it once.
type Source struct {
	cfg Config
	log *slog.Logger

	ran atomic.Bool
	mu  sync.Mutex
	run *runner // the current Run, for Committed
}

// Compile-time checks of the contracts.
var (
	_ ingest.Source    = (*Source)(nil)
	_ ingest.Committer = (*Source)(nil)
)

// New validates cfg and returns a source. It does no I/O: certificate
// files, AWS credentials and brokers are first touched by Run.
func New(cfg Config) (*Source, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Source{cfg: c, log: c.Logger.With(slog.String("source", "kafka"), slog.String("group", c.Group))}, nil
}

// LaneName returns the lane of a topic-partition: "topic/partition".
func LaneName(topic string, partition int32) string {
	return topic + "/" + strconv.Itoa(int(partition))
}

// ParseLane splits a lane name made by LaneName.
func ParseLane(lane string) (topic string, partition int32, ok bool) {
	i := strings.LastIndexByte(lane, '/')
	if i <= 0 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(lane[i+1:], 10, 32)
	if err != nil || p < 0 {
		return "", 0, false
	}
	return lane[:i], int32(p), true
}

// Committed implements ingest.Committer: the checkpoint store durably
// committed lane up to pos, so the group offset may move to pos+1. Commits
// are coalesced and sent every CommitInterval, after a revoke's handshake
// and at shutdown; the group offset therefore never runs ahead of the
// store. A lane this member no longer owns is ignored.
func (s *Source) Committed(_ context.Context, lane string, pos streamd.Position) {
	s.mu.Lock()
	r := s.run
	s.mu.Unlock()
	if r != nil {
		r.committed(lane, pos)
	}
}

// ErrAlreadyRan is returned by a second call of Run.
var ErrAlreadyRan = errors.New("kafka source already ran")

// Run implements ingest.Source. It joins the group and sends each owned
// partition's records, in offset order, as chunks of its lane. Where a
// partition starts is decided when it is assigned: after the checkpoint
// store's position (resume.Resume), else the group's committed offset,
// else Start.
//
// When partitions are revoked, Run sends a Revoked chunk per partition and
// lets the rebalance go on only once the pipeline has released them (or
// RevokeTimeout passed), then commits their group offsets. When ctx is
// done, it does the same for every owned partition (bounded by
// ShutdownTimeout), commits the group offsets synchronously, leaves the
// group and closes the client before returning nil.
//
// Record content never fails Run: a record is handed on as it is and the
// pipeline dead-letters what it cannot decode. Run fails for bad
// addresses, certificates or credentials, authorization errors and a
// failing checkpoint store.
func (s *Source) Run(ctx context.Context, resume ingest.Resumer, out chan<- ingest.Chunk) error {
	if !s.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRan
	}
	m, err := newMetrics(s.cfg.Registerer, s.cfg.Pipeline)
	if err != nil {
		return fmt.Errorf("run kafka source: %w", err)
	}
	r := &runner{
		cfg: s.cfg, log: s.log, resume: resume, out: out, m: m,
		lanes: map[string]*laneState{}, caughtUp: make(chan struct{}, 1),
		q: newFetchQueue(s.cfg.MaxBufferedBytes / 8),
	}
	opts, err := s.clientOpts(ctx, r)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("run kafka source: %w", err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("run kafka source: new client: %w", err)
	}
	r.cl = cl
	s.mu.Lock()
	s.run = r
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.run = nil
		s.mu.Unlock()
		cl.Close() // leaves the group; our revoke callback is a no-op by now
	}()

	pctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	err = cl.Ping(pctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("run kafka source: connect to brokers %s: %w", strings.Join(s.cfg.Brokers, ","), err)
	}
	s.log.Info("kafka source started", slog.Any("brokers", s.cfg.Brokers), slog.Any("topics", s.cfg.Topics),
		slog.String("topic_regex", s.cfg.TopicRegex), slog.String("start", s.cfg.Start))

	commitCtx, stopCommits := context.WithCancel(context.WithoutCancel(ctx))
	var commits sync.WaitGroup
	commits.Add(1)
	go func() {
		defer commits.Done()
		r.commitLoop(commitCtx)
	}()

	runErr := r.poll(ctx)

	stopCommits()
	commits.Wait()
	r.shutdown()
	if runErr != nil {
		return fmt.Errorf("run kafka source: %w", runErr)
	}
	return nil
}

// clientOpts builds the franz-go options; it reads TLS files and resolves
// AWS credentials, so it runs inside Run.
func (s *Source) clientOpts(ctx context.Context, r *runner) ([]kgo.Opt, error) {
	c := s.cfg
	start := kgo.NewOffset().AtStart()
	if c.Start == StartLatest {
		start = kgo.NewOffset().AtEnd()
	}
	// An eighth of the budget per fetch (at most two in flight or
	// buffered in the client), capped at maxFetchBytes; the
	// fetch-ahead queue (runner.q) gets another eighth.
	fetchBytes := int32(min(c.MaxBufferedBytes/8, maxFetchBytes))
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.ConsumerGroup(c.Group),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(c.SessionTimeout),
		kgo.RebalanceTimeout(c.RebalanceTimeout),
		// A third of the session, as Kafka recommends, and at most the
		// client default of 3s, so a member learns of a rebalance well
		// within its session.
		kgo.HeartbeatInterval(min(3*time.Second, c.SessionTimeout/3)),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.AdjustFetchOffsetsFn(r.adjust),
		kgo.OnPartitionsRevoked(r.revoked),
		kgo.OnPartitionsLost(r.lost),
		kgo.ConsumeStartOffset(start),
		kgo.ConsumeResetOffset(start),
		kgo.FetchMaxBytes(fetchBytes),
		kgo.FetchMaxPartitionBytes(max(fetchBytes/4, 1)),
		kgo.MaxConcurrentFetches(2),
		kgo.FetchMaxWait(c.FetchMaxWait),
		kgo.WithLogger(kgoLogger{s.log}),
		kgo.WithPools(&recordSlabs{}),
	}
	if c.TopicRegex != "" {
		opts = append(opts, kgo.ConsumeRegex(), kgo.ConsumeTopics("^(?:"+c.TopicRegex+")$"))
	} else {
		opts = append(opts, kgo.ConsumeTopics(c.Topics...))
	}
	if c.ReadUncommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	} else {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	if c.TLS != nil {
		tc, err := buildTLS(c.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASL != nil {
		mech, err := buildSASL(ctx, c)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(mech))
	}
	if h := r.m.kprom(c.Pipeline); h != nil {
		opts = append(opts, kgo.WithHooks(h))
	}
	return opts, nil
}

// laneState is what the runner knows of one topic-partition.
type laneState struct {
	topic     string
	partition int32
	owned     bool
	// next is the offset to commit to the group: the last durably
	// committed offset + 1, or where the partition resumed; -1 if unknown.
	next    int64
	pending bool  // next is not yet committed to the group
	hwm     int64 // last fetch high watermark (or last stable offset), -1 if none
	// epoch counts the partition's releases: records polled under an
	// older epoch were revoked (or lost) before they were sent.
	epoch uint64
}

// runner is the state of one Run.
type runner struct {
	cfg    Config
	log    *slog.Logger
	cl     *kgo.Client
	resume ingest.Resumer
	out    chan<- ingest.Chunk
	m      *metrics
	q      *fetchQueue // polled records on their way to out

	// handshakeMu serialises revoke handshakes: the group's callbacks and
	// the shutdown.
	handshakeMu sync.Mutex
	// commitMu serialises group offset commits, so a commit that a revoke
	// waits for is never overtaken by an older one.
	commitMu sync.Mutex
	// sendMu is held while records of a lane are checked and sent, and
	// while lanes are released, so no record chunk follows its lane's
	// Revoked chunk.
	sendMu sync.Mutex

	// caughtUp wakes the commit loop early (buffered 1): a lane's durable
	// position reached its high watermark, so its group offset is
	// committed at once instead of at the next CommitInterval tick.
	caughtUp chan struct{}

	mu      sync.Mutex // guards the fields below
	lanes   map[string]*laneState
	closing bool // the shutdown handshake is done: send nothing more
	fatal   error
}

func (r *runner) setFatal(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fatal == nil {
		r.fatal = err
	}
}

func (r *runner) fatalErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal
}

// adjust runs when partitions are assigned, after the group's committed
// offsets were fetched and before fetching starts: each partition the
// checkpoint store has a position for starts right after it; the others
// keep the group offset, or Start when there is none.
func (r *runner) adjust(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, parts := range offsets {
		for p, off := range parts {
			lane := LaneName(topic, p)
			pos, ok, err := r.resumeLane(ctx, lane)
			if err != nil {
				if ctx.Err() == nil {
					r.setFatal(err)
				}
				return nil, err
			}
			next := int64(-1)
			src := "start"
			if ok {
				next = pos.Offset + 1
				parts[p] = kgo.NewOffset().At(next).WithEpoch(-1)
				src = "checkpoint"
			} else if eo := off.EpochOffset(); eo.Offset >= 0 {
				next = eo.Offset
				src = "group offset"
			}
			r.mu.Lock()
			st := r.lanes[lane]
			if st == nil {
				st = &laneState{topic: topic, partition: p}
				r.lanes[lane] = st
			}
			st.owned, st.next, st.pending, st.hwm = true, next, false, -1
			r.mu.Unlock()
			r.log.Info("partition assigned", slog.String("lane", lane), slog.String("from", src), slog.Int64("offset", next))
		}
	}
	return offsets, nil
}

// resumeLane asks the checkpoint store, retrying briefly.
func (r *runner) resumeLane(ctx context.Context, lane string) (streamd.Position, bool, error) {
	var err error
	backoff := 100 * time.Millisecond
	for attempt := 1; attempt <= 4; attempt++ {
		var pos streamd.Position
		var ok bool
		if pos, ok, err = r.resume.Resume(ctx, lane); err == nil {
			if ok && pos.Seq != "" {
				return pos, false, fmt.Errorf("resume lane %q: checkpoint %s is not a Kafka offset", lane, pos)
			}
			return pos, ok, nil
		}
		r.log.Warn("resume failed; retrying", slog.String("lane", lane), slog.Int("attempt", attempt), slog.String("error", err.Error()))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return streamd.Position{}, false, ctx.Err()
		case <-t.C:
		}
		backoff *= 2
	}
	return streamd.Position{}, false, fmt.Errorf("resume lane %q: %w", lane, err)
}

// revoked is the group's OnPartitionsRevoked callback.
func (r *runner) revoked(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	r.handshake(parts, r.cfg.RevokeTimeout, true, "revoked")
}

// lost is the group's OnPartitionsLost callback: another member may own
// the partitions already, so the wait is short and nothing is committed.
func (r *runner) lost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	r.handshake(parts, r.cfg.LostTimeout, false, "lost")
}

// handshake tells the pipeline that parts are no longer this member's
// (a Revoked chunk per lane), waits until it released them or timeout
// passed, and then, if commit, commits their final group offsets.
func (r *runner) handshake(parts map[string][]int32, timeout time.Duration, commit bool, why string) {
	var lanes []string
	for topic, ps := range parts {
		for _, p := range ps {
			lanes = append(lanes, LaneName(topic, p))
		}
	}
	if len(lanes) == 0 {
		return
	}
	r.handshakeMu.Lock()
	defer r.handshakeMu.Unlock()
	r.mu.Lock()
	closing := r.closing
	r.mu.Unlock()
	if closing {
		return
	}
	r.releaseLanes(lanes, timeout, commit, why)
}

// releaseLanes sends the Revoked chunks and waits; the caller holds
// handshakeMu.
func (r *runner) releaseLanes(lanes []string, timeout time.Duration, commit bool, why string) {
	start := time.Now()
	released := make([]chan struct{}, len(lanes))
	r.sendMu.Lock()
	r.mu.Lock()
	for _, lane := range lanes {
		if st := r.lanes[lane]; st != nil {
			st.epoch++ // what is polled but not sent is dropped
		}
	}
	r.mu.Unlock()
	for i, lane := range lanes {
		released[i] = make(chan struct{})
		// A plain send: the pipeline reads chunks until Run returns, and
		// Run waits for this handshake before it returns.
		r.out <- ingest.Chunk{Lane: lane, Revoked: true, Released: released[i]}
	}
	r.sendMu.Unlock()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var late []string
	for i, ch := range released {
		select {
		case <-ch:
		case <-deadline.C:
			late = append(late, lanes[i:]...)
			goto waited
		}
	}
waited:
	if len(late) > 0 {
		// Their open batches may still commit; the next owner redoes or
		// skips them by the checkpoint store, and output names are
		// deterministic, so nothing is duplicated.
		r.log.Warn("pipeline did not release partitions in time; their open batches are abandoned to the next owner",
			slog.String("why", why), slog.Any("lanes", late), slog.Duration("timeout", timeout))
	}
	if commit {
		set := make(map[string]bool, len(lanes))
		for _, l := range lanes {
			set[l] = true
		}
		if err := r.commitPending(func(lane string) bool { return set[lane] }); err != nil {
			r.log.Warn("commit group offsets of released partitions", slog.String("error", err.Error()))
		}
	}
	r.mu.Lock()
	for _, lane := range lanes {
		if st := r.lanes[lane]; st != nil {
			st.owned, st.pending = false, false
			r.m.dropLag(st.topic, st.partition)
		}
	}
	r.mu.Unlock()
	r.log.Info("partitions released", slog.String("why", why), slog.Any("lanes", lanes), slog.Duration("took", time.Since(start)))
}

// committed records a durable commit of lane up to pos.
func (r *runner) committed(lane string, pos streamd.Position) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.lanes[lane]
	if st == nil || !st.owned || r.closing {
		return
	}
	if n := pos.Offset + 1; n > st.next {
		st.next, st.pending = n, true
	}
	if st.hwm >= 0 {
		r.m.setLag(st.topic, st.partition, st.hwm-st.next)
		if st.pending && st.next >= st.hwm {
			// Caught up: nothing more is coming soon, so waiting for the
			// tick only delays what lag tools see. This costs at most one
			// commit per flushed batch, and only while the lane is idle.
			select {
			case r.caughtUp <- struct{}{}:
			default:
			}
		}
	}
}

// commitLoop commits pending group offsets every CommitInterval, and at
// once when a lane caught up with its high watermark.
func (r *runner) commitLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.caughtUp:
		}
		if err := r.commitPending(nil); err != nil {
			r.log.Warn("commit group offsets; retrying at the next interval", slog.String("error", err.Error()))
		}
	}
}

// commitPending synchronously commits the pending group offsets of the
// lanes keep selects (all when keep is nil). On failure they stay pending.
func (r *runner) commitPending(keep func(lane string) bool) error {
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	offs := map[string]map[int32]kgo.EpochOffset{}
	sent := map[*laneState]int64{}
	r.mu.Lock()
	for lane, st := range r.lanes {
		if !st.pending || (keep != nil && !keep(lane)) {
			continue
		}
		if offs[st.topic] == nil {
			offs[st.topic] = map[int32]kgo.EpochOffset{}
		}
		offs[st.topic][st.partition] = kgo.EpochOffset{Epoch: -1, Offset: st.next}
		sent[st] = st.next
		st.pending = false
	}
	r.mu.Unlock()
	if len(offs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultCommitTimeout)
	defer cancel()
	var cerr error
	r.cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
					cerr = errors.Join(cerr, fmt.Errorf("%s: %w", LaneName(t.Topic, p.Partition), e))
				}
			}
		}
	})
	if cerr != nil {
		r.mu.Lock()
		for st, n := range sent {
			if st.owned && st.next == n {
				st.pending = true
			}
		}
		r.mu.Unlock()
		return fmt.Errorf("commit group offsets: %w", cerr)
	}
	return nil
}

// polled is one partition's records of one poll, waiting to be sent.
type polled struct {
	p     kgo.FetchTopicPartition
	epoch uint64 // the lane's assignment epoch when polled
	bytes int
}

// fetchQueue holds polled records between the fetcher and the sender, so
// that the client can fetch ahead while the pipeline decodes. It is
// bounded by bytes: the fetcher polls only while it holds less than limit.
type fetchQueue struct {
	limit int
	more  chan struct{} // buffered 1: items were added
	room  chan struct{} // buffered 1: items were taken

	mu    sync.Mutex
	items []polled
	bytes int
}

func newFetchQueue(limit int) *fetchQueue {
	return &fetchQueue{limit: limit, more: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// waitRoom blocks until the queue holds less than its limit; false if
// ctx ended first.
func (q *fetchQueue) waitRoom(ctx context.Context) bool {
	for {
		q.mu.Lock()
		ok := q.bytes < q.limit
		q.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-q.room:
		case <-ctx.Done():
			return false
		}
	}
}

func (q *fetchQueue) push(items []polled) {
	if len(items) == 0 {
		return
	}
	q.mu.Lock()
	for _, it := range items {
		q.bytes += it.bytes
	}
	q.items = append(q.items, items...)
	q.mu.Unlock()
	signal(q.more)
}

// pop takes the oldest item, waiting for one; false if ctx ended first.
func (q *fetchQueue) pop(ctx context.Context) (polled, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			it := q.items[0]
			q.items[0] = polled{}
			q.items = q.items[1:]
			q.bytes -= it.bytes
			q.mu.Unlock()
			signal(q.room)
			return it, true
		}
		q.mu.Unlock()
		select {
		case <-q.more:
		case <-ctx.Done():
			return polled{}, false
		}
	}
}

// poll hands fetched records to the pipeline until ctx is done or a fatal
// error. A fetcher polls the client into a bounded queue, so the next
// fetch is under way while the pipeline takes the records of the last
// one; a sender turns the queue into chunks. It returns with rebalances
// allowed.
func (r *runner) poll(ctx context.Context) error {
	defer r.cl.AllowRebalance()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := r.q
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		defer cancel()
		for {
			it, ok := q.pop(ctx)
			if !ok || !r.send(ctx, it) {
				return
			}
		}
	}()
	err := r.fetch(ctx, q)
	cancel()
	<-sent
	return err
}

// fetch polls the client into q until ctx is done or a fatal error.
func (r *runner) fetch(ctx context.Context, q *fetchQueue) error {
	var items []polled
	for q.waitRoom(ctx) {
		fs := r.cl.PollRecords(ctx, r.cfg.PollRecords)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		var fatal error
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			if isFatal(err) {
				fatal = errors.Join(fatal, fmt.Errorf("fetch %s: %w", LaneName(topic, p), err))
				return
			}
			r.log.Warn("fetch error; the client retries", slog.String("topic", topic), slog.Int("partition", int(p)), slog.String("error", err.Error()))
		})
		if err := r.fatalErr(); err != nil {
			fatal = errors.Join(fatal, err)
		}
		if fatal != nil {
			return fatal
		}
		items = items[:0]
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if it, ok := r.tag(p); ok {
				items = append(items, it)
			}
		})
		q.push(items)
		clear(items)
		// The records are tagged with their lanes' assignment epochs, so
		// a rebalance may go on: the sender drops what was revoked.
		r.cl.AllowRebalance()
	}
	return nil
}

// tag updates the lane's high watermark and lag from a fetched partition
// and tags its records with the lane's assignment epoch. BlockRebalanceOnPoll
// holds the assignment until AllowRebalance, so the epoch is the one the
// records were fetched under.
func (r *runner) tag(p kgo.FetchTopicPartition) (polled, bool) {
	if len(p.Records) == 0 {
		return polled{}, false
	}
	lane := LaneName(p.Topic, p.Partition)
	hwm := p.HighWatermark
	if !r.cfg.ReadUncommitted && p.LastStableOffset >= 0 {
		hwm = p.LastStableOffset
	}
	r.mu.Lock()
	st := r.lanes[lane]
	owned := st != nil && st.owned
	var epoch uint64
	if owned {
		st.hwm = hwm
		base := st.next
		if base < 0 {
			base = p.Records[0].Offset
		}
		r.m.setLag(st.topic, st.partition, hwm-base)
		epoch = st.epoch
	}
	r.mu.Unlock()
	if !owned {
		// BlockRebalanceOnPoll keeps polled partitions assigned until
		// AllowRebalance, so this means a bug, not a race.
		r.log.Error("dropping fetched records of a partition not assigned here", slog.String("lane", lane))
		recycle(p.Records)
		return polled{}, false
	}
	n := 0
	for _, kr := range p.Records {
		n += len(kr.Value) + len(kr.Key)
	}
	return polled{p: p, epoch: epoch, bytes: n}, true
}

// recordPool recycles the record slices of chunks once they are decoded.
var recordPool = sync.Pool{New: func() any { s := make([]streamd.Record, 0, DefaultChunkRecords); return &s }}

// recycle hands the records' memory back to the client's pools
// (recordSlabs); they must not be used afterwards.
func recycle(recs []*kgo.Record) {
	for _, kr := range recs {
		kr.Recycle()
	}
}

// send hands one partition's polled records to the pipeline in chunks,
// unless the partition was revoked since it was polled; it returns false
// if ctx ended first.
func (r *runner) send(ctx context.Context, it polled) bool {
	p := it.p
	lane := LaneName(p.Topic, p.Partition)
	// sendMu orders these chunks before a Revoked chunk of the lane.
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	st := r.lanes[lane]
	current := st != nil && st.owned && st.epoch == it.epoch
	r.mu.Unlock()
	if !current {
		r.log.Debug("dropping polled records of a partition revoked since", slog.String("lane", lane), slog.Int("records", len(p.Records)))
		recycle(p.Records)
		return true
	}
	recs := p.Records
	for len(recs) > 0 {
		n := min(len(recs), r.cfg.ChunkRecords)
		// Records alias the fetched values: the pipeline decodes (copies)
		// them and then calls Release, so a fetch response is pinned only
		// while its records wait to be decoded, never by an open batch.
		chunk := (*recordPool.Get().(*[]streamd.Record))[:0]
		for _, kr := range recs[:n] {
			chunk = append(chunk, streamd.Record{Data: kr.Value, Pos: streamd.Position{Offset: kr.Offset}, Time: micros(kr.Timestamp)})
		}
		if r.cfg.Metadata {
			metas := make([]streamd.RecordMeta, n)
			for i, kr := range recs[:n] {
				metas[i] = streamd.RecordMeta{Key: kr.Key, Topic: kr.Topic, Partition: kr.Partition, Offset: kr.Offset, Timestamp: micros(kr.Timestamp)}
				for _, h := range kr.Headers {
					metas[i].Headers = append(metas[i].Headers, streamd.RecordHeader{Key: h.Key, Value: h.Value})
				}
				chunk[i].Meta = &metas[i]
			}
		}
		fetched := recs[:n]
		release := func() {
			clear(chunk) // drop the references to fetched data
			chunk = chunk[:0]
			recordPool.Put(&chunk)
			recycle(fetched)
		}
		select {
		case r.out <- ingest.Chunk{Lane: lane, Records: chunk, Release: release}:
		case <-ctx.Done():
			return false
		}
		recs = recs[n:]
	}
	return true
}

// shutdown releases every owned partition (bounded by ShutdownTimeout),
// commits their group offsets and stops all further sends.
func (r *runner) shutdown() {
	r.handshakeMu.Lock()
	defer r.handshakeMu.Unlock()
	r.mu.Lock()
	var lanes []string
	for lane, st := range r.lanes {
		if st.owned {
			lanes = append(lanes, lane)
		}
	}
	r.mu.Unlock()
	if len(lanes) > 0 {
		r.releaseLanes(lanes, r.cfg.ShutdownTimeout, true, "shutdown")
	}
	if err := r.commitPending(nil); err != nil {
		r.log.Warn("final commit of group offsets", slog.String("error", err.Error()))
	}
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
}

// isFatal reports errors that retrying cannot fix: authentication,
// authorization and certificate errors.
func isFatal(err error) bool {
	for _, e := range []error{kerr.SaslAuthenticationFailed, kerr.IllegalSaslState, kerr.UnsupportedSaslMechanism,
		kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed, kerr.ClusterAuthorizationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var he x509.HostnameError
	return errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &he)
}

// kgoLogger forwards the client's logs to slog, at most at Info.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case l.log.Enabled(ctx, slog.LevelInfo):
		return kgo.LogLevelInfo
	case l.log.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case l.log.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelInfo:
		lv = slog.LevelInfo
	}
	l.log.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}
