package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint/lease"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/internal/shardset"
)

// API is the part of the Kinesis client the source uses; *kinesis.Client
// implements it.
type API interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// Start positions for shards without a checkpoint.
const (
	StartTrimHorizon = "trim_horizon"
	StartLatest      = "latest"
	StartAtTimestamp = "at_timestamp"
)

// Config configures a Source.
type Config struct {
	// Stream is the stream name (required).
	Stream string
	// Start is where a shard without a checkpoint starts: trim_horizon
	// (default: everything retained), latest (only new records) or
	// at_timestamp (Timestamp). A child of a shard that was read always
	// starts at its trim horizon, so resharding loses nothing.
	Start     string
	Timestamp time.Time
	// Leases shares the shards with other processes (lease.Table with the
	// DynamoDB checkpoint store). Default: lease.NewLocal(), this process
	// reads every shard.
	Leases lease.Manager
	// ListInterval is how often shards are listed to discover resharding
	// (default 30s; also after every shard that finished).
	ListInterval time.Duration
	// PollInterval is the least time between two GetRecords of one shard
	// (default 200ms: Kinesis allows 5 calls/s per shard, shared by every
	// consumer of the stream; raise it when several applications read).
	PollInterval time.Duration
	// IdleInterval is the pause after a GetRecords that returned nothing
	// (default 1s): lower latency for more calls.
	IdleInterval time.Duration
	// MaxRecords is GetRecords' Limit (default 10000, the maximum).
	MaxRecords int32
	// MaxBackoff caps the exponential backoff (with jitter) after a
	// throttled or failed call (default 10s; it starts at PollInterval).
	MaxBackoff time.Duration
	// EnhancedFanOut, when set, reads each shard with SubscribeToShard
	// (see EnhancedFanOut; the client must implement FanOutAPI). Default
	// nil: GetRecords polling.
	EnhancedFanOut *EnhancedFanOut
	// Registerer receives the source's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives shard changes and errors; nil discards them.
	Logger *slog.Logger
}

// Source reads a Kinesis data stream: one lane per shard, named by the
// shard id. It implements ingest.Source and ingest.Committer.
type Source struct {
	client API
	cfg    Config
	log    *slog.Logger
	m      *metrics

	set *shardset.Set // the readers of the leased shards

	mu     sync.Mutex
	shards map[string]lease.Shard // latest listing
	behind map[string]int64       // MillisBehindLatest per shard read

	efo         FanOutAPI  // the client, with EnhancedFanOut
	efoMu       sync.Mutex // serializes consumer registration
	consumerARN string     // guarded by efoMu
}

var (
	_ ingest.Source    = (*Source)(nil)
	_ ingest.Committer = (*Source)(nil)
)

// New returns a source on client. It does no I/O.
func New(client API, cfg Config) (*Source, error) {
	if client == nil || cfg.Stream == "" {
		return nil, errors.New("new kinesis source: client and stream are required")
	}
	switch cfg.Start {
	case "":
		cfg.Start = StartTrimHorizon
	case StartTrimHorizon, StartLatest:
	case StartAtTimestamp:
		if cfg.Timestamp.IsZero() {
			return nil, errors.New("new kinesis source: start at_timestamp needs a timestamp")
		}
	default:
		return nil, fmt.Errorf("new kinesis source: start %q is not trim_horizon, latest or at_timestamp", cfg.Start)
	}
	efo, err := checkFanOut(client, cfg.EnhancedFanOut)
	if err != nil {
		return nil, err
	}
	if cfg.Leases == nil {
		cfg.Leases = lease.NewLocal()
	}
	if cfg.ListInterval <= 0 {
		cfg.ListInterval = 30 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 200 * time.Millisecond
	}
	if cfg.IdleInterval <= 0 {
		cfg.IdleInterval = time.Second
	}
	if cfg.MaxRecords <= 0 || cfg.MaxRecords > 10000 {
		cfg.MaxRecords = 10000
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new kinesis source: %w", err)
	}
	src := &Source{
		client: client, cfg: cfg, efo: efo, log: log.With(slog.String("stream", cfg.Stream)), m: m,
		shards: map[string]lease.Shard{}, behind: map[string]int64{},
	}
	if efo != nil {
		src.consumerARN = cfg.EnhancedFanOut.ConsumerARN
	}
	src.set = shardset.New(shardset.Config{
		Leases: cfg.Leases, Log: src.log,
		List: src.list, ListInterval: cfg.ListInterval,
		ListRetry: func() time.Duration { return src.jitter(cfg.PollInterval * 5) },
		ListFatal: func(err error, _ bool) error {
			var rnf *types.ResourceNotFoundException
			if errors.As(err, &rnf) {
				return fmt.Errorf("read kinesis stream %q: %w", cfg.Stream, err)
			}
			return nil
		},
		Read: src.read,
		ReadFailed: func(shard string, err error) error {
			return fmt.Errorf("read shard %q of %q: %w", shard, cfg.Stream, err)
		},
		Stopped: func(shard string) { src.setBehind(shard, -1) },
		Held:    func(n int) { m.shardsHeld.WithLabelValues(cfg.Stream).Set(float64(n)) },
	})
	return src, nil
}

// Run implements ingest.Source. It lists shards, takes leases, reads each
// leased shard in its own goroutine and sends its chunks to out, until ctx
// is done. Closed shards end (Chunk.End); once their last record is
// committed their lease is finished and their children start.
func (s *Source) Run(ctx context.Context, resume ingest.Resumer, out chan<- ingest.Chunk) error {
	return s.set.Run(ctx, resume, out)
}

// list pages through ListShards (kinesalite and old endpoints return every
// shard without a NextToken; both are handled) and syncs the lineage to
// the lease manager.
func (s *Source) list(ctx context.Context) error {
	var all []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(s.cfg.Stream)}
	backoff := s.cfg.PollInterval
	for page := 0; page < 10000; {
		out, err := s.client.ListShards(ctx, in)
		if err != nil {
			if s.throttled(err) && ctx.Err() == nil {
				if !sleep(ctx, s.jitter(backoff)) {
					return ctx.Err()
				}
				backoff = min(2*backoff, s.cfg.MaxBackoff)
				continue
			}
			return fmt.Errorf("list shards of %q: %w", s.cfg.Stream, err)
		}
		page++
		all = append(all, out.Shards...)
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	shards := make([]lease.Shard, 0, len(all))
	s.mu.Lock()
	for _, sh := range all {
		ls := lease.Shard{ID: aws.ToString(sh.ShardId)}
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if aws.ToString(p) != "" {
				ls.Parents = append(ls.Parents, aws.ToString(p))
			}
		}
		s.shards[ls.ID] = ls
		shards = append(shards, ls)
	}
	s.mu.Unlock()
	sort.Slice(shards, func(i, j int) bool { return shards[i].ID < shards[j].ID })
	if err := s.cfg.Leases.Sync(ctx, shards); err != nil {
		return fmt.Errorf("sync shard leases: %w", err)
	}
	return nil
}

// Committed implements ingest.Committer: it tracks what the pipeline has
// committed, finishes a closed shard whose last record is committed, and
// releases the lease of a shard stopped at shutdown once it is committed.
func (s *Source) Committed(ctx context.Context, lane string, pos streamd.Position) {
	s.set.Committed(ctx, lane, pos)
}

// read reads one shard until it ends or ctx is done.
func (s *Source) read(ctx context.Context, r *shardset.Reader, resume ingest.Resumer, out chan<- ingest.Chunk) error {
	if s.efo != nil {
		return s.readFanOut(ctx, r, resume, out)
	}
	from, ok, err := resume.Resume(ctx, r.Shard)
	if err != nil {
		return err
	}
	var skip *streamd.Position
	if ok {
		skip = &from
		r.Resumed(from)
	}
	it, err := s.iterator(ctx, r.Shard, skip)
	if err != nil {
		return err
	}
	checkLoss := skip != nil
	lastSeq := ""
	backoff := s.cfg.PollInterval
	var recs []streamd.Record
	for {
		start := time.Now()
		res, err := s.client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(s.cfg.MaxRecords)})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var expired *types.ExpiredIteratorException
			var rnf *types.ResourceNotFoundException
			switch {
			case errors.As(err, &expired):
				// Re-open the iterator after what was read, or where the
				// shard started if nothing was.
				if lastSeq != "" {
					it, err = s.iteratorAt(ctx, r.Shard, types.ShardIteratorTypeAfterSequenceNumber, lastSeq)
				} else {
					it, err = s.iterator(ctx, r.Shard, skip)
				}
				if err != nil {
					return err
				}
				s.log.Info("shard iterator expired; re-opened", slog.String("shard", r.Shard), slog.String("after", lastSeq))
				continue
			case errors.As(err, &rnf):
				return err
			case s.throttled(err):
			default:
				s.log.Warn("get records failed; retrying", slog.String("shard", r.Shard), slog.String("error", err.Error()))
			}
			if !sleep(ctx, s.jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, s.cfg.MaxBackoff)
			continue
		}
		backoff = s.cfg.PollInterval
		if res.MillisBehindLatest != nil {
			s.setBehind(r.Shard, *res.MillisBehindLatest)
		}
		if checkLoss && len(res.Records) > 0 {
			checkLoss = false
			if first := aws.ToString(res.Records[0].SequenceNumber); first != skip.Seq {
				s.reportLoss(r.Shard, skip.Seq, first)
			}
		}
		recs = recs[:0]
		for _, kr := range res.Records {
			seq := aws.ToString(kr.SequenceNumber)
			var t int64
			if kr.ApproximateArrivalTimestamp != nil {
				t = kr.ApproximateArrivalTimestamp.UnixMicro()
			}
			n := len(recs)
			recs = deaggregate(recs, kr.Data, seq, t, skip)
			for _, rec := range recs[n:] {
				if rec.Err != "" {
					s.m.corrupt.WithLabelValues(s.cfg.Stream).Inc()
					s.log.Error("corrupt KPL aggregate; dead-lettering it", slog.String("shard", r.Shard), slog.String("seq", seq), slog.String("error", rec.Err))
				}
			}
			lastSeq = seq
		}
		skip = nil
		next := aws.ToString(res.NextShardIterator)
		end := next == ""
		if (len(recs) > 0 || end) && !s.deliver(ctx, r, recs, end, out) {
			return nil
		}
		if end {
			s.log.Info("shard closed and read to its end", slog.String("shard", r.Shard))
			return nil
		}
		it = aws.String(next)
		wait := s.cfg.PollInterval - time.Since(start)
		if len(res.Records) == 0 {
			wait = s.cfg.IdleInterval
		}
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// iterator opens a shard iterator: at the committed record (its
// re-delivered sub-records up to skip are dropped, and its presence proves
// nothing was trimmed), or at the configured start. A child shard whose
// parent is listed starts at its trim horizon.
func (s *Source) iterator(ctx context.Context, shard string, skip *streamd.Position) (*string, error) {
	if skip != nil {
		it, err := s.iteratorAt(ctx, shard, types.ShardIteratorTypeAtSequenceNumber, skip.Seq)
		var bad *types.InvalidArgumentException
		if errors.As(err, &bad) {
			// The checkpoint is older than the trim horizon (or from
			// another stream of the same name): read what is left.
			s.reportLoss(shard, skip.Seq, "(iterator refused: "+bad.ErrorMessage()+")")
			return s.iteratorAt(ctx, shard, types.ShardIteratorTypeTrimHorizon, "")
		}
		return it, err
	}
	s.mu.Lock()
	child := false
	for _, p := range s.shards[shard].Parents {
		if _, ok := s.shards[p]; ok {
			child = true
		}
	}
	s.mu.Unlock()
	switch {
	case child || s.cfg.Start == StartTrimHorizon:
		return s.iteratorAt(ctx, shard, types.ShardIteratorTypeTrimHorizon, "")
	case s.cfg.Start == StartLatest:
		return s.iteratorAt(ctx, shard, types.ShardIteratorTypeLatest, "")
	default:
		return s.iteratorAt(ctx, shard, types.ShardIteratorTypeAtTimestamp, "")
	}
}

func (s *Source) iteratorAt(ctx context.Context, shard string, typ types.ShardIteratorType, seq string) (*string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(s.cfg.Stream), ShardId: aws.String(shard), ShardIteratorType: typ}
	if seq != "" {
		in.StartingSequenceNumber = aws.String(seq)
	}
	if typ == types.ShardIteratorTypeAtTimestamp {
		in.Timestamp = aws.Time(s.cfg.Timestamp)
	}
	backoff := s.cfg.PollInterval
	for {
		out, err := s.client.GetShardIterator(ctx, in)
		if err == nil {
			return out.ShardIterator, nil
		}
		if !s.throttled(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("get %s iterator of shard %q: %w", typ, shard, err)
		}
		if !sleep(ctx, s.jitter(backoff)) {
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// reportLoss records that a shard resumed past the stream's retention.
func (s *Source) reportLoss(shard, committed, first string) {
	s.m.lost.WithLabelValues(s.cfg.Stream).Inc()
	s.log.Error("records lost: the shard's checkpoint is past the stream's retention; records after it were trimmed before they were read",
		slog.String("shard", shard), slog.String("committed", committed), slog.String("first_available", first))
}

// throttled reports a throttling error (counted; the caller backs off).
func (s *Source) throttled(err error) bool {
	var pte *types.ProvisionedThroughputExceededException
	var le *types.LimitExceededException
	var kt *types.KMSThrottlingException
	if errors.As(err, &pte) || errors.As(err, &le) || errors.As(err, &kt) || strings.Contains(err.Error(), "ThrottlingException") {
		s.m.throttled.WithLabelValues(s.cfg.Stream).Inc()
		return true
	}
	return false
}

// setBehind records a shard's MillisBehindLatest and the stream's
// maximum over the shards this process reads (ms < 0 forgets the shard).
func (s *Source) setBehind(shard string, ms int64) {
	s.mu.Lock()
	if ms < 0 {
		delete(s.behind, shard)
		s.m.behind.DeleteLabelValues(s.cfg.Stream, shard)
	} else {
		s.behind[shard] = ms
		s.m.behind.WithLabelValues(s.cfg.Stream, shard).Set(float64(ms))
	}
	var most int64
	for _, v := range s.behind {
		most = max(most, v)
	}
	s.m.behindMax.WithLabelValues(s.cfg.Stream).Set(float64(most))
	s.mu.Unlock()
}

// jitter returns a duration in [d/2, d).
func (s *Source) jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)))
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// deliver sends one chunk of a shard and tracks what was sent; a closed
// shard with nothing pending is finished. It returns false when ctx ended.
func (s *Source) deliver(ctx context.Context, r *shardset.Reader, recs []streamd.Record, end bool, out chan<- ingest.Chunk) bool {
	c := ingest.Chunk{Lane: r.Shard, Records: append([]streamd.Record(nil), recs...), End: end}
	select {
	case out <- c:
	case <-ctx.Done():
		return false
	}
	s.m.read.WithLabelValues(s.cfg.Stream).Add(float64(len(recs)))
	r.Sent(ctx, recs, end)
	return true
}
