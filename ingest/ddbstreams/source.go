package ddbstreams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/smithy-go"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/internal/shardset"
)

// ErrNoStream is returned by Run when the table has no stream to read
// (streams were never enabled, or were disabled more than 24 h ago).
var ErrNoStream = errors.New("table has no stream (enable DynamoDB Streams with NEW_AND_OLD_IMAGES)")

// Source reads a DynamoDB table's change stream: one lane per shard, named
// by the shard id (shard ids are unique across a table's streams), with
// each change as one JSON record (AppendChange). It implements
// ingest.Source and ingest.Committer.
type Source struct {
	tables  TableAPI
	streams StreamsAPI
	cfg     Config
	log     *slog.Logger
	m       *metrics

	set *shardset.Set // the readers of the leased shards

	mu        sync.Mutex
	shards    map[string]*shardInfo
	listings  int                  // refreshes done
	ended     map[string]bool      // shards this process read to their end
	lastEvent map[string]time.Time // per stream ARN, newest change read
	crossed   map[string]bool      // streams whose switch was reported
	viewWarn  map[string]bool      // streams warned about their view type
}

// shardInfo is what the latest listing says about a shard.
type shardInfo struct {
	stream  string   // ARN
	prev    string   // ARN of the previous stream when this shard begins a later stream
	parents []string // lineage parents (own parent and, for prev, its leaves)
	closed  bool
	late    bool // first listed after the source's first listing
}

var (
	_ ingest.Source    = (*Source)(nil)
	_ ingest.Committer = (*Source)(nil)
)

// New returns a source reading with the given clients (tables may be nil
// when cfg.StreamARN is set). It does no I/O.
func New(tables TableAPI, streams StreamsAPI, cfg Config) (*Source, error) {
	if streams == nil {
		return nil, errors.New("new ddbstreams source: a streams client is required")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new ddbstreams source: %w", err)
	}
	if cfg.StreamARN == "" && tables == nil {
		return nil, errors.New("new ddbstreams source: a DynamoDB client is required to find the table's stream")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new ddbstreams source: %w", err)
	}
	src := &Source{
		tables: tables, streams: streams, cfg: cfg, log: log.With(slog.String("table", cfg.Table)), m: m,
		shards: map[string]*shardInfo{}, ended: map[string]bool{}, lastEvent: map[string]time.Time{},
		crossed: map[string]bool{}, viewWarn: map[string]bool{},
	}
	src.set = shardset.New(shardset.Config{
		Leases: cfg.Leases, Log: src.log,
		List: src.refresh, ListInterval: cfg.RefreshInterval,
		ListRetry: func() time.Duration { return src.jitter(cfg.PollInterval * 5) },
		ListFatal: func(err error, listed bool) error {
			var rnf *dbtypes.ResourceNotFoundException
			var srnf *types.ResourceNotFoundException
			if errors.As(err, &rnf) || (errors.Is(err, ErrNoStream) && !listed) || (cfg.StreamARN != "" && errors.As(err, &srnf) && !listed) {
				return fmt.Errorf("read dynamodb stream of table %q: %w", cfg.Table, err)
			}
			return nil
		},
		Read: src.read,
		ReadFailed: func(shard string, err error) error {
			return fmt.Errorf("read shard %q of table %q: %w", shard, cfg.Table, err)
		},
		Finished: func(shard string) {
			src.mu.Lock()
			src.ended[shard] = true
			src.mu.Unlock()
		},
		Held: func(n int) { m.shardsHeld.WithLabelValues(cfg.Table).Set(float64(n)) },
	})
	return src, nil
}

// Run implements ingest.Source. It describes the table's streams, takes
// shard leases, reads each leased shard in its own goroutine and sends its
// chunks to out, until ctx is done. A closed shard ends (Chunk.End); once
// its last record is committed its lease is finished and its children
// start.
func (s *Source) Run(ctx context.Context, resume ingest.Resumer, out chan<- ingest.Chunk) error {
	return s.set.Run(ctx, resume, out)
}

// refresh lists the table's streams (oldest first) and their shards, and
// syncs the lineage to the lease manager.
func (s *Source) refresh(ctx context.Context) error {
	arns, err := s.streamARNs(ctx)
	if err != nil {
		return err
	}
	var streams []Stream
	for _, arn := range arns {
		st, err := s.describe(ctx, arn)
		var rnf *types.ResourceNotFoundException
		if errors.As(err, &rnf) && s.cfg.StreamARN == "" {
			continue // a disabled stream past its 24 h retention
		}
		if err != nil {
			return err
		}
		streams = append(streams, st)
	}
	if len(streams) == 0 {
		return ErrNoStream
	}
	shards := Lineage(streams)
	streamOf := map[string]*types.Shard{}
	arnOf := map[string]string{}
	prevOf := map[string]string{}
	for i, st := range streams {
		ids := map[string]bool{}
		for _, sh := range st.Shards {
			ids[aws.ToString(sh.ShardId)] = true
		}
		for j := range st.Shards {
			sh := &st.Shards[j]
			id := aws.ToString(sh.ShardId)
			streamOf[id], arnOf[id] = sh, st.ARN
			if i > 0 && !ids[aws.ToString(sh.ParentShardId)] {
				prevOf[id] = streams[i-1].ARN
			}
		}
	}
	s.mu.Lock()
	first := s.listings == 0
	s.listings++
	for _, ls := range shards {
		sh := streamOf[ls.ID]
		info := s.shards[ls.ID]
		if info == nil {
			info = &shardInfo{late: !first}
			s.shards[ls.ID] = info
		}
		info.stream, info.prev, info.parents = arnOf[ls.ID], prevOf[ls.ID], ls.Parents
		info.closed = sh.SequenceNumberRange != nil && aws.ToString(sh.SequenceNumberRange.EndingSequenceNumber) != ""
	}
	s.mu.Unlock()
	if err := s.cfg.Leases.Sync(ctx, shards); err != nil {
		return fmt.Errorf("sync shard leases: %w", err)
	}
	return nil
}

// streamARNs returns the ARNs to read, oldest first.
func (s *Source) streamARNs(ctx context.Context) ([]string, error) {
	if s.cfg.StreamARN != "" {
		return []string{s.cfg.StreamARN}, nil
	}
	var latest string
	err := s.retry(ctx, func() error {
		out, err := s.tables.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.cfg.Table)})
		if err == nil && out.Table != nil {
			latest = aws.ToString(out.Table.LatestStreamArn)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describe table %q: %w", s.cfg.Table, err)
	}
	labels := map[string]string{}
	if latest != "" {
		labels[latest] = labelOfARN(latest)
	}
	in := &dynamodbstreams.ListStreamsInput{TableName: aws.String(s.cfg.Table)}
	for page := 0; page < 1000; page++ {
		var out *dynamodbstreams.ListStreamsOutput
		err := s.retry(ctx, func() (err error) {
			out, err = s.streams.ListStreams(ctx, in)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list streams of table %q: %w", s.cfg.Table, err)
		}
		for _, st := range out.Streams {
			if aws.ToString(st.TableName) != "" && aws.ToString(st.TableName) != s.cfg.Table {
				continue
			}
			labels[aws.ToString(st.StreamArn)] = aws.ToString(st.StreamLabel)
		}
		if out.LastEvaluatedStreamArn == nil {
			break
		}
		in = &dynamodbstreams.ListStreamsInput{TableName: aws.String(s.cfg.Table), ExclusiveStartStreamArn: out.LastEvaluatedStreamArn}
	}
	arns := make([]string, 0, len(labels))
	for arn := range labels {
		arns = append(arns, arn)
	}
	sort.Slice(arns, func(i, j int) bool {
		if labels[arns[i]] != labels[arns[j]] {
			return labels[arns[i]] < labels[arns[j]]
		}
		return arns[i] < arns[j]
	})
	return arns, nil
}

// describe pages through DescribeStream (ExclusiveStartShardId).
func (s *Source) describe(ctx context.Context, arn string) (Stream, error) {
	st := Stream{ARN: arn, Label: labelOfARN(arn)}
	in := &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn)}
	for page := 0; page < 10000; page++ {
		var out *dynamodbstreams.DescribeStreamOutput
		err := s.retry(ctx, func() (err error) {
			out, err = s.streams.DescribeStream(ctx, in)
			return err
		})
		if err != nil {
			return st, fmt.Errorf("describe stream %s: %w", arn, err)
		}
		d := out.StreamDescription
		if d == nil {
			break
		}
		if l := aws.ToString(d.StreamLabel); l != "" {
			st.Label = l
		}
		if page == 0 && d.StreamViewType != types.StreamViewTypeNewAndOldImages {
			s.mu.Lock()
			warn := !s.viewWarn[arn]
			s.viewWarn[arn] = true
			s.mu.Unlock()
			if warn {
				s.log.Warn("stream does not carry both images: new_image or old_image are null and removes carry only the keys",
					slog.String("stream_arn", arn), slog.String("view_type", string(d.StreamViewType)))
			}
		}
		st.Shards = append(st.Shards, d.Shards...)
		if d.LastEvaluatedShardId == nil {
			break
		}
		in = &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn), ExclusiveStartShardId: d.LastEvaluatedShardId}
	}
	return st, nil
}

// retry runs call until it succeeds, fails for a reason other than
// throttling, or ctx is done; throttling backs off with jitter.
func (s *Source) retry(ctx context.Context, call func() error) error {
	backoff := s.cfg.PollInterval
	for {
		err := call()
		if err == nil || !s.throttled(err) || ctx.Err() != nil {
			return err
		}
		if !sleep(ctx, s.jitter(backoff)) {
			return err
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// Committed implements ingest.Committer: it tracks what the pipeline has
// committed, finishes a closed shard whose last record is committed (its
// children may start), and releases the lease of a shard stopped at
// shutdown once it is committed.
func (s *Source) Committed(ctx context.Context, lane string, pos streamd.Position) {
	s.set.Committed(ctx, lane, pos)
}

func (s *Source) info(shard string) shardInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.shards[shard]; i != nil {
		return *i
	}
	return shardInfo{}
}

// errShardGone says a shard (or its whole stream) is no longer in the
// stream: its lane ends.
var errShardGone = errors.New("shard is no longer in the stream")

// read reads one shard until it ends or ctx is done.
func (s *Source) read(ctx context.Context, r *shardset.Reader, resume ingest.Resumer, out chan<- ingest.Chunk) error {
	from, ok, err := resume.Resume(ctx, r.Shard)
	if err != nil {
		return err
	}
	var skip *streamd.Position
	if ok {
		skip = &from
		r.Resumed(from)
	}
	info := s.info(r.Shard)
	send := func(recs []streamd.Record, end bool) bool {
		c := ingest.Chunk{Lane: r.Shard, Records: recs, End: end}
		select {
		case out <- c:
		case <-ctx.Done():
			return false
		}
		s.m.read.WithLabelValues(s.cfg.Table).Add(float64(len(recs)))
		r.Sent(ctx, recs, end)
		if end {
			s.log.Info("shard closed and read to its end", slog.String("shard", r.Shard))
		}
		return true
	}

	it, err := s.open(ctx, r.Shard, info, skip, resume)
	switch {
	case errors.Is(err, errShardGone):
		send(nil, true)
		return nil
	case err != nil:
		return err
	case it == nil: // start latest on a closed shard: nothing to read
		send(nil, true)
		return nil
	}
	checkLoss := skip != nil
	atHorizon := false // the iterator was just opened at the trim horizon after a trim
	lastSeq := ""
	backoff := s.cfg.PollInterval
	var buf []byte
	for {
		start := time.Now()
		res, err := s.streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(s.cfg.MaxRecords)})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var expired *types.ExpiredIteratorException
			var trimmed *types.TrimmedDataAccessException
			var rnf *types.ResourceNotFoundException
			switch {
			case errors.As(err, &expired):
				// Re-open after what was read, or as at the start.
				if lastSeq != "" {
					it, err = s.iteratorAt(ctx, info.stream, r.Shard, types.ShardIteratorTypeAfterSequenceNumber, lastSeq)
				} else {
					it, err = s.open(ctx, r.Shard, info, skip, resume)
				}
				if errors.Is(err, errShardGone) || (err == nil && it == nil) {
					send(nil, true)
					return nil
				}
				if err != nil {
					return err
				}
				s.log.Info("shard iterator expired; re-opened", slog.String("shard", r.Shard), slog.String("after", lastSeq))
				continue
			case errors.As(err, &trimmed):
				if atHorizon {
					// Even the trim horizon is trimmed: every record of the
					// shard is gone.
					if s.info(r.Shard).closed {
						s.log.Warn("closed shard has no records left within retention; ending it", slog.String("shard", r.Shard))
						send(nil, true)
						return nil
					}
				} else {
					after := lastSeq
					if after == "" && skip != nil {
						after = skip.Seq
					}
					s.reportLoss(r.Shard, LossTrimmed, after, "reading went on at the shard's trim horizon")
				}
				checkLoss = false
				it, err = s.iteratorAt(ctx, info.stream, r.Shard, types.ShardIteratorTypeTrimHorizon, "")
				if errors.Is(err, errShardGone) {
					send(nil, true)
					return nil
				}
				if err != nil {
					return err
				}
				if atHorizon && !sleep(ctx, s.jitter(backoff)) {
					return nil
				}
				atHorizon = true
				continue
			case errors.As(err, &rnf):
				s.gone(r, lastSeq, skip)
				send(nil, true)
				return nil
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
		if len(res.Records) > 0 {
			atHorizon = false
		}
		if checkLoss && len(res.Records) > 0 {
			checkLoss = false
			if first := seqOf(res.Records[0]); first != skip.Seq {
				s.reportLoss(r.Shard, LossTrimmed, skip.Seq, "the committed record is gone; the first record left is "+first)
			}
		}
		recs := make([]streamd.Record, 0, len(res.Records))
		buf = make([]byte, 0, max(cap(buf), 512*len(res.Records)))
		var newest time.Time
		for _, rec := range res.Records {
			seq := seqOf(rec)
			lastSeq = seq
			pos := streamd.Position{Seq: seq}
			if skip != nil && pos.Compare(*skip) <= 0 {
				continue // the committed record itself (AT_SEQUENCE_NUMBER)
			}
			var t time.Time
			if rec.Dynamodb != nil && rec.Dynamodb.ApproximateCreationDateTime != nil {
				t = *rec.Dynamodb.ApproximateCreationDateTime
				if t.After(newest) {
					newest = t
				}
			}
			n := len(buf)
			var cerr error
			buf, cerr = AppendChange(buf, rec)
			cr := streamd.Record{Pos: pos, Data: buf[n:len(buf):len(buf)]}
			if !t.IsZero() {
				cr.Time = t.UnixMicro()
			}
			if cerr != nil {
				raw, _ := json.Marshal(rec)
				buf = append(buf[:n], raw...)
				cr.Data = buf[n:len(buf):len(buf)]
				cr.Err = "convert change record: " + cerr.Error()
				s.log.Error("change record cannot be converted; dead-lettering it", slog.String("shard", r.Shard), slog.String("seq", seq), slog.String("error", cerr.Error()))
			}
			recs = append(recs, cr)
		}
		skip = nil
		if !newest.IsZero() {
			s.sawEvent(info.stream, newest)
		}
		next := aws.ToString(res.NextShardIterator)
		end := next == ""
		if len(recs) > 0 || end {
			if !send(recs, end) {
				return nil
			}
		}
		if end {
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

func seqOf(rec types.Record) string {
	if rec.Dynamodb == nil {
		return ""
	}
	return aws.ToString(rec.Dynamodb.SequenceNumber)
}

// open opens a shard's first iterator: at the committed record (whose
// presence proves nothing was trimmed; it is dropped), else at the trim
// horizon or the latest record per the start rule. It returns a nil
// iterator when a closed shard is to start at latest (nothing to read).
func (s *Source) open(ctx context.Context, shard string, info shardInfo, skip *streamd.Position, resume ingest.Resumer) (*string, error) {
	if skip != nil {
		it, err := s.iteratorAt(ctx, info.stream, shard, types.ShardIteratorTypeAtSequenceNumber, skip.Seq)
		var trimmed *types.TrimmedDataAccessException
		if errors.As(err, &trimmed) {
			s.reportLoss(shard, LossTrimmed, skip.Seq, "reading went on at the shard's trim horizon")
			return s.iteratorAt(ctx, info.stream, shard, types.ShardIteratorTypeTrimHorizon, "")
		}
		if errors.Is(err, errShardGone) {
			s.reportLoss(shard, LossExpiredShard, skip.Seq, "the shard is no longer in the stream")
		}
		return it, err
	}
	if info.prev != "" {
		s.crossing(info.prev, info.stream)
	}
	horizon := s.cfg.Start == StartTrimHorizon || info.late
	if !horizon {
		for _, p := range info.parents {
			s.mu.Lock()
			read := s.ended[p]
			s.mu.Unlock()
			if !read {
				_, ok, err := resume.Resume(ctx, p)
				if err != nil {
					return nil, err
				}
				read = ok
			}
			if read {
				horizon = true
				break
			}
		}
	}
	switch {
	case horizon:
		return s.iteratorAt(ctx, info.stream, shard, types.ShardIteratorTypeTrimHorizon, "")
	case info.closed:
		return nil, nil
	default:
		return s.iteratorAt(ctx, info.stream, shard, types.ShardIteratorTypeLatest, "")
	}
}

func (s *Source) iteratorAt(ctx context.Context, arn, shard string, typ types.ShardIteratorType, seq string) (*string, error) {
	in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(arn), ShardId: aws.String(shard), ShardIteratorType: typ}
	if seq != "" {
		in.SequenceNumber = aws.String(seq)
	}
	var out *dynamodbstreams.GetShardIteratorOutput
	err := s.retry(ctx, func() (err error) {
		out, err = s.streams.GetShardIterator(ctx, in)
		return err
	})
	var rnf *types.ResourceNotFoundException
	if errors.As(err, &rnf) {
		return nil, fmt.Errorf("get %s iterator of shard %q: %w: %w", typ, shard, errShardGone, err)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s iterator of shard %q: %w", typ, shard, err)
	}
	return out.ShardIterator, nil
}

// gone reports a shard that disappeared while being read.
func (s *Source) gone(r *shardset.Reader, lastSeq string, skip *streamd.Position) {
	after := lastSeq
	if after == "" && skip != nil {
		after = skip.Seq
	}
	if after != "" {
		s.reportLoss(r.Shard, LossExpiredShard, after, "the shard is no longer in the stream")
		return
	}
	s.log.Warn("shard is no longer in the stream; ending it", slog.String("shard", r.Shard))
}

// reportLoss records that records of a shard were trimmed or expired
// before they were read.
func (s *Source) reportLoss(shard, reason, after, detail string) {
	s.m.lost.WithLabelValues(s.cfg.Table, reason).Inc()
	s.log.Error("change records lost: they left the stream's 24 h retention before they were read",
		slog.String("shard", shard), slog.String("reason", reason), slog.String("after_sequence_number", after), slog.String("detail", detail))
}

// crossing reports, once per new stream, that reading moves from one of
// the table's streams to the next: changes made while the stream was
// disabled were not captured.
func (s *Source) crossing(prev, next string) {
	s.mu.Lock()
	if s.crossed[next] {
		s.mu.Unlock()
		return
	}
	s.crossed[next] = true
	last := s.lastEvent[prev]
	s.mu.Unlock()
	s.m.switches.WithLabelValues(s.cfg.Table).Inc()
	attrs := []any{slog.String("old_stream_arn", prev), slog.String("new_stream_arn", next),
		slog.String("new_stream_created", labelOfARN(next))}
	if !last.IsZero() {
		attrs = append(attrs, slog.String("old_stream_last_change", last.UTC().Format(time.RFC3339Nano)))
	}
	s.log.Error("table's stream was disabled and enabled again: changes between the old stream's last record and the new stream's first were not captured", attrs...)
}

func (s *Source) sawEvent(arn string, t time.Time) {
	s.mu.Lock()
	if t.After(s.lastEvent[arn]) {
		s.lastEvent[arn] = t
	}
	s.mu.Unlock()
	s.m.lastEvent.WithLabelValues(s.cfg.Table).Set(float64(t.UnixMilli()) / 1000)
}

// throttled reports a throttling or transient server error (counted; the
// caller backs off).
func (s *Source) throttled(err error) bool {
	var le *types.LimitExceededException
	var ise *types.InternalServerError
	var dle *dbtypes.LimitExceededException
	var dise *dbtypes.InternalServerError
	var api smithy.APIError
	if errors.As(err, &le) || errors.As(err, &ise) || errors.As(err, &dle) || errors.As(err, &dise) ||
		(errors.As(err, &api) && (strings.Contains(api.ErrorCode(), "Throttl") || api.ErrorCode() == "ServiceUnavailable")) {
		s.m.throttled.WithLabelValues(s.cfg.Table).Inc()
		return true
	}
	return false
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
