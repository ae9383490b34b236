package opensearch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink"
)

// Defaults of Config.
const (
	DefaultBulkBytes    = 5 << 20
	DefaultConcurrency  = 2
	DefaultRetryTimeout = 2 * time.Minute
	DefaultBackoffBase  = 100 * time.Millisecond
	DefaultBackoffMax   = 5 * time.Second
	DefaultReqTimeout   = time.Minute
)

// Actions of Config.Action.
const (
	ActionIndex  = "index"
	ActionCreate = "create"
)

// Errors.
var (
	// ErrBadConfig is wrapped by New for an invalid Config and by Write for
	// a schema the config does not fit (an unknown id or index column).
	ErrBadConfig = errors.New("bad opensearch sink config")
	// ErrRetriesExhausted is wrapped by Write when 429/5xx answers persisted
	// past Config.RetryTimeout; nothing of the write counts and the intent
	// is redone.
	ErrRetriesExhausted = errors.New("opensearch retries exhausted")
	// ErrRejected is wrapped by Write when the cluster refused a request or
	// an item in a way no retry and no dead letter fixes (401, 403, a
	// missing index with auto-creation off, a malformed request).
	ErrRejected = errors.New("opensearch rejected the request")
	// ErrClosed is returned by Write after Close.
	ErrClosed = errors.New("opensearch sink closed")
	// ErrIntentMismatch is returned by Write for an intent of another
	// pipeline.
	ErrIntentMismatch = errors.New("intent does not belong to this sink")
)

// SigV4 signs requests with AWS Signature Version 4 (Amazon OpenSearch
// Service and OpenSearch Serverless) instead of basic auth.
type SigV4 struct {
	// Service is "es" (Amazon OpenSearch Service, the default) or "aoss"
	// (OpenSearch Serverless).
	Service string
	// Region is the AWS region of the domain or collection; required.
	Region string
	// Credentials sign each request; the default chain's provider from
	// config.LoadDefaultConfig is the usual choice. Required. It is wrapped
	// in an aws.CredentialsCache unless it is one.
	Credentials aws.CredentialsProvider
}

// Config configures a Sink.
type Config struct {
	// Pipeline is the pipeline name: intents of other pipelines are
	// refused, and metrics carry it as the "pipeline" label. Required.
	Pipeline string
	// URL is the cluster endpoint, http(s)://host:port, optionally with a
	// path prefix. Required.
	URL string
	// Index is the target index. It may hold {column} to route each row by
	// a column's value (sales-{transaction_date}), or {column:layout} with
	// a Go time layout for date and timestamp columns
	// (logs-{event_time:2006.01}). Without a layout a date or timestamp
	// renders as its UTC day YYYY-MM-DD. The rendered value is lowercased
	// and characters OpenSearch forbids in index names become '_'. A row
	// whose template column is null is dead-lettered. Required.
	Index string
	// ID are the columns the document _id is built from. One column: its
	// value as text. Several: the values joined with '|', with '\' and '|'
	// escaped by '\'. An id longer than 512 bytes becomes "sha256-" and the
	// hex SHA-256 of the text. A row with a null id column is
	// dead-lettered. Empty: the _id is the lane token and the row's
	// position ("<streamd.LaneToken(lane)>-<position>"), unique per record
	// and the same on a redo.
	ID []string
	// Action is ActionIndex (default: upsert, the last write of an _id
	// wins) or ActionCreate (write once: use it only when ids are unique
	// per record, as with no ID columns, since a later record with the same
	// _id is then kept out as a 409).
	Action string
	// Username and Password enable HTTP basic auth. Mutually exclusive
	// with SigV4.
	Username, Password string
	// SigV4, when set, signs requests for Amazon OpenSearch Service or
	// Serverless.
	SigV4 *SigV4
	// BulkBytes caps one _bulk request's NDJSON size before compression
	// (default DefaultBulkBytes, 5 MiB). Larger requests mean fewer round
	// trips but more memory and more work redone per retried request; keep
	// it under the cluster's http.max_content_length (100 MiB). A single
	// document larger than BulkBytes travels alone.
	BulkBytes int
	// DisableGzip sends bodies uncompressed. Gzip (the default) costs CPU
	// here and on the cluster, and typically cuts the bytes on the wire by
	// 5-10x for JSON rows.
	DisableGzip bool
	// Concurrency is the number of _bulk requests of one Write in flight at
	// once (default DefaultConcurrency). More overlaps round trips but
	// loads the cluster's write queue, which answers 429 when full.
	Concurrency int
	// RetryTimeout bounds how long one Write keeps retrying 429/5xx items
	// and failed requests before it gives up with ErrRetriesExhausted
	// (default DefaultRetryTimeout). Longer rides out longer overloads;
	// shorter hands the batch back to the pipeline's own retry sooner.
	RetryTimeout time.Duration
	// BackoffBase and BackoffMax shape the exponential backoff with full
	// jitter between retries (defaults DefaultBackoffBase,
	// DefaultBackoffMax).
	BackoffBase, BackoffMax time.Duration
	// RequestTimeout bounds one HTTP request (default DefaultReqTimeout).
	RequestTimeout time.Duration
	// HTTPClient sends the requests (default: a client on a clone of
	// http.DefaultTransport).
	HTTPClient *http.Client
	// Registerer receives the sink's metrics (default: none registered).
	Registerer prometheus.Registerer
	// Logger receives debug and warning logs (default: discarded).
	Logger *slog.Logger
}

// Sink indexes batches into OpenSearch with the _bulk API. Every row
// becomes one document whose _id is deterministic, so a redo of an intent
// writes the same documents again. It is safe for concurrent use.
type Sink struct {
	cfg    Config
	bulk   string // the _bulk URL
	client *http.Client
	log    *slog.Logger
	tmpl   []tmplPart
	m      *metrics

	mu     sync.Mutex
	plans  map[string]*plan // by schema fingerprint
	closed bool
}

var _ sink.Sink = (*Sink)(nil)

// New checks cfg and returns a Sink. It does no I/O.
func New(cfg Config) (*Sink, error) {
	bad := func(format string, args ...any) (*Sink, error) {
		return nil, fmt.Errorf("new opensearch sink: "+format+": %w", append(args, ErrBadConfig)...)
	}
	if cfg.Pipeline == "" {
		return bad("pipeline name is empty")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("url %q is not http(s)://host:port", cfg.URL)
	}
	tmpl, err := parseTemplate(cfg.Index)
	if err != nil {
		return bad("index %q: %v", cfg.Index, err)
	}
	seen := map[string]bool{}
	for _, c := range cfg.ID {
		if c == "" || seen[c] {
			return bad("id column %q empty or repeated", c)
		}
		seen[c] = true
	}
	switch cfg.Action {
	case "":
		cfg.Action = ActionIndex
	case ActionIndex, ActionCreate:
	default:
		return bad("action %q is not index or create", cfg.Action)
	}
	if cfg.SigV4 != nil {
		if cfg.Username != "" {
			return bad("username and sigv4 are mutually exclusive")
		}
		v := *cfg.SigV4
		if v.Service == "" {
			v.Service = "es"
		}
		if v.Service != "es" && v.Service != "aoss" {
			return bad("sigv4 service %q is not es or aoss", v.Service)
		}
		if v.Region == "" || v.Credentials == nil {
			return bad("sigv4 needs a region and credentials")
		}
		if _, ok := v.Credentials.(*aws.CredentialsCache); !ok {
			v.Credentials = aws.NewCredentialsCache(v.Credentials)
		}
		cfg.SigV4 = &v
	}
	if cfg.BulkBytes < 0 || cfg.Concurrency < 0 || cfg.RetryTimeout < 0 || cfg.BackoffBase < 0 || cfg.BackoffMax < 0 || cfg.RequestTimeout < 0 {
		return bad("negative size, concurrency or duration")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if cfg.BulkBytes == 0 {
		cfg.BulkBytes = DefaultBulkBytes
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	def(&cfg.RetryTimeout, DefaultRetryTimeout)
	def(&cfg.BackoffBase, DefaultBackoffBase)
	def(&cfg.BackoffMax, DefaultBackoffMax)
	def(&cfg.RequestTimeout, DefaultReqTimeout)
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.ID = slices.Clone(cfg.ID)
	m, err := newMetrics(cfg.Registerer, cfg.Pipeline)
	if err != nil {
		return nil, fmt.Errorf("new opensearch sink: %w", err)
	}
	return &Sink{
		cfg:    cfg,
		bulk:   strings.TrimSuffix(u.String(), "/") + "/_bulk",
		client: cfg.HTTPClient,
		log:    cfg.Logger,
		tmpl:   tmpl,
		m:      m,
		plans:  map[string]*plan{},
	}, nil
}

// Close marks the sink closed and releases idle connections.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.client.CloseIdleConnections()
	return nil
}

// Write indexes the rows of b. Rows are de-duplicated by (index, _id), the
// last row winning, and sent as _bulk requests of at most BulkBytes, gzip
// compressed, Concurrency at a time. Items answered 429 or 5xx (and whole
// requests answered 429, 5xx or lost to a network error) are retried with
// exponential backoff and full jitter until RetryTimeout, after which Write
// fails with ErrRetriesExhausted. Items answered 400 (a mapping error, an
// invalid index name) and rows that cannot be addressed (a null id or
// index column) are dead-lettered: moved from b's rows into b.Dead with the
// error type and reason, so b stays reconciled. A 409 counts as success: the
// _id is a pure function of the record, so an existing document with that
// _id is this row written by an earlier attempt of the same intent (with
// ActionCreate), or a concurrent write of the same key (with ActionIndex,
// which sends no version preconditions). Any other answer fails the Write
// with ErrRejected.
//
// On error b is left as it was, so the pipeline's retry starts over; some
// documents may already be indexed, each whole, and a redo indexes the same
// documents under the same _ids.
func (s *Sink) Write(ctx context.Context, in streamd.Intent, b *streamd.Batch) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("write opensearch batch: %w", ErrClosed)
	}
	if in.Pipeline != "" && in.Pipeline != s.cfg.Pipeline {
		return fmt.Errorf("write opensearch batch: intent of pipeline %q to sink of %q: %w", in.Pipeline, s.cfg.Pipeline, ErrIntentMismatch)
	}
	if b == nil || b.Len() == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write opensearch batch: %w", err)
	}
	p, err := s.plan(b.Schema)
	if err != nil {
		return fmt.Errorf("write opensearch batch: %w", err)
	}
	start := time.Now()
	enc, dead := s.prepare(p, b)
	reqs := s.split(enc)
	rdead, err := s.send(ctx, start.Add(s.cfg.RetryTimeout), enc, reqs)
	if err != nil {
		return fmt.Errorf("write opensearch batch %s [%s, %s]: %w", in.Lane, in.From, in.To, err)
	}
	dead = append(dead, rdead...)
	s.m.docs.WithLabelValues("indexed").Add(float64(b.Len() - len(dead)))
	if len(dead) > 0 {
		s.m.docs.WithLabelValues("dead_lettered").Add(float64(len(dead)))
		deadLetter(b, dead)
	}
	s.log.DebugContext(ctx, "opensearch batch written", "pipeline", s.cfg.Pipeline, "lane", in.Lane,
		"from", in.From.String(), "to", in.To.String(), "rows", b.Len(), "dead", len(dead), "requests", len(reqs),
		"took", time.Since(start))
	return nil
}

// deadRow is a row the cluster (or addressing) rejected for good.
type deadRow struct {
	row    int
	reason string
}

// deadLetter moves the rows of dead from b's rows into b.Dead.
func deadLetter(b *streamd.Batch, dead []deadRow) {
	slices.SortFunc(dead, func(x, y deadRow) int { return x.row - y.row })
	keep := make([]bool, b.Len())
	for i := range keep {
		keep[i] = true
	}
	var raw []byte
	for _, d := range dead {
		if !keep[d.row] {
			continue
		}
		keep[d.row] = false
		raw = streamd.AppendRowJSON(raw[:0], b, d.row)
		b.AddDead(b.Pos[d.row], d.reason, raw)
	}
	b.Keep(keep)
}
