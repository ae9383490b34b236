package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/internal/shardset"
)

// EnhancedFanOut makes the source read with SubscribeToShard (a dedicated
// 2 MB/s per shard pushed to this consumer) instead of polling GetRecords
// (shared 2 MB/s and 5 calls/s per shard). It costs per consumer-shard
// hour and per GB; polling settings (PollInterval, IdleInterval,
// MaxRecords) then only pace retries.
type EnhancedFanOut struct {
	// ConsumerName registers (or reuses) a stream consumer of this name and
	// waits until it is ACTIVE. Needs kinesis:DescribeStreamSummary,
	// RegisterStreamConsumer and DescribeStreamConsumer.
	ConsumerName string
	// ConsumerARN uses an existing consumer instead (no registration; only
	// kinesis:SubscribeToShard is needed). Exactly one of ConsumerName and
	// ConsumerARN is set.
	ConsumerARN string
}

// FanOutAPI is the part of the Kinesis client the source uses with
// EnhancedFanOut; *kinesis.Client implements it.
type FanOutAPI interface {
	API
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, opts ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	RegisterStreamConsumer(ctx context.Context, in *kinesis.RegisterStreamConsumerInput, opts ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error)
	DescribeStreamConsumer(ctx context.Context, in *kinesis.DescribeStreamConsumerInput, opts ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error)
	SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, opts ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error)
}

// checkFanOut validates the enhanced fan-out settings of New.
func checkFanOut(client API, efo *EnhancedFanOut) (FanOutAPI, error) {
	if efo == nil {
		return nil, nil
	}
	if (efo.ConsumerName == "") == (efo.ConsumerARN == "") {
		return nil, errors.New("new kinesis source: enhanced fan-out needs exactly one of consumer name and consumer ARN")
	}
	f, ok := client.(FanOutAPI)
	if !ok {
		return nil, fmt.Errorf("new kinesis source: enhanced fan-out needs a client with SubscribeToShard (%T has none)", client)
	}
	return f, nil
}

// consumer returns the consumer ARN, registering the consumer and waiting
// until it is ACTIVE the first time.
func (s *Source) consumer(ctx context.Context) (string, error) {
	s.efoMu.Lock()
	defer s.efoMu.Unlock()
	if s.consumerARN != "" {
		return s.consumerARN, nil
	}
	name := s.cfg.EnhancedFanOut.ConsumerName
	sum, err := s.efo.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(s.cfg.Stream)})
	if err != nil {
		return "", fmt.Errorf("describe stream %q: %w", s.cfg.Stream, err)
	}
	if sum.StreamDescriptionSummary == nil {
		return "", fmt.Errorf("describe stream %q: no description", s.cfg.Stream)
	}
	streamARN := sum.StreamDescriptionSummary.StreamARN
	reg, err := s.efo.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: streamARN, ConsumerName: aws.String(name)})
	var inUse *types.ResourceInUseException
	switch {
	case err == nil && reg.Consumer != nil && reg.Consumer.ConsumerStatus == types.ConsumerStatusActive:
		s.consumerARN = aws.ToString(reg.Consumer.ConsumerARN)
		return s.consumerARN, nil
	case err == nil || errors.As(err, &inUse): // registered, or it already exists
	default:
		return "", fmt.Errorf("register stream consumer %q: %w", name, err)
	}
	backoff := s.cfg.PollInterval
	for {
		d, err := s.efo.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: streamARN, ConsumerName: aws.String(name)})
		if err != nil && !s.throttled(err) {
			return "", fmt.Errorf("describe stream consumer %q: %w", name, err)
		}
		if err == nil && d.ConsumerDescription != nil {
			switch d.ConsumerDescription.ConsumerStatus {
			case types.ConsumerStatusActive:
				s.consumerARN = aws.ToString(d.ConsumerDescription.ConsumerARN)
				s.log.Info("stream consumer active", slog.String("consumer", name), slog.String("arn", s.consumerARN))
				return s.consumerARN, nil
			case types.ConsumerStatusDeleting:
				return "", fmt.Errorf("stream consumer %q is being deleted", name)
			}
		}
		if !sleep(ctx, s.jitter(backoff)) {
			return "", ctx.Err()
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// startingPosition is where a subscription starts: after the last event's
// continuation, at the committed record, or at the configured start (a
// child of a listed shard at its trim horizon).
func (s *Source) startingPosition(shard, cont string, skip *streamd.Position, horizon bool) *types.StartingPosition {
	switch {
	case cont != "":
		return &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(cont)}
	case horizon:
		return &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	case skip != nil:
		return &types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(skip.Seq)}
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
		return &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	case s.cfg.Start == StartLatest:
		return &types.StartingPosition{Type: types.ShardIteratorTypeLatest}
	default:
		return &types.StartingPosition{Type: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(s.cfg.Timestamp)}
	}
}

// readFanOut reads one shard by subscriptions until it ends or ctx is done.
// A subscription lasts at most 5 minutes; when it ends, or fails, the
// shard is subscribed again after the last event's continuation sequence
// number (with backoff after a failure).
func (s *Source) readFanOut(ctx context.Context, r *shardset.Reader, resume ingest.Resumer, out chan<- ingest.Chunk) error {
	from, ok, err := resume.Resume(ctx, r.Shard)
	if err != nil {
		return err
	}
	var skip *streamd.Position
	if ok {
		skip = &from
		r.Resumed(from)
	}
	st := fanOutState{skip: skip, checkLoss: skip != nil}
	backoff := s.cfg.PollInterval
	for {
		arn, err := s.consumer(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var rnf *types.ResourceNotFoundException
			if errors.As(err, &rnf) {
				return err
			}
			s.log.Warn("stream consumer not ready; retrying", slog.String("error", err.Error()))
			if !sleep(ctx, s.jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, s.cfg.MaxBackoff)
			continue
		}
		pos := s.startingPosition(r.Shard, st.cont, st.skip, st.horizon)
		res, err := s.efo.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(arn), ShardId: aws.String(r.Shard), StartingPosition: pos}, ownEventCodec)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var rnf *types.ResourceNotFoundException
			var bad *types.InvalidArgumentException
			switch {
			case errors.As(err, &rnf):
				return fmt.Errorf("subscribe to shard: %w", err)
			case errors.As(err, &bad) && pos.Type == types.ShardIteratorTypeAtSequenceNumber:
				// The checkpoint is older than the trim horizon: read
				// what is left.
				s.reportLoss(r.Shard, st.skip.Seq, "(subscription refused: "+bad.ErrorMessage()+")")
				st.horizon, st.checkLoss = true, false
				continue
			case s.throttled(err):
			default:
				s.log.Warn("subscribe to shard failed; retrying", slog.String("shard", r.Shard), slog.String("error", err.Error()))
			}
			if !sleep(ctx, s.jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, s.cfg.MaxBackoff)
			continue
		}
		s.m.subscriptions.WithLabelValues(s.cfg.Stream).Inc()
		stream := res.GetStream()
		end, got, err := s.consumeSubscription(ctx, r, stream, &st, out)
		stream.Close()
		switch {
		case ctx.Err() != nil || end:
			if end {
				s.log.Info("shard closed and read to its end", slog.String("shard", r.Shard))
			}
			return nil
		case err != nil:
			s.log.Warn("subscription failed; subscribing again", slog.String("shard", r.Shard), slog.String("error", err.Error()))
			if got {
				backoff = s.cfg.PollInterval
			}
			if !sleep(ctx, s.jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, s.cfg.MaxBackoff)
		default: // the subscription's 5 minutes ended
			backoff = s.cfg.PollInterval
		}
	}
}

// fanOutState carries a shard's read position across subscriptions.
type fanOutState struct {
	skip      *streamd.Position // committed position, until a record after it is read
	checkLoss bool              // the first record read should be skip's
	horizon   bool              // start at the trim horizon (checkpoint trimmed)
	cont      string            // continuation sequence number of the last event
}

// consumeSubscription sends the records of one subscription's events. It
// returns end when the shard ended and was read to its end, got when at
// least one event arrived, and the stream's error.
func (s *Source) consumeSubscription(ctx context.Context, r *shardset.Reader, stream *kinesis.SubscribeToShardEventStream, st *fanOutState, out chan<- ingest.Chunk) (end, got bool, err error) {
	var recs []streamd.Record
	for {
		var ev types.SubscribeToShardEventStream
		var ok bool
		select {
		case ev, ok = <-stream.Events():
		case <-ctx.Done():
			return false, got, nil
		}
		if !ok {
			return false, got, stream.Err()
		}
		e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		if !isEvent {
			continue // an event type added after this SDK version
		}
		got = true
		res := e.Value
		if res.MillisBehindLatest != nil {
			s.setBehind(r.Shard, *res.MillisBehindLatest)
		}
		if st.checkLoss && len(res.Records) > 0 {
			st.checkLoss = false
			if first := aws.ToString(res.Records[0].SequenceNumber); first != st.skip.Seq {
				s.reportLoss(r.Shard, st.skip.Seq, first)
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
			recs = deaggregate(recs, kr.Data, seq, t, st.skip)
			for _, rec := range recs[n:] {
				if rec.Err != "" {
					s.m.corrupt.WithLabelValues(s.cfg.Stream).Inc()
					s.log.Error("corrupt KPL aggregate; dead-lettering it", slog.String("shard", r.Shard), slog.String("seq", seq), slog.String("error", rec.Err))
				}
			}
		}
		if len(res.Records) > 0 {
			st.skip = nil
		}
		if c := aws.ToString(res.ContinuationSequenceNumber); c != "" {
			st.cont = c
		}
		// A closed shard's last event names its children.
		end = len(res.ChildShards) > 0
		if len(recs) > 0 || end {
			if !s.deliver(ctx, r, recs, end, out) {
				return false, got, nil
			}
		}
		if end {
			return true, got, nil
		}
	}
}

// ownEventCodec gives one SubscribeToShard call a protocol instance of its
// own. The SDK's client keeps a single awsJson protocol, and with it a
// single event-stream decoder and payload buffer, for every call (smithy-go
// v1.28.8–v1.28.9): two subscriptions read at once — every source reading
// more than one shard — race on that buffer, so one shard's records could
// be decoded from another's bytes. A new client's protocol is a fresh one;
// building it does no I/O.
func ownEventCodec(o *kinesis.Options) {
	o.Protocol = kinesis.New(kinesis.Options{}).Options().Protocol
}
