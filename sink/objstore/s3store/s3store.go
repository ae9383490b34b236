package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/streamd/streamd/sink"
	"github.com/streamd/streamd/sink/objstore"
)

// Defaults of a Store.
const (
	DefaultPartSize    = 8 << 20 // multipart part size in bytes
	DefaultConcurrency = 4       // parts uploaded in parallel per Put
	DefaultMaxAttempts = 10      // attempts per request, first included
	DefaultMaxBackoff  = 20 * time.Second
	// cleanupTimeout bounds the aborts made after a failed Put.
	cleanupTimeout = 60 * time.Second
)

// ErrBadURL is returned by Open for a URL that is not s3://bucket[/prefix].
var ErrBadURL = errors.New("bad s3 url")

// ErrObjectDiffers is returned by Put in If-None-Match mode when the object
// already exists with other content than what was to be written. Output is a
// pure function of the intent, so this means a bug or a changed
// configuration; the existing object is never overwritten.
var ErrObjectDiffers = errors.New("existing object differs")

// ErrBadSSE is returned for an invalid server-side encryption setting.
var ErrBadSSE = errors.New("invalid server-side encryption")

// SSEType is a server-side encryption mode.
type SSEType string

// The server-side encryption modes.
const (
	SSENone SSEType = ""        // no header: the bucket's default applies
	SSES3   SSEType = "AES256"  // SSE-S3, keys managed by S3
	SSEKMS  SSEType = "aws:kms" // SSE-KMS, keys in AWS KMS
)

// ParseSSEType parses a config name: "" or "none", "s3" (or "AES256"),
// "kms" (or "aws:kms").
func ParseSSEType(s string) (SSEType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none":
		return SSENone, nil
	case "s3", "aes256", "sse-s3":
		return SSES3, nil
	case "kms", "aws:kms", "sse-kms":
		return SSEKMS, nil
	}
	return "", fmt.Errorf("parse sse type %q (want none, s3 or kms): %w", s, ErrBadSSE)
}

// SSE is the server-side encryption requested for every object.
type SSE struct {
	// Type is the mode; SSENone sends no encryption header.
	Type SSEType
	// KMSKeyID is the KMS key (ID, ARN or alias ARN) for SSEKMS; empty
	// means the account's AWS managed key aws/s3. Only valid with SSEKMS.
	KMSKeyID string
	// BucketKey enables an S3 Bucket Key for SSEKMS, which cuts KMS
	// requests (and their cost and throttling) by reusing a bucket-level
	// data key. Only valid with SSEKMS.
	BucketKey bool
}

// Validate reports an invalid combination, wrapping ErrBadSSE.
func (e SSE) Validate() error {
	switch e.Type {
	case SSENone, SSES3:
		if e.KMSKeyID != "" || e.BucketKey {
			return fmt.Errorf("sse %q: kms key id and bucket key need sse-kms: %w", e.Type, ErrBadSSE)
		}
	case SSEKMS:
	default:
		return fmt.Errorf("sse type %q: %w", e.Type, ErrBadSSE)
	}
	return nil
}

// apply sets the encryption fields of a PutObject input (the upload manager
// copies them to CreateMultipartUpload).
func (e SSE) apply(in *s3.PutObjectInput) {
	switch e.Type {
	case SSES3:
		in.ServerSideEncryption = types.ServerSideEncryptionAes256
	case SSEKMS:
		in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		if e.KMSKeyID != "" {
			in.SSEKMSKeyId = aws.String(e.KMSKeyID)
		}
		if e.BucketKey {
			in.BucketKeyEnabled = aws.Bool(true)
		}
	}
}

type options struct {
	sse         SSE
	ifNoneMatch bool
	partSize    int64
	concurrency int
	maxAttempts int
	maxBackoff  time.Duration
	pathStyle   bool
	logger      *slog.Logger
}

// Option configures a Store (and, for Open, its client).
type Option func(*options)

// WithPartSize sets the multipart part size; objects smaller than it go up
// in one PutObject. S3 needs at least 5 MiB.
func WithPartSize(n int64) Option { return func(o *options) { o.partSize = n } }

// WithConcurrency sets how many parts of one object upload in parallel.
func WithConcurrency(n int) Option { return func(o *options) { o.concurrency = n } }

// WithSSE sets the server-side encryption requested for every object
// (PutObject and CreateMultipartUpload). The default is none: the bucket's
// default encryption applies (S3 encrypts new objects with SSE-S3 unless the
// bucket says otherwise). An invalid SSE makes Open fail, and every Put of a
// store built with New.
func WithSSE(sse SSE) Option { return func(o *options) { o.sse = sse } }

// WithIfNoneMatch turns on never-overwrite mode (default off). Every Put
// sends If-None-Match: * (on PutObject, or on CompleteMultipartUpload for a
// multipart upload), so an existing object is never replaced. When S3
// answers 412 Precondition Failed, the store reads the existing object and
// compares its SHA-256 with that of the bytes it was given (hashed while
// they streamed, so nothing is buffered): identical is success (a redo of
// an intent, whose content is deterministic), different is an error wrapping
// ErrObjectDiffers that names the key, and the existing object is left
// untouched. The cost is one read of the object per 412, and a large object
// that already exists is uploaded in full before the 412 (S3 checks the
// condition at completion).
func WithIfNoneMatch(on bool) Option { return func(o *options) { o.ifNoneMatch = on } }

// WithLogger sets the logger for aborted and swept uploads.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithPathStyle forces path-style addressing (Open only; Open already uses
// it when an endpoint override is set).
func WithPathStyle(on bool) Option { return func(o *options) { o.pathStyle = on } }

// WithRetries sets the retryer's attempts per request and its largest
// backoff (Open only).
func WithRetries(maxAttempts int, maxBackoff time.Duration) Option {
	return func(o *options) { o.maxAttempts, o.maxBackoff = maxAttempts, maxBackoff }
}

func buildOptions(opts []Option) options {
	o := options{
		partSize:    DefaultPartSize,
		concurrency: DefaultConcurrency,
		maxAttempts: DefaultMaxAttempts,
		maxBackoff:  DefaultMaxBackoff,
	}
	for _, f := range opts {
		f(&o)
	}
	if o.partSize < manager.MinUploadPartSize {
		o.partSize = manager.MinUploadPartSize
	}
	if o.concurrency < 1 {
		o.concurrency = 1
	}
	if o.maxAttempts < 1 {
		o.maxAttempts = 1
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// NewRetryer returns the retry policy Open gives its client: the SDK's
// standard retryer (exponential backoff with jitter; 500/502/503/504,
// throttling codes such as SlowDown, and connection errors) with
// maxAttempts attempts, backoff up to maxBackoff, an unexpected EOF also
// retried, and no client-side retry quota (a long outage must not turn
// into immediate failures once a token bucket runs dry).
func NewRetryer(maxAttempts int, maxBackoff time.Duration) aws.Retryer {
	return retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = maxAttempts
		so.MaxBackoff = maxBackoff
		so.RateLimiter = ratelimit.None
		so.Retryables = append(append([]retry.IsErrorRetryable(nil), so.Retryables...),
			retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return aws.TrueTernary
				}
				return aws.UnknownTernary
			}))
	})
}

// Store is a sink.ObjectStore over the objects of a bucket under a prefix.
// It is safe for concurrent use.
type Store struct {
	client *s3.Client
	bucket string
	prefix string
	o      options

	mu   sync.Mutex
	live map[string]int // multipart upload IDs in progress in this process
}

var _ sink.ObjectStore = (*Store)(nil)

// New returns a store for the objects of bucket under prefix (a "/" is
// added when missing; "" is the whole bucket). It does no I/O.
func New(client *s3.Client, bucket, prefix string, opts ...Option) *Store {
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Store{client: client, bucket: bucket, prefix: prefix, o: buildOptions(opts), live: map[string]int{}}
}

// ParseURL splits s3://bucket/prefix into bucket and prefix.
func ParseURL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("parse s3 url %q: %w", raw, ErrBadURL)
	}
	if u.Scheme != "s3" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("parse s3 url %q: want s3://bucket[/prefix]: %w", raw, ErrBadURL)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// Open parses s3://bucket/prefix, loads the SDK's default configuration
// (which reads AWS_REGION, credentials, AWS_ENDPOINT_URL_S3 /
// AWS_ENDPOINT_URL and AWS_CA_BUNDLE itself) and returns a store whose
// client retries with NewRetryer and uses path-style addressing when an
// endpoint override is set or WithPathStyle asks for it. logger may be nil.
func Open(ctx context.Context, rawURL string, logger *slog.Logger, opts ...Option) (*Store, error) {
	bucket, prefix, err := ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rawURL, err)
	}
	if logger != nil {
		opts = append([]Option{WithLogger(logger)}, opts...)
	}
	o := buildOptions(opts)
	if err := o.sse.Validate(); err != nil {
		return nil, fmt.Errorf("open %s: %w", rawURL, err)
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryer(func() aws.Retryer {
		return NewRetryer(o.maxAttempts, o.maxBackoff)
	}))
	if err != nil {
		return nil, fmt.Errorf("open %s: load aws config: %w", rawURL, err)
	}
	pathStyle := o.pathStyle || cfg.BaseEndpoint != nil ||
		os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	client := s3.NewFromConfig(cfg, func(so *s3.Options) { so.UsePathStyle = pathStyle })
	return New(client, bucket, prefix, opts...), nil
}

// Bucket returns the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// Prefix returns the store's key prefix ("" or ending in "/").
func (s *Store) Prefix() string { return s.prefix }

// Key returns the S3 key of the object name.
func (s *Store) Key(name string) string { return s.prefix + name }

// Put uploads the object name. Objects smaller than the part size go up in
// one PutObject, larger ones as a multipart upload. On failure or
// cancellation no object (and no partial object) appears under name, and
// the multipart uploads this Put started are aborted.
//
// A Put whose final request succeeded on S3 but whose response was lost
// after every retry can report an error although the (whole) object is in
// place; a redo rewrites it. With WithIfNoneMatch, an existing object is
// never replaced: the Put succeeds when it holds the same bytes and fails
// with ErrObjectDiffers otherwise.
func (s *Store) Put(ctx context.Context, name string, r io.Reader) error {
	if err := s.put(ctx, name, r); err != nil {
		return fmt.Errorf("put object %q: %w", name, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, name string, r io.Reader) error {
	if err := objstore.CheckName(name); err != nil {
		return err
	}
	if err := s.o.sse.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	key := s.Key(name)
	var h *hashReader
	body := io.Reader(ctxReader{ctx: ctx, r: r})
	if s.o.ifNoneMatch {
		h = &hashReader{r: body, h: sha256.New()}
		body = h
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(key),
		Body:   body,
	}
	s.o.sse.apply(in)
	if s.o.ifNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	tr := &tracker{UploadAPIClient: s.client, s: s}
	//lint:ignore SA1019 the upload manager is the SDK's multipart uploader in this SDK release set
	up := manager.NewUploader(tr, func(u *manager.Uploader) {
		u.PartSize = s.o.partSize
		u.Concurrency = s.o.concurrency
	})
	//lint:ignore SA1019 see above
	_, err := up.Upload(ctx, in)
	if err == nil {
		err = ctx.Err() // a cancellation seen only by the reader
	}
	ids, retried := tr.done()
	if err != nil {
		s.abort(ctx, key, ids)
	}
	if retried || err != nil {
		s.sweep(ctx, key)
	}
	if err != nil && h != nil && isPreconditionFailed(err) {
		return s.verifyExisting(ctx, key, h)
	}
	return err
}

// verifyExisting handles a 412 in If-None-Match mode: it hashes the rest of
// the input (the upload may have stopped reading early) and the existing
// object, and succeeds only when they are the same bytes.
func (s *Store) verifyExisting(ctx context.Context, key string, h *hashReader) error {
	if _, err := io.Copy(io.Discard, h); err != nil {
		return fmt.Errorf("read input after 412 on %q: %w", key, err)
	}
	want, wantN := h.h.Sum(nil), h.n
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("get existing object %q after 412: %w", key, err)
	}
	defer out.Body.Close()
	eh := sha256.New()
	n, err := io.Copy(eh, out.Body)
	if err != nil {
		return fmt.Errorf("read existing object %q after 412: %w", key, err)
	}
	if n != wantN || !bytes.Equal(eh.Sum(nil), want) {
		return fmt.Errorf("object %q exists with %d bytes, sha256 %x; wanted to write %d bytes, sha256 %x: %w",
			key, n, eh.Sum(nil), wantN, want, ErrObjectDiffers)
	}
	s.o.logger.DebugContext(ctx, "object already exists with identical content", "bucket", s.bucket, "key", key, "bytes", n)
	return nil
}

// isPreconditionFailed reports whether err is S3's answer to If-None-Match
// on an existing key.
func isPreconditionFailed(err error) bool {
	if apiCode(err) == "PreconditionFailed" {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == 412
}

// hashReader hashes what is read through it.
type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// abort aborts the multipart uploads of a failed Put. The upload manager
// aborts too, but with the caller's context, which may be cancelled.
func (s *Store) abort(ctx context.Context, key string, ids []string) {
	if len(ids) == 0 {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, id := range ids {
		_, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: aws.String(id),
		})
		var nsu *types.NoSuchUpload
		switch {
		case err == nil:
			s.o.logger.DebugContext(ctx, "aborted multipart upload", "bucket", s.bucket, "key", key, "upload_id", id)
		case errors.As(err, &nsu) || apiCode(err) == "NoSuchUpload":
		default:
			s.o.logger.WarnContext(ctx, "abort multipart upload", "bucket", s.bucket, "key", key, "upload_id", id, "err", err)
		}
	}
}

// sweep aborts multipart uploads of exactly key that no Put of this
// process is running: those orphaned when a CreateMultipartUpload
// response was lost and the request retried, or left by a crash.
func (s *Store) sweep(ctx context.Context, key string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var stray []string
	p := s3.NewListMultipartUploadsPaginator(s.client, &s3.ListMultipartUploadsInput{
		Bucket: aws.String(s.bucket), Prefix: aws.String(key),
	})
	for pages := 0; p.HasMorePages() && pages < 100; pages++ {
		out, err := p.NextPage(actx)
		if err != nil {
			s.o.logger.WarnContext(ctx, "list multipart uploads", "bucket", s.bucket, "key", key, "err", err)
			return
		}
		for _, u := range out.Uploads {
			if aws.ToString(u.Key) == key && !s.isLive(aws.ToString(u.UploadId)) {
				stray = append(stray, aws.ToString(u.UploadId))
			}
		}
	}
	if len(stray) > 0 {
		s.o.logger.InfoContext(ctx, "aborting stray multipart uploads", "bucket", s.bucket, "key", key, "count", len(stray))
		s.abort(ctx, key, stray)
	}
}

func (s *Store) isLive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[id] > 0
}

// tracker wraps the client for one Put: it records the multipart uploads
// created, and whether CreateMultipartUpload needed a retry (a lost
// response may have left an upload nobody knows).
type tracker struct {
	manager.UploadAPIClient
	s *Store

	mu      sync.Mutex
	ids     []string
	retried bool
}

func (t *tracker) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	out, err := t.UploadAPIClient.CreateMultipartUpload(ctx, in, opts...)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.retried = true // attempts may have created uploads
		return out, err
	}
	if a, ok := retry.GetAttemptResults(out.ResultMetadata); ok && len(a.Results) > 1 {
		t.retried = true
	}
	id := aws.ToString(out.UploadId)
	t.ids = append(t.ids, id)
	t.s.mu.Lock()
	t.s.live[id]++
	t.s.mu.Unlock()
	return out, nil
}

// done ends tracking and returns the uploads created and whether a sweep
// is needed.
func (t *tracker) done() ([]string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.mu.Lock()
	for _, id := range t.ids {
		if t.s.live[id]--; t.s.live[id] <= 0 {
			delete(t.s.live, id)
		}
	}
	t.s.mu.Unlock()
	return t.ids, t.retried
}

// ctxReader fails reads once ctx is done, so a cancelled Put stops reading.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isNotFound reports whether err says the key is missing (not the bucket).
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	switch apiCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	case "NoSuchBucket":
		return false
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == 404 && apiCode(err) == ""
}

// Get opens the object name; a missing key yields an error wrapping
// sink.ErrNotExist (a missing bucket does not).
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := objstore.CheckName(name); err != nil {
		return nil, fmt.Errorf("get object %q: %w", name, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.Key(name))})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("get object %q: %w", name, sink.ErrNotExist)
		}
		return nil, fmt.Errorf("get object %q: %w", name, err)
	}
	return out.Body, nil
}

// GetFrom opens the object name from byte off on (a ranged GET), so that
// a reader resuming in the middle of a large object does not transfer what
// it already read. An offset at or past the end gives an empty reader;
// ErrNotExist when the object is missing.
func (s *Store) GetFrom(ctx context.Context, name string, off int64) (io.ReadCloser, error) {
	if off <= 0 {
		return s.Get(ctx, name)
	}
	if err := objstore.CheckName(name); err != nil {
		return nil, fmt.Errorf("get object %q from %d: %w", name, off, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.Key(name)),
		Range: aws.String("bytes=" + strconv.FormatInt(off, 10) + "-")})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("get object %q from %d: %w", name, off, sink.ErrNotExist)
		}
		if apiCode(err) == "InvalidRange" {
			return io.NopCloser(strings.NewReader("")), nil // off is past the end
		}
		return nil, fmt.Errorf("get object %q from %d: %w", name, off, err)
	}
	return out.Body, nil
}

// List calls fn with the name of every object under prefix in lexical
// order, using ListObjectsV2 pages. Keys that are not valid object names
// (folder markers ending in "/", say) are skipped.
func (s *Store) List(ctx context.Context, prefix string, fn func(name string) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + prefix),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list objects %q: %w", prefix, err)
		}
		for _, o := range out.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if objstore.CheckName(name) != nil {
				continue
			}
			if err := fn(name); err != nil {
				return fmt.Errorf("list objects %q: %w", prefix, err)
			}
		}
	}
	return nil
}
