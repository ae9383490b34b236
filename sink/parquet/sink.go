package parquet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink"
)

// Options configure a Sink.
type Options struct {
	// Compression is the codec of every column (default Snappy).
	Compression Compression
	// PartitionBy names the Hive partition columns, outermost first. They
	// are not stored inside the files.
	PartitionBy []string
	// RowGroupRows is the maximum number of rows per row group
	// (default DefaultRowGroupRows).
	RowGroupRows int
	// RowGroupBytes closes a row group once its rows' estimated size
	// reaches it (default DefaultRowGroupBytes, 64 MiB; negative: by rows
	// only). The encoder holds a row group in memory until it is flushed,
	// so this bounds the sink's memory per file being written; Athena and
	// Spark read row groups of 64–128 MiB efficiently.
	RowGroupBytes int64
	// TargetFileBytes is the estimated size above which the rows of one
	// partition of a batch are split into several files of about equal
	// estimated size, named <name>-p0001.parquet, -p0002 and so on (a
	// partition that fits keeps the plain name). Default
	// DefaultTargetFileBytes (128 MiB); negative: never split. The
	// estimate is the uncompressed size of the values (see the package
	// documentation), so compressible data gives smaller files. Files from
	// 16 MiB (estimated) up are encoded straight into the store's Put, so
	// memory stays bounded by the row group and the store's part buffers.
	// Changing it changes how an intent's output is split: do not change
	// it while intents of the old setting may still be redone.
	TargetFileBytes int64
	// RecordSchemas, when set, records every schema the sink writes files
	// with as a small JSON object under SchemaDir (see ReadSchemas), so
	// that the superset DDL of files with evolving schemas can be printed
	// (`streamd schema`). Default off; the wiring turns it on for a
	// pipeline whose schema is inferred at run time. Costs one Put per
	// schema per process.
	RecordSchemas bool
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("parquet sink closed")

// ErrIntentMismatch is returned by Write for an intent of another pipeline.
var ErrIntentMismatch = errors.New("intent does not belong to this sink")

// Sink writes batches as Hive-partitioned Parquet objects into an object
// store. Object names derive only from the intent, and content only from the
// batch's rows, so a redo rewrites the same objects byte for byte. It is safe
// for concurrent use.
type Sink struct {
	store    sink.ObjectStore
	pipeline string
	opts     Options
	log      *slog.Logger

	mu       sync.Mutex
	encoders map[string]*Encoder // by schema fingerprint
	recorded map[string]bool     // schema fingerprints recorded (RecordSchemas)
	closed   bool

	bufs sync.Pool // *bytes.Buffer
	// encoding holds a token per file being encoded: at most GOMAXPROCS
	// at once across every lane's Write, since more cannot run at once
	// and each holds its column buffers and output.
	encoding chan struct{}
}

var _ sink.Sink = (*Sink)(nil)

// New returns a sink for pipeline writing to store. It does no I/O. The
// partition columns are checked against the batch schema at the first Write
// (the schema may be inferred after start-up). A nil logger discards logs.
func New(store sink.ObjectStore, pipeline string, opts Options, logger *slog.Logger) (*Sink, error) {
	if store == nil {
		return nil, fmt.Errorf("new parquet sink: %w: nil object store", ErrBadOption)
	}
	if pipeline == "" || strings.ContainsAny(pipeline, `/\`) {
		return nil, fmt.Errorf("new parquet sink: pipeline name %q: %w", pipeline, ErrBadOption)
	}
	if _, err := opts.Compression.codec(); err != nil {
		return nil, fmt.Errorf("new parquet sink: %w", err)
	}
	if opts.RowGroupRows < 0 {
		return nil, fmt.Errorf("new parquet sink: row group rows %d: %w", opts.RowGroupRows, ErrBadOption)
	}
	if opts.RowGroupBytes == 0 {
		opts.RowGroupBytes = DefaultRowGroupBytes
	}
	if opts.TargetFileBytes == 0 {
		opts.TargetFileBytes = DefaultTargetFileBytes
	}
	seen := make(map[string]bool, len(opts.PartitionBy))
	for _, p := range opts.PartitionBy {
		if p == "" || seen[p] {
			return nil, fmt.Errorf("new parquet sink: partition column %q empty or repeated: %w", p, ErrBadOption)
		}
		seen[p] = true
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts.PartitionBy = slices.Clone(opts.PartitionBy)
	s := &Sink{store: store, pipeline: pipeline, opts: opts, log: logger, encoders: map[string]*Encoder{}, recorded: map[string]bool{}}
	s.bufs.New = func() any { return new(bytes.Buffer) }
	s.encoding = make(chan struct{}, runtime.GOMAXPROCS(0))
	return s, nil
}

// encoder returns the encoder for schema sc, building it on first use.
func (s *Sink) encoder(sc *streamd.Schema) (*Encoder, []int, error) {
	if sc == nil {
		return nil, nil, fmt.Errorf("%w: batch has no schema", ErrSchemaMismatch)
	}
	part := make([]int, len(s.opts.PartitionBy))
	for i, name := range s.opts.PartitionBy {
		idx := sc.Index(name)
		if idx < 0 {
			return nil, nil, fmt.Errorf("partition by %q: %w", name, ErrUnknownColumn)
		}
		if !partitionable(sc.Fields[idx].Type) {
			return nil, nil, fmt.Errorf("partition by %q of type %s: %w", name, sc.Fields[idx].Type, ErrBadOption)
		}
		part[i] = idx
	}
	fp := sc.Fingerprint()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.encoders[fp]; ok {
		return e, part, nil
	}
	e, err := NewEncoder(sc, EncoderOptions{
		Compression:   s.opts.Compression,
		RowGroupRows:  s.opts.RowGroupRows,
		RowGroupBytes: max(s.opts.RowGroupBytes, 0),
		Omit:          s.opts.PartitionBy,
	})
	if err != nil {
		return nil, nil, err
	}
	s.encoders[fp] = e
	return e, part, nil
}

// partition is the rows of one Hive partition.
type partition struct {
	path string // "col=value/col2=value2", "" when not partitioned
	rows []int  // nil: all rows
}

// partitions groups b's rows by the values of the columns part, in row
// order within each partition, partitions sorted by path.
func partitions(b *streamd.Batch, part []int, names []string) []partition {
	if len(part) == 0 {
		return []partition{{}}
	}
	prefixes := make([][]byte, len(names))
	for i, n := range names {
		if i > 0 {
			prefixes[i] = append(prefixes[i], '/')
		}
		prefixes[i] = append(appendEscaped(prefixes[i], []byte(n)), '=')
	}
	index := map[string]int{}
	var parts []partition
	var key, scratch []byte
	for r := range b.Len() {
		key = key[:0]
		for i, ci := range part {
			key = append(key, prefixes[i]...)
			key, scratch = appendPartitionValue(key, scratch, &b.Cols[ci], r)
		}
		pi, ok := index[string(key)]
		if !ok {
			pi = len(parts)
			index[string(key)] = pi
			parts = append(parts, partition{path: string(key)})
		}
		parts[pi].rows = append(parts[pi].rows, r)
	}
	slices.SortFunc(parts, func(a, b partition) int { return strings.Compare(a.path, b.path) })
	return parts
}

// objectName returns the name of the object of one partition of an intent;
// part is 0 for an unsplit partition, else the 1-based file number.
func (s *Sink) objectName(partPath string, in streamd.Intent, part int) string {
	name := s.pipeline + "-" + streamd.LaneToken(in.Lane) + "-" + in.From.String() + "-" + in.To.String()
	if part > 0 {
		name += partSuffix(part)
	}
	name += ".parquet"
	if partPath == "" {
		return name
	}
	return partPath + "/" + name
}

// Write encodes the rows of b, one Parquet object per partition, and puts
// them into the store; partitions are encoded in parallel, at most
// GOMAXPROCS files at once across all concurrent Writes (the lanes of a
// pipeline), while their Puts may overlap freely. An empty batch writes
// nothing. On error some partitions may have been written whole (never
// partially); the error is returned so that the intent is redone, which
// rewrites them identically.
func (s *Sink) Write(ctx context.Context, in streamd.Intent, b *streamd.Batch) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("write parquet batch: %w", ErrClosed)
	}
	if in.Pipeline != "" && in.Pipeline != s.pipeline {
		return fmt.Errorf("write parquet batch: intent of pipeline %q to sink of %q: %w", in.Pipeline, s.pipeline, ErrIntentMismatch)
	}
	if b == nil || b.Len() == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write parquet batch: %w", err)
	}
	enc, part, err := s.encoder(b.Schema)
	if err != nil {
		return fmt.Errorf("write parquet batch: %w", err)
	}
	if s.opts.RecordSchemas {
		if err := s.recordSchema(ctx, b.Schema); err != nil {
			return fmt.Errorf("write parquet batch: %w", err)
		}
	}
	files := s.files(enc, in, b, partitions(b, part, s.opts.PartitionBy))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		errMu    sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	jobs := make(chan int)
	for range min(runtime.GOMAXPROCS(0), len(files)) {
		wg.Go(func() {
			for i := range jobs {
				if err := s.writeFile(ctx, enc, b, files[i]); err != nil {
					fail(err)
				}
			}
		})
	}
feed:
	for i := range files {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return fmt.Errorf("write parquet batch %s [%s, %s]: %w", in.Lane, in.From, in.To, firstErr)
	}
	s.log.DebugContext(ctx, "parquet batch written", "pipeline", s.pipeline, "lane", in.Lane,
		"from", in.From.String(), "to", in.To.String(), "rows", b.Len(), "objects", len(files))
	return nil
}

// outFile is one object to write: a partition, or a part of one.
type outFile struct {
	name string
	rows []int // nil: all rows
	est  int64 // estimated size
}

// files lists the objects of a batch: one per partition, or several when a
// partition's estimated size exceeds the target.
func (s *Sink) files(enc *Encoder, in streamd.Intent, b *streamd.Batch, parts []partition) []outFile {
	z := enc.newSizer(b)
	var out []outFile
	for _, p := range parts {
		total := z.total(p.rows, b.Len())
		if s.opts.TargetFileBytes <= 0 || total <= s.opts.TargetFileBytes {
			out = append(out, outFile{name: s.objectName(p.path, in, 0), rows: p.rows, est: total})
			continue
		}
		rows := p.rows
		if rows == nil {
			rows = allRows(b.Len())
		}
		runs := splitRows(z, rows, total, s.opts.TargetFileBytes)
		for i, run := range runs {
			part := i + 1
			if len(runs) == 1 {
				part = 0
			}
			out = append(out, outFile{name: s.objectName(p.path, in, part), rows: run, est: z.total(run, 0)})
		}
	}
	return out
}

// errPutReturned stops an encoder whose Put has returned.
var errPutReturned = errors.New("put returned before reading the whole file")

// writeFile encodes one file and puts it. A small file is encoded into a
// buffer first; a large one is encoded straight into the Put through a pipe,
// so that memory does not grow with the file. A failed encode closes the pipe
// with its error, which fails the Put, and the store then makes no object
// visible.
func (s *Sink) writeFile(ctx context.Context, enc *Encoder, b *streamd.Batch, f outFile) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.encoding <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if f.est < streamThreshold {
		buf := s.bufs.Get().(*bytes.Buffer)
		buf.Reset()
		defer s.bufs.Put(buf)
		err := enc.Encode(buf, b, f.rows)
		<-s.encoding // the Put below writes without encoding
		if err != nil {
			return fmt.Errorf("encode %q: %w", f.name, err)
		}
		if err := s.store.Put(ctx, f.name, bytes.NewReader(buf.Bytes())); err != nil {
			return fmt.Errorf("put %q: %w", f.name, err)
		}
		return nil
	}
	pr, pw := io.Pipe()
	encErr := make(chan error, 1)
	go func() {
		err := enc.Encode(pw, b, f.rows)
		<-s.encoding
		pw.CloseWithError(err) // nil: EOF for the reader
		encErr <- err
	}()
	putErr := s.store.Put(ctx, f.name, pr)
	pr.CloseWithError(errPutReturned) // unblocks an encoder the Put left
	eerr := <-encErr
	switch {
	case putErr != nil && eerr != nil && !errors.Is(eerr, errPutReturned):
		return fmt.Errorf("encode %q: %w", f.name, eerr)
	case putErr != nil:
		return fmt.Errorf("put %q: %w", f.name, putErr)
	case eerr != nil:
		return fmt.Errorf("put %q: %w", f.name, eerr)
	}
	return nil
}

// Close marks the sink closed; it holds no other resources.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}
