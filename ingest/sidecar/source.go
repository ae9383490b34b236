package sidecar

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
)

// Defaults of Config.
const (
	DefaultLane            = "http"
	DefaultMaxBodyBytes    = 8 << 20
	DefaultMaxRecordBytes  = 1000 << 10 // Firehose's record limit: 1,000 KiB
	DefaultMaxBatchRecords = 500        // Firehose's PutRecordBatch limit
	DefaultMaxBatchBytes   = 4 << 20    // Firehose's PutRecordBatch limit
	DefaultWALMaxBytes     = 1 << 30
	DefaultSegmentBytes    = 64 << 20
	DefaultChunkRecords    = 4096
	DefaultShutdownTimeout = 10 * time.Second
	DefaultRetryAfter      = time.Second
)

// Config configures an HTTP sidecar source. Listen and Dir are required.
type Config struct {
	// Listen is the host:port the ingest server binds, normally
	// 127.0.0.1:PORT (the application in the same task or pod). Port 0
	// picks a free port; Addr tells which.
	Listen string
	// Dir is the write-ahead log's directory, by convention
	// <state_dir>/<pipeline>/wal. It must belong to this one source.
	Dir string
	// Lane is the name of the source's single lane (default "http"); it
	// appears in checkpoints and output names.
	Lane string
	// AuthToken, when set, is required on every request, either as
	// "Authorization: Bearer TOKEN" or as the access key id of a SigV4
	// Authorization header (an AWS SDK client configured with static
	// credentials whose access key id is the token). Anything else gets
	// 401. Default: no authentication (bind to loopback).
	AuthToken string
	// MaxBodyBytes bounds a request body, compressed and decompressed
	// (default 8 MiB, room for a full PutRecordBatch in base64). Larger
	// bodies get 413.
	MaxBodyBytes int64
	// MaxRecordBytes bounds one record (default 1,000 KiB, as Firehose).
	MaxRecordBytes int
	// MaxBatchRecords and MaxBatchBytes bound a PutRecordBatch (default
	// 500 records and 4 MiB of decoded data, as Firehose). POST /ingest is
	// bounded by MaxBodyBytes only.
	MaxBatchRecords int
	MaxBatchBytes   int64
	// WALMaxBytes is the log's disk budget (default 1 GiB). A request that
	// would pass it gets 503 with Retry-After and is not written: clients
	// back off until the pipeline has committed and segments are deleted.
	// A larger budget rides out longer sink outages; a smaller one bounds
	// the disk the sidecar can take.
	WALMaxBytes int64
	// SegmentBytes is the size at which the log starts a new segment file
	// (default 64 MiB). Disk is freed a whole segment at a time, so smaller
	// segments free it sooner at the cost of more files.
	SegmentBytes int64
	// ChunkRecords is the most records per chunk handed to the pipeline
	// (default 4096).
	ChunkRecords int
	// ShutdownTimeout bounds the graceful stop of the HTTP server when
	// Run's context is done (default 10s): no new connections, in-flight
	// requests finish and are acknowledged (or not) first.
	ShutdownTimeout time.Duration
	// RetryAfter is the Retry-After of a 503 (default 1s).
	RetryAfter time.Duration
	// Pipeline labels the metrics (ConstLabels pipeline=...).
	Pipeline string
	// Registerer receives the metrics (default: none).
	Registerer prometheus.Registerer
	// Logger receives warnings (default: discard).
	Logger *slog.Logger
}

// Source is the HTTP sidecar source. Run it once.
type Source struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	mu    sync.Mutex
	w     *wal
	addr  string
	ready chan struct{}
}

var _ ingest.Source = (*Source)(nil)
var _ ingest.Committer = (*Source)(nil)

// New validates cfg and registers the metrics. It does no I/O.
func New(cfg Config) (*Source, error) {
	if cfg.Listen == "" {
		return nil, errors.New("new sidecar source: no listen address")
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("new sidecar source: listen %q: %w", cfg.Listen, err)
	}
	if cfg.Dir == "" {
		return nil, errors.New("new sidecar source: no wal directory")
	}
	if cfg.Lane == "" {
		cfg.Lane = DefaultLane
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if cfg.MaxBatchRecords <= 0 {
		cfg.MaxBatchRecords = DefaultMaxBatchRecords
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if cfg.WALMaxBytes <= 0 {
		cfg.WALMaxBytes = DefaultWALMaxBytes
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = DefaultSegmentBytes
	}
	if cfg.SegmentBytes > offMask {
		return nil, fmt.Errorf("new sidecar source: segment size %d over the %d-byte maximum", cfg.SegmentBytes, int64(offMask))
	}
	if cfg.WALMaxBytes < cfg.MaxBodyBytes {
		return nil, fmt.Errorf("new sidecar source: wal budget %d is smaller than one request body (%d)", cfg.WALMaxBytes, cfg.MaxBodyBytes)
	}
	if cfg.ChunkRecords <= 0 {
		cfg.ChunkRecords = DefaultChunkRecords
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer, cfg.Pipeline)
	if err != nil {
		return nil, fmt.Errorf("new sidecar source: %w", err)
	}
	return &Source{cfg: cfg, log: log, m: m, ready: make(chan struct{})}, nil
}

// Ready is closed once Run has recovered the log and the server listens.
func (s *Source) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on ("" before Ready).
func (s *Source) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Committed implements ingest.Committer: segments whose records are all
// committed are deleted, freeing the disk budget.
func (s *Source) Committed(_ context.Context, lane string, pos streamd.Position) {
	s.mu.Lock()
	w := s.w
	s.mu.Unlock()
	if w == nil || lane != s.cfg.Lane {
		return
	}
	w.commitTo(pos)
}

// Run implements ingest.Source. It recovers the log (resuming after the
// committed position), starts the HTTP server, and hands on the log's
// records as they become durable. When ctx is done it shuts the server
// down gracefully (stop accepting, finish in-flight requests), stops the
// log and returns nil.
func (s *Source) Run(ctx context.Context, resume ingest.Resumer, out chan<- ingest.Chunk) error {
	after, resumed, err := resume.Resume(ctx, s.cfg.Lane)
	if err != nil {
		return fmt.Errorf("run sidecar source: %w", err)
	}
	w, err := openWAL(s.cfg.Dir, s.cfg.SegmentBytes, s.cfg.WALMaxBytes, after, resumed, s.m, s.log)
	if err != nil {
		return fmt.Errorf("run sidecar source: %w", err)
	}
	defer w.close()
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("run sidecar source: listen: %w", err)
	}
	s.mu.Lock()
	s.w, s.addr = w, ln.Addr().String()
	s.mu.Unlock()

	srv := &http.Server{
		Handler:           &handler{s: s, w: w},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	s.log.Info("sidecar ingest listening", slog.String("addr", s.addr), slog.String("wal", s.cfg.Dir))
	close(s.ready)

	readErr := make(chan error, 1)
	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	go func() { readErr <- s.read(readCtx, w, after, resumed, out) }()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("run sidecar source: serve: %w", err)
		serveErr <- nil
	case err := <-readErr:
		if err != nil {
			runErr = fmt.Errorf("run sidecar source: %w", err)
		}
		readErr <- nil
	}
	// Graceful stop: the server first, so every in-flight request is
	// answered after its append finished; then the log.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("sidecar server did not stop in time; closing connections", slog.String("error", err.Error()))
		_ = srv.Close()
	}
	cancel()
	<-serveErr
	w.close()
	stopRead()
	if err := <-readErr; err != nil && runErr == nil && !errors.Is(err, context.Canceled) {
		runErr = fmt.Errorf("run sidecar source: %w", err)
	}
	return runErr
}

// chunkBytes bounds the raw bytes of one chunk.
const chunkBytes = 1 << 20

// read tails the log from the record after `after` (from the oldest
// segment when !resumed) and sends chunks until ctx is done.
func (s *Source) read(ctx context.Context, w *wal, after streamd.Position, resumed bool, out chan<- ingest.Chunk) error {
	var seg uint64
	var off int64
	skipFirst := false
	if resumed {
		seg, off = unpackPos(after)
		skipFirst = true
	}
	r := &segReader{dir: w.dir}
	defer r.close()
	for {
		segs, changed, failed := w.state()
		if failed != nil {
			return failed
		}
		// Find the segment to read: seg itself if live, else the next live one.
		idx := -1
		for i, sg := range segs {
			if sg.num >= seg {
				idx = i
				break
			}
		}
		if idx >= 0 && segs[idx].num != seg {
			seg, off, skipFirst = segs[idx].num, 0, false
		}
		if idx < 0 {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		end := segs[idx].size
		last := idx == len(segs)-1
		if skipFirst {
			if off >= end {
				if last {
					select {
					case <-changed:
						continue
					case <-ctx.Done():
						return nil
					}
				}
				seg, off, skipFirst = seg+1, 0, false
				continue
			}
			n, err := r.frameLen(seg, off)
			if err != nil {
				return err
			}
			off += frameHeader + int64(n)
			skipFirst = false
		}
		if off < end {
			c, next, err := r.readChunk(seg, off, end, s.cfg.Lane, s.cfg.ChunkRecords)
			if err != nil {
				return err
			}
			select {
			case out <- c:
			case <-ctx.Done():
				return nil
			}
			off = next
			continue
		}
		if !last {
			seg, off = seg+1, 0
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// segReader reads frames of durable segment ranges.
type segReader struct {
	dir string
	seg uint64
	f   *os.File
	br  *bufio.Reader
	pos int64 // file offset br is at, -1 when unknown
	end int64 // where br's section ends
}

func (r *segReader) open(seg uint64) error {
	if r.f != nil && r.seg == seg {
		return nil
	}
	r.close()
	f, err := os.Open(filepath.Join(r.dir, segName(seg)))
	if err != nil {
		return fmt.Errorf("read wal: %w", err)
	}
	r.f, r.seg, r.pos = f, seg, -1
	return nil
}

func (r *segReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

func (r *segReader) frameLen(seg uint64, off int64) (uint32, error) {
	if err := r.open(seg); err != nil {
		return 0, err
	}
	var hdr [4]byte
	if _, err := r.f.ReadAt(hdr[:], off); err != nil {
		return 0, fmt.Errorf("read wal segment %d at %d: %w", seg, off, err)
	}
	return binary.LittleEndian.Uint32(hdr[:]), nil
}

// readChunk reads frames from off up to end (a durable bound) into one
// chunk of at most max records and returns the offset after them.
func (r *segReader) readChunk(seg uint64, off, end int64, lane string, max int) (ingest.Chunk, int64, error) {
	if err := r.open(seg); err != nil {
		return ingest.Chunk{}, 0, err
	}
	if r.pos != off || r.end != end || r.br == nil {
		// The section ends at the durable end: the buffer never holds
		// bytes past it, and a grown end starts a fresh section.
		sr := io.NewSectionReader(r.f, off, end-off)
		if r.br == nil {
			r.br = bufio.NewReaderSize(sr, 256<<10)
		} else {
			r.br.Reset(sr)
		}
		r.pos, r.end = off, end
	}
	buf := make([]byte, 0, min(end-off, chunkBytes+64<<10))
	var recs []streamd.Record
	var hdr [frameHeader]byte
	for off < end && len(recs) < max && len(buf) < chunkBytes {
		if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
			r.pos = -1
			return ingest.Chunk{}, 0, fmt.Errorf("read wal segment %d at %d: %w", seg, off, err)
		}
		n := int(binary.LittleEndian.Uint32(hdr[0:4]))
		if off+frameHeader+int64(n) > end {
			r.pos = -1
			return ingest.Chunk{}, 0, fmt.Errorf("read wal segment %d at %d: frame of %d bytes passes the durable end %d: %w", seg, off, n, end, ErrCorrupt)
		}
		start := len(buf)
		buf = append(buf, make([]byte, n)...)
		data := buf[start : start+n : start+n]
		if _, err := io.ReadFull(r.br, data); err != nil {
			r.pos = -1
			return ingest.Chunk{}, 0, fmt.Errorf("read wal segment %d at %d: %w", seg, off, err)
		}
		if frameCRC(hdr[8:16], data) != binary.LittleEndian.Uint32(hdr[4:8]) {
			r.pos = -1
			return ingest.Chunk{}, 0, fmt.Errorf("read wal segment %d at %d: checksum mismatch: %w", seg, off, ErrCorrupt)
		}
		recs = append(recs, streamd.Record{Data: data, Pos: packPos(seg, off), Time: int64(binary.LittleEndian.Uint64(hdr[8:16]))})
		off += frameHeader + int64(n)
	}
	r.pos = off
	return ingest.Chunk{Lane: lane, Records: recs}, off, nil
}
