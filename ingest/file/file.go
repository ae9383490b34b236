package file

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
)

// ObjectReader reads objects of one S3 bucket (or any object store); names
// are keys relative to the bucket. sink/objstore/s3store satisfies it.
type ObjectReader interface {
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	List(ctx context.Context, prefix string, fn func(name string) error) error
}

// RangeReader is implemented by an ObjectReader that can open an object
// from a byte offset (a ranged GET; s3store does). The source uses it to
// resume in the middle of a plain (not gzip) JSON-lines object without
// transferring what it already read.
type RangeReader interface {
	GetFrom(ctx context.Context, name string, off int64) (io.ReadCloser, error)
}

// Config configures a file source.
type Config struct {
	// Paths are globs of local files ("data/*.jsonl") or of S3 keys
	// ("s3://bucket/prefix/*.jsonl.gz"). Files ending in .gz are
	// decompressed. Each matched file is a lane, read in name order.
	Paths []string
	// Format is "jsonl" (default) or "csv" (first line is the header).
	Format string
	// MaxRecordSize is the longest line accepted (default 1 MiB); longer
	// lines are dead-lettered, never fatal.
	MaxRecordSize int
	// ChunkRecords is the most records per chunk (default 4096). Larger
	// chunks amortise more per-chunk work; smaller ones reach the sink
	// sooner and hold less memory.
	ChunkRecords int
	// Parallel is how many files are read at once (default 2).
	Parallel int
	// OpenBucket returns a reader for an S3 bucket; required only when a
	// path is an s3:// URL.
	OpenBucket func(ctx context.Context, bucket string) (ObjectReader, error)
	// ReadAttempts is how often a remote (s3://) object whose transfer
	// breaks is opened again, resuming after the last record read, before
	// the rest of it is dead-lettered (default 8). Local read errors are not
	// retried.
	ReadAttempts int
	// RetryBackoff is the first pause before reopening (default 200ms),
	// doubling up to 10s.
	RetryBackoff time.Duration
	// Logger receives warnings (default: discard).
	Logger *slog.Logger

	// Follow tails each path as it grows, through rotation by rename and
	// by copytruncate, and never ends (see follow.go for the design). Each
	// path is then one literal local JSON-lines file (no glob, no s3://,
	// no .gz) and is its own lane, whichever inode is behind it.
	Follow bool
	// StateDir holds follow mode's generation → file identity map, one
	// small file per lane; required with Follow (by convention
	// <state_dir>/<pipeline>/follow).
	StateDir string
	// PollInterval is how often a followed file is checked for growth and
	// rotation (default 250ms): shorter means fresher data and a smaller
	// copytruncate loss window, for more stat calls.
	PollInterval time.Duration
}

// Defaults.
const (
	DefaultMaxRecordSize = 1 << 20
	DefaultChunkRecords  = 4096
	DefaultParallel      = 2
)

// Source reads files. It is safe to Run once.
type Source struct {
	cfg Config
	log *slog.Logger
}

// ErrNoFiles is returned by Run when a path pattern matches nothing.
var ErrNoFiles = errors.New("no files match")

// New validates cfg and returns a source. It does no I/O.
func New(cfg Config) (*Source, error) {
	if len(cfg.Paths) == 0 {
		return nil, errors.New("new file source: no paths")
	}
	switch cfg.Format {
	case "":
		cfg.Format = "jsonl"
	case "jsonl", "csv":
	default:
		return nil, fmt.Errorf("new file source: format %q (want jsonl or csv)", cfg.Format)
	}
	for _, p := range cfg.Paths {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("new file source: path %q: %w", p, err)
		}
	}
	if cfg.Follow {
		if cfg.Format != "jsonl" {
			return nil, fmt.Errorf("new file source: follow reads jsonl only, not %q", cfg.Format)
		}
		if cfg.StateDir == "" {
			return nil, errors.New("new file source: follow needs a state directory")
		}
		for _, p := range cfg.Paths {
			if strings.HasPrefix(p, "s3://") || strings.HasSuffix(p, ".gz") || strings.ContainsAny(p, `*?[\`) {
				return nil, fmt.Errorf("new file source: follow path %q: want one local, uncompressed file (no glob, s3:// or .gz)", p)
			}
		}
		if cfg.PollInterval <= 0 {
			cfg.PollInterval = DefaultPollInterval
		}
	}
	if cfg.MaxRecordSize <= 0 {
		cfg.MaxRecordSize = DefaultMaxRecordSize
	}
	if cfg.ChunkRecords <= 0 {
		cfg.ChunkRecords = DefaultChunkRecords
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if cfg.ReadAttempts <= 0 {
		cfg.ReadAttempts = 8
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 200 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, log: log}, nil
}

// lane is one file to read.
type lane struct {
	name   string // lane name: the local path or the s3:// URL
	bucket ObjectReader
	key    string // object key when bucket != nil
}

// Run implements ingest.Source: it reads every matched file to its end.
// With Follow it tails the paths until ctx is done instead.
func (s *Source) Run(ctx context.Context, resume ingest.Resumer, out chan<- ingest.Chunk) error {
	if s.cfg.Follow {
		return s.follow(ctx, resume, out)
	}
	lanes, err := s.expand(ctx)
	if err != nil {
		return err
	}
	work := make(chan lane)
	errc := make(chan error, s.cfg.Parallel)
	var wg sync.WaitGroup
	for i := 0; i < s.cfg.Parallel && i < len(lanes); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range work {
				if err := s.readLane(ctx, l, resume, out); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	var runErr error
feed:
	for _, l := range lanes {
		select {
		case work <- l:
		case err := <-errc:
			runErr = err
			break feed
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errc)
	if runErr == nil {
		runErr = <-errc
	}
	if runErr != nil && ctx.Err() != nil && errors.Is(runErr, ctx.Err()) {
		return nil
	}
	return runErr
}

// expand resolves the globs to a sorted, de-duplicated list of lanes.
func (s *Source) expand(ctx context.Context) ([]lane, error) {
	seen := map[string]bool{}
	var lanes []lane
	buckets := map[string]ObjectReader{}
	for _, p := range s.cfg.Paths {
		var found []lane
		if rest, ok := strings.CutPrefix(p, "s3://"); ok {
			bucket, pattern, _ := strings.Cut(rest, "/")
			if s.cfg.OpenBucket == nil {
				return nil, fmt.Errorf("expand path %q: s3 paths are not configured", p)
			}
			r := buckets[bucket]
			if r == nil {
				var err error
				if r, err = s.cfg.OpenBucket(ctx, bucket); err != nil {
					return nil, fmt.Errorf("expand path %q: %w", p, err)
				}
				buckets[bucket] = r
			}
			prefix := pattern
			if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
				prefix = pattern[:i]
			}
			err := r.List(ctx, prefix, func(name string) error {
				if ok, _ := path.Match(pattern, name); ok {
					found = append(found, lane{name: "s3://" + bucket + "/" + name, bucket: r, key: name})
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("expand path %q: %w", p, err)
			}
		} else {
			names, err := filepath.Glob(p)
			if err != nil {
				return nil, fmt.Errorf("expand path %q: %w", p, err)
			}
			for _, n := range names {
				if fi, err := os.Stat(n); err == nil && fi.Mode().IsRegular() {
					found = append(found, lane{name: n})
				}
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("expand path %q: %w", p, ErrNoFiles)
		}
		for _, l := range found {
			if !seen[l.name] {
				seen[l.name] = true
				lanes = append(lanes, l)
			}
		}
	}
	sort.Slice(lanes, func(i, j int) bool { return lanes[i].name < lanes[j].name })
	return lanes, nil
}

// open opens the lane's file from its start, or — when it can — from byte
// from on (a plain JSON-lines file: gzip streams and CSV headers are read
// from the start). It returns the offset the reader starts at.
func (s *Source) open(ctx context.Context, l lane, from int64) (io.ReadCloser, int64, error) {
	gz := strings.HasSuffix(l.name, ".gz")
	if gz || s.cfg.Format == "csv" || from < 0 {
		from = 0
	}
	var rc io.ReadCloser
	switch rr, ranged := l.bucket.(RangeReader); {
	case l.bucket != nil && ranged && from > 0:
		r, err := rr.GetFrom(ctx, l.key, from)
		if err != nil {
			return nil, 0, err
		}
		rc = r
	case l.bucket != nil:
		r, err := l.bucket.Get(ctx, l.key)
		if err != nil {
			return nil, 0, err
		}
		rc, from = r, 0
	default:
		f, err := os.Open(l.name)
		if err != nil {
			return nil, 0, err
		}
		if from > 0 {
			if _, err := f.Seek(from, io.SeekStart); err != nil {
				f.Close()
				return nil, 0, fmt.Errorf("seek to %d: %w", from, err)
			}
		}
		rc = f
	}
	if !gz {
		return rc, from, nil
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(rc, 256<<10))
	if err != nil {
		rc.Close()
		return nil, 0, fmt.Errorf("open gzip stream: %w", err)
	}
	return &gzipFile{Reader: zr, under: rc}, 0, nil
}

type gzipFile struct {
	*gzip.Reader
	under io.Closer
}

func (g *gzipFile) Close() error { return errors.Join(g.Reader.Close(), g.under.Close()) }

// readLane reads one file from its resume point to the end.
func (s *Source) readLane(ctx context.Context, l lane, resume ingest.Resumer, out chan<- ingest.Chunk) error {
	after, resumed, err := resume.Resume(ctx, l.name)
	if err != nil {
		return fmt.Errorf("read %s: %w", l.name, err)
	}
	backoff := s.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		r := s.readFrom(ctx, l, after, resumed, out)
		if r.err == nil || ctx.Err() != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return nil
		}
		if r.sendErr {
			return r.err
		}
		// A remote object whose transfer broke is opened again and read on
		// after the last record handed on; a local read error is permanent.
		if l.bucket == nil || attempt >= s.cfg.ReadAttempts {
			return s.endWithError(ctx, l, r.off, r.err, out)
		}
		s.log.Warn("reading object failed; reopening it after the last record read", slog.String("lane", l.name),
			slog.Int64("offset", r.off), slog.Int("attempt", attempt), slog.String("error", r.err.Error()))
		if r.last != nil {
			after, resumed = *r.last, true
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// readResult is how one pass over a lane ended.
type readResult struct {
	err     error
	sendErr bool              // err came from handing a chunk on (ctx done)
	off     int64             // where reading stopped
	last    *streamd.Position // the last record handed on, if any
}

// readFrom opens the lane and hands on its records after `after` (from the
// start when !resumed) until the end or the first error.
func (s *Source) readFrom(ctx context.Context, l lane, after streamd.Position, resumed bool, out chan<- ingest.Chunk) readResult {
	from := int64(0)
	if resumed {
		from = after.Offset // the last record handed on starts there
	}
	rc, start, err := s.open(ctx, l, from)
	if err != nil {
		return readResult{err: fmt.Errorf("open: %w", err)}
	}
	defer rc.Close()

	lr := newLineReader(rc, s.cfg.MaxRecordSize)
	lr.off = start
	var header []byte
	if s.cfg.Format == "csv" {
		h, _, _, err := lr.next()
		if err != nil && !errors.Is(err, io.EOF) {
			return readResult{err: err, off: lr.off}
		}
		header = bytes.Clone(h)
	}
	if resumed && after.Offset >= 0 { // -1: resume before the first line
		if err := lr.skipTo(after.Offset); err != nil {
			if errors.Is(err, io.EOF) {
				return s.sent(send(ctx, out, ingest.Chunk{Lane: l.name, Header: header, End: true}), nil)
			}
			return readResult{err: err, off: lr.off}
		}
	}

	var last *streamd.Position
	cb := newChunkBuilder(l.name, header)
	flush := func(end bool) error {
		if n := len(cb.recs); n > 0 {
			p := cb.recs[n-1].Pos
			last = &p
		}
		return send(ctx, out, cb.finish(end))
	}
	for {
		start := lr.off
		line, truncated, full, err := lr.next()
		if errors.Is(err, io.EOF) && line == nil {
			return s.sent(flush(true), last)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			if len(cb.recs) > 0 {
				if err := flush(false); err != nil {
					return s.sent(err, last)
				}
			}
			return readResult{err: err, off: start, last: last}
		}
		if truncated || len(bytes.TrimSpace(line)) > 0 {
			rec := cb.add(line, start)
			if truncated {
				rec.Err = fmt.Sprintf("record of %d bytes exceeds max_record_size %d bytes (raw holds its first %d bytes)", full, s.cfg.MaxRecordSize, len(line))
			}
		}
		if len(cb.recs) >= s.cfg.ChunkRecords || len(cb.buf) >= chunkBytes {
			if err := flush(false); err != nil {
				return s.sent(err, last)
			}
			cb = newChunkBuilder(l.name, header)
		}
	}
}

func (s *Source) sent(err error, last *streamd.Position) readResult {
	if err != nil {
		return readResult{err: err, sendErr: true, last: last}
	}
	return readResult{last: last}
}

// chunkBytes bounds the raw bytes of one chunk.
const chunkBytes = 1 << 20

// chunkBuilder collects records whose Data alias one buffer per chunk.
type chunkBuilder struct {
	lane   string
	header []byte
	buf    []byte
	recs   []streamd.Record
}

// chunkFree recycles chunk buffers once the pipeline has decoded them. A
// bounded free list rather than a sync.Pool: the pool drops its items at
// every GC, which with this allocation rate means almost always, and fresh
// megabyte buffers cost zeroing and page faults. Twelve buffers cover the
// chunks a few lanes have in flight.
var chunkFree = make(chan []byte, 12)

func newChunkBuilder(lane string, header []byte) *chunkBuilder {
	var buf []byte
	select {
	case buf = <-chunkFree:
	default:
		buf = make([]byte, 0, chunkBytes+64<<10)
	}
	return &chunkBuilder{lane: lane, header: header, buf: buf[:0], recs: make([]streamd.Record, 0, 1024)}
}

func (c *chunkBuilder) add(line []byte, off int64) *streamd.Record {
	start := len(c.buf)
	c.buf = append(c.buf, line...)
	c.recs = append(c.recs, streamd.Record{Data: c.buf[start:len(c.buf):len(c.buf)], Pos: streamd.Position{Offset: off}})
	return &c.recs[len(c.recs)-1]
}

func (c *chunkBuilder) finish(end bool) ingest.Chunk {
	buf := c.buf
	release := func() {
		if cap(buf) <= 2*(chunkBytes+64<<10) { // don't keep buffers a huge line grew
			select {
			case chunkFree <- buf[:0]:
			default:
			}
		}
	}
	return ingest.Chunk{Lane: c.lane, Header: c.header, Records: c.recs, End: end, Release: release}
}

// endWithError ends a lane whose file cannot be read further: the failure
// becomes a dead-letter record at the offset where reading stopped.
func (s *Source) endWithError(ctx context.Context, l lane, off int64, err error, out chan<- ingest.Chunk) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.log.Warn("file unreadable past offset; the rest of the file is dead-lettered as one record",
		slog.String("lane", l.name), slog.Int64("offset", off), slog.String("error", err.Error()))
	rec := streamd.Record{Pos: streamd.Position{Offset: off}, Err: fmt.Sprintf("read %s at byte %d: %v", l.name, off, err)}
	return send(ctx, out, ingest.Chunk{Lane: l.name, Records: []streamd.Record{rec}, End: true})
}

func send(ctx context.Context, out chan<- ingest.Chunk, c ingest.Chunk) error {
	select {
	case out <- c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
