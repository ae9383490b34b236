package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/file"
	"github.com/streamd/streamd/internal/config"
	"github.com/streamd/streamd/sink/objstore/s3store"
	"github.com/streamd/streamd/transform/infer"
)

const inferUsage = `usage: streamd infer --config FILE [--pipeline NAME] [--sample N] [--nested json|flatten] [--separator _]

Samples the first N records of a file source's paths (in file name order)
and prints the schema they fit as a config "schema:" list and as Athena
CREATE EXTERNAL TABLE DDL for the pipeline's Parquet sink.
`

// runInfer implements `streamd infer` (the crawler). Exit codes: 0
// success, 1 runtime failure, 2 usage or config error.
func runInfer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("streamd infer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, inferUsage) }
	cfgPath := fs.String("config", "", "config file (YAML)")
	name := fs.String("pipeline", "", "pipeline to sample (default: the only one, or the first file source)")
	sample := fs.Int("sample", 1000, "records to sample")
	nested := fs.String("nested", "json", "nested objects: json (one json column) or flatten (a column per leaf, a.b → a_b)")
	sep := fs.String("separator", "_", "joins the path of a flattened field")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "streamd infer: --config is required")
		return 2
	}
	if *sample <= 0 {
		fmt.Fprintf(stderr, "streamd infer: --sample must be positive, got %d\n", *sample)
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "streamd: invalid config:\n%v\n", err)
		return 2
	}
	pc, err := pickPipeline(cfg, *name)
	if err != nil {
		fmt.Fprintf(stderr, "streamd infer: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	recs, header, err := sampleFiles(context.Background(), pc, *sample, log)
	if err != nil {
		fmt.Fprintf(stderr, "streamd infer: pipeline %q: %v\n", pc.Name, err)
		return 1
	}
	res, err := infer.Infer(recs, header, infer.Options{Format: pc.Source.Format, Nested: infer.Nested(*nested), Separator: *sep})
	if err != nil {
		fmt.Fprintf(stderr, "streamd infer: pipeline %q: %v\n", pc.Name, err)
		return 1
	}
	schema, err := res.Schema()
	if err != nil {
		fmt.Fprintf(stderr, "streamd infer: pipeline %q: %v\n", pc.Name, err)
		return 1
	}
	loc := pc.Sink.Path
	if loc != "" && !isURL(loc) {
		if abs, err := filepath.Abs(loc); err == nil {
			loc = abs
		}
	}
	ddl, err := infer.DDL(schema, infer.TableOptions{Name: pc.Name, Location: loc, PartitionBy: pc.Sink.PartitionBy, Compression: pc.Sink.Compression})
	if err != nil {
		fmt.Fprintf(stderr, "streamd infer: pipeline %q: %v\n", pc.Name, err)
		return 1
	}
	fmt.Fprintf(stdout, "# pipeline %s: inferred from %d records (%d malformed skipped)\n", pc.Name, res.Records, res.Malformed)
	fmt.Fprint(stdout, res.YAML())
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, ddl)
	return 0
}

func isURL(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == ':' {
			return s[i+1] == '/' && s[i+2] == '/'
		}
	}
	return false
}

func pickPipeline(cfg *config.Config, name string) (config.Pipeline, error) {
	for _, p := range cfg.Pipelines {
		if name == "" || p.Name == name {
			if name == "" && p.Source.Type != "file" {
				continue
			}
			if p.Source.Type != "file" {
				return p, fmt.Errorf("pipeline %q: infer samples file sources only, this one is %s", p.Name, p.Source.Type)
			}
			return p, nil
		}
	}
	if name != "" {
		return config.Pipeline{}, fmt.Errorf("no pipeline %q in the config", name)
	}
	return config.Pipeline{}, errors.New("no pipeline with a file source in the config")
}

// noResume starts every lane at its beginning.
type noResume struct{}

func (noResume) Resume(context.Context, string) (streamd.Position, bool, error) {
	return streamd.Position{}, false, nil
}

// sampleFiles reads the first n records of the pipeline's files, in file
// name order, and the CSV header of the first file.
func sampleFiles(ctx context.Context, pc config.Pipeline, n int, log *slog.Logger) ([][]byte, []byte, error) {
	src, err := file.New(file.Config{
		Paths: pc.Source.Paths, Format: pc.Source.Format, MaxRecordSize: int(pc.Source.MaxRecordSize),
		Parallel: 1, ChunkRecords: min(n, file.DefaultChunkRecords), Logger: log,
		OpenBucket: func(ctx context.Context, bucket string) (file.ObjectReader, error) {
			return s3store.Open(ctx, "s3://"+bucket, log)
		},
	})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan ingest.Chunk)
	var runErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(chunks)
		runErr = src.Run(ctx, noResume{}, chunks)
	}()
	var recs [][]byte
	var header []byte
	for c := range chunks {
		if len(recs) >= n {
			continue // draining after cancel
		}
		if header == nil && c.Header != nil {
			header = append([]byte(nil), c.Header...)
		}
		for _, r := range c.Records {
			if r.Err != "" || len(recs) >= n {
				continue
			}
			recs = append(recs, append([]byte(nil), r.Data...))
		}
		if len(recs) >= n {
			cancel()
		}
	}
	wg.Wait()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return nil, nil, fmt.Errorf("read sample: %w", runErr)
	}
	if len(recs) == 0 {
		return nil, nil, errors.New("read sample: the files hold no records")
	}
	return recs, header, nil
}
