package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink"
)

// Limits of BatchWriteItem and DynamoDB items.
const (
	MaxBatchItems = 25
	MaxBatchBytes = 16 << 20
	MaxItemBytes  = 400 << 10
)

// Defaults of Config.
const (
	DefaultConcurrency  = 4
	DefaultRetryTimeout = 2 * time.Minute
	DefaultBackoffBase  = 25 * time.Millisecond
	DefaultBackoffMax   = 5 * time.Second
)

// OpColumn is the CDC column: when a batch has a string column of this
// name, a row whose value is "remove" (any case) deletes its key. The
// column itself is never written.
const OpColumn = "op"

// Errors.
var (
	// ErrBadConfig is wrapped by New for an invalid Config and by Write for
	// a schema the config does not fit (a missing or unusable key column).
	ErrBadConfig = errors.New("bad dynamodb sink config")
	// ErrRetriesExhausted is wrapped by Write when throttling, unprocessed
	// items or server errors persisted past Config.RetryTimeout.
	ErrRetriesExhausted = errors.New("dynamodb retries exhausted")
	// ErrRejected is wrapped by Write when DynamoDB refused a request in a
	// way no retry fixes (a missing table, a key schema that does not
	// match, no permission).
	ErrRejected = errors.New("dynamodb rejected the request")
	// ErrClosed is returned by Write after Close.
	ErrClosed = errors.New("dynamodb sink closed")
	// ErrIntentMismatch is returned by Write for an intent of another
	// pipeline.
	ErrIntentMismatch = errors.New("intent does not belong to this sink")
)

// API is the part of *dynamodb.Client the sink uses.
type API interface {
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// Config configures a Sink.
type Config struct {
	// Pipeline is the pipeline name: intents of other pipelines are
	// refused, and metrics carry it as the "pipeline" label. Required.
	Pipeline string
	// Client sends the requests, typically dynamodb.NewFromConfig of the
	// default chain's config. Required. The sink turns the SDK's own
	// retries off per call and retries itself, so that throttling is
	// counted and bounded by RetryTimeout.
	Client API
	// Table is the table name. Required.
	Table string
	// Key are the key columns: the partition key, then the sort key if the
	// table has one; they must match the table's key schema. Key columns
	// are string, int32, int64, decimal, date, timestamp or binary.
	// Required.
	Key []string
	// Concurrency is the number of BatchWriteItem requests of one Write in
	// flight at once (default DefaultConcurrency). More overlaps round
	// trips; on a provisioned table it also spends capacity faster and
	// meets throttling sooner.
	Concurrency int
	// RetryTimeout bounds how long one Write keeps retrying throttled
	// requests, unprocessed items and server errors before it fails with
	// ErrRetriesExhausted (default DefaultRetryTimeout). Longer rides out
	// longer throttling; shorter hands the batch back to the pipeline's
	// retry sooner.
	RetryTimeout time.Duration
	// BackoffBase and BackoffMax shape the exponential backoff with full
	// jitter between retries (defaults DefaultBackoffBase,
	// DefaultBackoffMax).
	BackoffBase, BackoffMax time.Duration
	// Registerer receives the sink's metrics (default: none registered).
	Registerer prometheus.Registerer
	// Logger receives debug logs (default: discarded).
	Logger *slog.Logger
}

// Sink writes batches into a DynamoDB table with BatchWriteItem. Writes
// are idempotent by key, so a redo of an intent leaves the same items. It
// is safe for concurrent use.
type Sink struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	mu     sync.Mutex
	plans  map[string]*plan
	closed bool
}

var _ sink.Sink = (*Sink)(nil)

// New checks cfg and returns a Sink. It does no I/O.
func New(cfg Config) (*Sink, error) {
	bad := func(format string, args ...any) (*Sink, error) {
		return nil, fmt.Errorf("new dynamodb sink: "+format+": %w", append(args, ErrBadConfig)...)
	}
	switch {
	case cfg.Pipeline == "":
		return bad("pipeline name is empty")
	case cfg.Client == nil:
		return bad("no client")
	case cfg.Table == "":
		return bad("no table")
	case len(cfg.Key) == 0 || len(cfg.Key) > 2:
		return bad("key has %d columns, want 1 (partition) or 2 (partition, sort)", len(cfg.Key))
	case cfg.Key[0] == "" || len(cfg.Key) == 2 && (cfg.Key[1] == "" || cfg.Key[0] == cfg.Key[1]):
		return bad("key columns %q empty or repeated", cfg.Key)
	case slices.Contains(cfg.Key, OpColumn):
		return bad("the CDC column %q cannot be a key", OpColumn)
	case cfg.Concurrency < 0 || cfg.RetryTimeout < 0 || cfg.BackoffBase < 0 || cfg.BackoffMax < 0:
		return bad("negative concurrency or duration")
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.RetryTimeout == 0 {
		cfg.RetryTimeout = DefaultRetryTimeout
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = DefaultBackoffBase
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Key = slices.Clone(cfg.Key)
	m, err := newMetrics(cfg.Registerer, cfg.Pipeline)
	if err != nil {
		return nil, fmt.Errorf("new dynamodb sink: %w", err)
	}
	return &Sink{cfg: cfg, log: cfg.Logger, m: m, plans: map[string]*plan{}}, nil
}

// Close marks the sink closed; the client is the caller's.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// Write makes the rows of b items of the table: a PutRequest per row, or a
// DeleteRequest of its key when the row's op column says "remove". Within
// the batch the last row of a key wins (BatchWriteItem refuses a key twice
// in one request). Requests of at most 25 items and 16 MB go out
// Concurrency at a time; UnprocessedItems, throttling and server errors
// are retried with exponential backoff and full jitter until RetryTimeout,
// then Write fails with ErrRetriesExhausted. Rows DynamoDB would refuse
// for good — a null or empty key, an item over 400 KB, a float64 NaN or
// infinity, malformed JSON — are dead-lettered: moved from b's rows into
// b.Dead with a reason naming the column, keeping b reconciled.
//
// On error b is left as it was and nothing counts as committed; some items
// may already be written, each whole (DynamoDB applies an item atomically),
// and the redo of the intent writes the same items again, so the table
// converges to the same state.
func (s *Sink) Write(ctx context.Context, in streamd.Intent, b *streamd.Batch) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("write dynamodb batch: %w", ErrClosed)
	}
	if in.Pipeline != "" && in.Pipeline != s.cfg.Pipeline {
		return fmt.Errorf("write dynamodb batch: intent of pipeline %q to sink of %q: %w", in.Pipeline, s.cfg.Pipeline, ErrIntentMismatch)
	}
	if b == nil || b.Len() == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write dynamodb batch: %w", err)
	}
	p, err := s.plan(b.Schema)
	if err != nil {
		return fmt.Errorf("write dynamodb batch: %w", err)
	}
	start := time.Now()
	reqs, dead := p.requests(b)
	chunks := chunk(reqs)
	if err := s.send(ctx, start.Add(s.cfg.RetryTimeout), chunks); err != nil {
		return fmt.Errorf("write dynamodb batch %s [%s, %s] to %s: %w", in.Lane, in.From, in.To, s.cfg.Table, err)
	}
	puts, dels := 0, 0
	for _, r := range reqs {
		if r.req.DeleteRequest != nil {
			dels++
		} else {
			puts++
		}
	}
	s.m.items.WithLabelValues("put").Add(float64(puts))
	s.m.items.WithLabelValues("delete").Add(float64(dels))
	if len(dead) > 0 {
		s.m.dead.Add(float64(len(dead)))
		deadLetter(b, dead)
	}
	s.log.DebugContext(ctx, "dynamodb batch written", "pipeline", s.cfg.Pipeline, "table", s.cfg.Table, "lane", in.Lane,
		"from", in.From.String(), "to", in.To.String(), "puts", puts, "deletes", dels, "dead", len(dead),
		"requests", len(chunks), "took", time.Since(start))
	return nil
}

// deadRow is a row dead-lettered with its reason.
type deadRow struct {
	row    int
	reason string
}

// deadLetter moves the rows of dead (ascending, distinct) into b.Dead.
func deadLetter(b *streamd.Batch, dead []deadRow) {
	keep := make([]bool, b.Len())
	for i := range keep {
		keep[i] = true
	}
	var raw []byte
	for _, d := range dead {
		keep[d.row] = false
		raw = streamd.AppendRowJSON(raw[:0], b, d.row)
		b.AddDead(b.Pos[d.row], d.reason, raw)
	}
	b.Keep(keep)
}

// writeReq is one write request with its estimated size.
type writeReq struct {
	req  types.WriteRequest
	size int
}

// chunk groups requests into BatchWriteItem calls of at most
// MaxBatchItems items and MaxBatchBytes bytes.
func chunk(reqs []writeReq) [][]writeReq {
	var out [][]writeReq
	var cur []writeReq
	size := 0
	for _, r := range reqs {
		if len(cur) == MaxBatchItems || len(cur) > 0 && size+r.size > MaxBatchBytes {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, r)
		size += r.size
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// send runs the chunks, Concurrency at a time, until all are written or
// one fails for good.
func (s *Sink) send(ctx context.Context, deadline time.Time, chunks [][]writeReq) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	jobs := make(chan []writeReq)
	for range min(s.cfg.Concurrency, len(chunks)) {
		wg.Go(func() {
			for c := range jobs {
				if err := s.sendChunk(ctx, deadline, c); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
				}
			}
		})
	}
feed:
	for _, c := range chunks {
		select {
		case jobs <- c:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

var (
	throttles  = retry.IsErrorThrottles(retry.DefaultThrottles)
	retryables = retry.IsErrorRetryables(retry.DefaultRetryables)
)

// noSDKRetries turns the client's own retries off for one call: the sink
// retries, counts throttling and honours RetryTimeout itself.
func noSDKRetries(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }

// sendChunk writes one chunk, retrying throttling, server errors and
// unprocessed items.
func (s *Sink) sendChunk(ctx context.Context, deadline time.Time, c []writeReq) error {
	pending := make([]types.WriteRequest, len(c))
	for i, r := range c {
		pending[i] = r.req
	}
	for attempt := 0; ; attempt++ {
		start := time.Now()
		out, err := s.cfg.Client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{s.cfg.Table: pending},
		}, noSDKRetries)
		s.m.latency.Observe(time.Since(start).Seconds())
		var cause error
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil && throttles.IsErrorThrottle(err) == aws.TrueTernary:
			s.m.throttles.Inc()
			cause = err
		case err != nil && retryables.IsErrorRetryable(err) == aws.TrueTernary:
			cause = err
		case err != nil:
			return fmt.Errorf("batch write item: %w: %w", err, ErrRejected)
		default:
			un := out.UnprocessedItems[s.cfg.Table]
			if len(un) == 0 {
				return nil
			}
			s.m.unprocessed.Add(float64(len(un)))
			pending = un
			cause = fmt.Errorf("%d unprocessed items", len(un))
		}
		wait := backoff(s.cfg.BackoffBase, s.cfg.BackoffMax, attempt)
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%d items still pending after %d attempts, last: %w: %w", len(pending), attempt+1, cause, ErrRetriesExhausted)
		}
		s.log.DebugContext(ctx, "dynamodb batch write retry", "table", s.cfg.Table, "items", len(pending),
			"attempt", attempt+1, "wait", wait, "cause", cause.Error())
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// backoff returns a full-jitter exponential backoff: uniform in
// [0, min(max, base·2^attempt)].
func backoff(base, max time.Duration, attempt int) time.Duration {
	d := max
	if attempt < 30 && base<<attempt < max {
		d = base << attempt
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// metrics are the sink's Prometheus collectors, with a constant
// "pipeline" label so that sinks of several pipelines share a registerer.
type metrics struct {
	items       *prometheus.CounterVec // op: put | delete
	dead        prometheus.Counter
	unprocessed prometheus.Counter
	throttles   prometheus.Counter
	latency     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, pipeline string) (*metrics, error) {
	cl := prometheus.Labels{"pipeline": pipeline}
	m := &metrics{
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_dynamodb_items_written_total", ConstLabels: cl,
			Help: "Items written by the DynamoDB sink, by request type (put, delete).",
		}, []string{"op"}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamd_dynamodb_rows_dead_lettered_total", ConstLabels: cl,
			Help: "Rows the DynamoDB sink dead-lettered (null or empty key, item too large, unrepresentable value).",
		}),
		unprocessed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamd_dynamodb_unprocessed_retries_total", ConstLabels: cl,
			Help: "Items returned as UnprocessedItems and sent again.",
		}),
		throttles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamd_dynamodb_throttles_total", ConstLabels: cl,
			Help: "BatchWriteItem calls refused with a throttling error.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamd_dynamodb_batch_write_duration_seconds", ConstLabels: cl,
			Help:    "Duration of one BatchWriteItem call.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 12),
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.items, m.dead, m.unprocessed, m.throttles, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics of pipeline %q: %w", pipeline, err)
		}
	}
	return m, nil
}
