package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awsddbstreams "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	ddbstore "github.com/streamd/streamd/checkpoint/dynamodb"
	"github.com/streamd/streamd/checkpoint/lease"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/ddbstreams"
	"github.com/streamd/streamd/ingest/file"
	"github.com/streamd/streamd/ingest/kafka"
	"github.com/streamd/streamd/ingest/kinesis"
	"github.com/streamd/streamd/ingest/sidecar"
	"github.com/streamd/streamd/internal/config"
	"github.com/streamd/streamd/internal/telemetry"
	"github.com/streamd/streamd/pipeline"
	"github.com/streamd/streamd/sink"
	"github.com/streamd/streamd/sink/deadletter"
	ddbsink "github.com/streamd/streamd/sink/dynamodb"
	"github.com/streamd/streamd/sink/objstore"
	"github.com/streamd/streamd/sink/objstore/s3store"
	ossink "github.com/streamd/streamd/sink/opensearch"
	"github.com/streamd/streamd/sink/parquet"
	"github.com/streamd/streamd/transform"
	"github.com/streamd/streamd/window"
)

// runConfig builds every pipeline of cfg and runs them until ctx is done
// or every finite source is committed.
func runConfig(ctx context.Context, cfg *config.Config, memoryLimit int64, red *telemetry.Redactor, log *slog.Logger, stderr io.Writer) error {
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()

	reg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(reg, telemetry.WithVersion(versionString()))
	if err != nil {
		return err
	}
	var started atomic.Bool
	var srv *telemetry.Server
	if cfg.HTTP != nil && cfg.HTTP.Listen != "" {
		srv = telemetry.NewServer(cfg.HTTP.Listen, reg, log, telemetry.WithRedactor(red))
		srv.AddCheck("pipelines", func(context.Context) error {
			if !started.Load() {
				return errors.New("pipelines are starting")
			}
			return nil
		})
		probe := cfg.Pipelines[0].Name
		srv.AddCheck("checkpoint_store", func(ctx context.Context) error {
			_, err := store.Load(ctx, probe, "readyz-probe")
			return err
		})
		if err := srv.Start(ctx); err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		stopDrain := context.AfterFunc(ctx, func() { srv.SetDraining(true) })
		defer stopDrain()
	}

	stores := &storeCache{log: log, byURL: map[string]sink.ObjectStore{}}
	budget := window.NewBudget(memoryLimit)
	var pipes []*pipeline.Pipeline
	var sinks []sink.Sink
	defer func() {
		for _, s := range sinks {
			_ = s.Close(context.WithoutCancel(ctx))
		}
	}()
	for _, pc := range cfg.Pipelines {
		p, ss, err := buildPipeline(ctx, cfg, pc, store, stores, budget, reg, metrics, log)
		sinks = append(sinks, ss...)
		if err != nil {
			return err
		}
		metrics.AddPipeline(pc.Name)
		metrics.WatchLanes(p.Name(), telemetry.LaneStatsFunc(func() []telemetry.LaneStat {
			ls := p.LaneStats()
			out := make([]telemetry.LaneStat, len(ls))
			for i, l := range ls {
				out[i] = telemetry.LaneStat{Lane: l.Lane, OldestUncommitted: l.OldestUncommitted, CommittedPosition: l.Committed}
			}
			return out
		}), pc.Source.Type != "file")
		pipes = append(pipes, p)
	}

	start := time.Now()
	started.Store(true)
	stopProgress := startProgress(pipes, stderr, start)
	errs := make([]error, len(pipes))
	var wg sync.WaitGroup
	for i, p := range pipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Run(ctx)
		}()
	}
	wg.Wait()
	stopProgress()
	for _, p := range pipes {
		fmt.Fprintln(stderr, summary(p, time.Since(start)))
	}
	return errors.Join(errs...)
}

func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (checkpoint.Store, error) {
	if cfg.Checkpoint != nil && cfg.Checkpoint.Store == "dynamodb" {
		awsCfg, err := loadAWS(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("open checkpoint store dynamodb: %w", err)
		}
		st := ddbstore.New(awsddb.NewFromConfig(awsCfg), ddbstore.Config{Table: cfg.Checkpoint.Table, Logger: log})
		if err := st.EnsureTable(ctx); err != nil {
			return nil, fmt.Errorf("open checkpoint store dynamodb: %w", err)
		}
		return st, nil
	}
	return checkpoint.NewFileStore(cfg.StateDir), nil
}

// storeCache opens each object-store location once.
type storeCache struct {
	log   *slog.Logger
	mu    sync.Mutex
	byURL map[string]sink.ObjectStore
}

// open returns the object store for a local directory or an s3:// URL.
func (c *storeCache) open(ctx context.Context, loc string) (sink.ObjectStore, error) {
	return c.openKeyed(ctx, loc, loc)
}

// openKeyed opens loc with S3 options, cached under key (loc plus the
// options), since the same bucket may be written with different options.
func (c *storeCache) openKeyed(ctx context.Context, key, loc string, opts ...s3store.Option) (sink.ObjectStore, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.byURL[key]; ok {
		return s, nil
	}
	s, err := openLocation(ctx, loc, c.log, opts...)
	if err != nil {
		return nil, err
	}
	if l, ok := s.(*objstore.Local); ok {
		// Temporary files of writes that a crash interrupted are garbage;
		// those younger than a minute may belong to a peer process sharing
		// the directory (a consumer group on one host) and are left alone.
		n, err := l.Sweep(ctx, time.Minute)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", loc, err)
		}
		if n > 0 {
			c.log.Info("removed temporary files of interrupted writes", slog.String("dir", loc), slog.Int("files", n))
		}
	}
	c.byURL[key] = s
	return s, nil
}

// openLocation opens an object-store location: s3://bucket/prefix through
// s3store, anything else as a local directory. It does no I/O for a local
// directory (storeCache sweeps it).
func openLocation(ctx context.Context, loc string, log *slog.Logger, opts ...s3store.Option) (sink.ObjectStore, error) {
	if !strings.HasPrefix(loc, "s3://") {
		return objstore.NewLocal(filepath.Clean(loc)), nil
	}
	st, err := s3store.Open(ctx, loc, log, opts...)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", loc, err)
	}
	return st, nil
}

func buildPipeline(ctx context.Context, cfg *config.Config, pc config.Pipeline, store checkpoint.Store, stores *storeCache,
	budget *window.Budget, reg prometheus.Registerer, obs pipeline.Observer, log *slog.Logger) (*pipeline.Pipeline, []sink.Sink, error) {
	plog := log.With(slog.String("pipeline", pc.Name))
	prog, op, err := compileTransforms(pc, reg, plog)
	if err != nil {
		return nil, nil, err
	}

	src, err := buildSource(ctx, cfg, pc, store, stores, reg, plog)
	if err != nil {
		return nil, nil, err
	}

	out, err := buildSink(ctx, pc, stores, reg, plog)
	if err != nil {
		return nil, nil, err
	}
	sinks := []sink.Sink{out}

	dlPath := pc.DeadLetter.Path
	if dlPath == "" {
		dlPath = filepath.Join(cfg.StateDir, "dead_letter", pc.Name)
		plog.Info("no dead_letter.path configured; dead letters go under state_dir", slog.String("path", dlPath))
	}
	dlStore, err := stores.open(ctx, dlPath)
	if err != nil {
		return nil, sinks, fmt.Errorf("pipeline %q: dead letter: %w", pc.Name, err)
	}
	dl := deadletter.New(dlStore, pc.Name)
	sinks = append(sinks, dl)

	p, err := pipeline.New(pipeline.Config{
		Name: pc.Name, Source: src, Processor: prog, Operator: op, Sink: out, DeadLetter: dl, Store: store,
		Window:       window.Policy{MaxRecords: pc.Window.MaxRecords, MaxBytes: int(pc.Window.MaxBytes), MaxAge: pc.Window.MaxAge.Std()},
		DrainTimeout: cfg.ShutdownTimeout.Std(), Logger: log, Budget: budget, Observer: obs,
	})
	return p, sinks, err
}

// buildSink builds the pipeline's main sink.
func buildSink(ctx context.Context, pc config.Pipeline, stores *storeCache, reg prometheus.Registerer, log *slog.Logger) (sink.Sink, error) {
	switch pc.Sink.Type {
	case "parquet":
		var s3opts []s3store.Option
		key := pc.Sink.Path
		if strings.HasPrefix(pc.Sink.Path, "s3://") && (pc.Sink.SSE != nil || pc.Sink.IfNoneMatch) {
			var sse s3store.SSE
			if c := pc.Sink.SSE; c != nil {
				typ, err := s3store.ParseSSEType(c.Type)
				if err != nil {
					return nil, fmt.Errorf("pipeline %q: sink: %w", pc.Name, err)
				}
				sse = s3store.SSE{Type: typ, KMSKeyID: c.KMSKeyID, BucketKey: c.BucketKey}
			}
			s3opts = append(s3opts, s3store.WithSSE(sse), s3store.WithIfNoneMatch(pc.Sink.IfNoneMatch))
			key = fmt.Sprintf("%s#sse=%v/%s/%t#inm=%t", pc.Sink.Path, sse.Type, sse.KMSKeyID, sse.BucketKey, pc.Sink.IfNoneMatch)
		}
		store, err := stores.openKeyed(ctx, key, pc.Sink.Path, s3opts...)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: sink: %w", pc.Name, err)
		}
		comp, err := parquet.ParseCompression(pc.Sink.Compression)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: sink: %w", pc.Name, err)
		}
		pq, err := parquet.New(store, pc.Name, parquet.Options{
			Compression: comp, PartitionBy: pc.Sink.PartitionBy, RowGroupRows: pc.Sink.RowGroupSize,
			RowGroupBytes: int64(pc.Sink.RowGroupBytes), TargetFileBytes: int64(pc.Sink.TargetFileSize),
			RecordSchemas: pc.InferredSchema(),
		}, log)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: sink: %w", pc.Name, err)
		}
		return pq, nil
	case "dynamodb":
		awsCfg, err := loadAWS(ctx, pc.Sink.Region)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: sink: %w", pc.Name, err)
		}
		ds, err := ddbsink.New(ddbsink.Config{
			Pipeline: pc.Name, Client: awsddb.NewFromConfig(awsCfg), Table: pc.Sink.Table, Key: pc.Sink.Key,
			Concurrency: pc.Sink.Concurrency, RetryTimeout: pc.Sink.RetryTimeout.Std(), Registerer: reg, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: sink: %w", pc.Name, err)
		}
		return ds, nil
	case "opensearch":
		oc := ossink.Config{
			Pipeline: pc.Name, URL: pc.Sink.URL, Index: pc.Sink.Index, ID: pc.Sink.ID, Action: pc.Sink.Action,
			Username: pc.Sink.Username, Password: pc.Sink.Password, BulkBytes: int(pc.Sink.BulkBytes),
			DisableGzip: pc.Sink.Gzip != nil && !*pc.Sink.Gzip, Concurrency: pc.Sink.Concurrency,
			RetryTimeout: pc.Sink.RetryTimeout.Std(), Registerer: reg, Logger: log,
		}
		if v := pc.Sink.AWSSigV4; v != nil {
			region := v.Region
			if region == "" {
				region = pc.Sink.Region
			}
			awsCfg, err := loadAWS(ctx, region)
			if err != nil {
				return nil, fmt.Errorf("pipeline %q: sink: %w", pc.Name, err)
			}
			oc.SigV4 = &ossink.SigV4{Service: v.Service, Region: awsCfg.Region, Credentials: awsCfg.Credentials}
		}
		os, err := ossink.New(oc)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: sink: %w", pc.Name, err)
		}
		return os, nil
	}
	return nil, fmt.Errorf("pipeline %q: sink type %q is not available in this build", pc.Name, pc.Sink.Type)
}

// loadAWS loads the SDK's default chain (environment, profile, ECS task
// role, AWS_ENDPOINT_URL_*), with region when set.
func loadAWS(ctx context.Context, region string) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	return cfg, nil
}

// compileTransforms builds the pipeline's decode + stateless program and,
// when a stateful step (dedup, outliers, IsUnique) is configured, the
// operator chain that runs from the first stateful step on. A JSON pipeline
// without a schema gets an Evolver that infers the schema at run time,
// seeded with the partition columns as strings. It does no I/O, so
// `streamd validate` runs it too.
func compileTransforms(pc config.Pipeline, reg prometheus.Registerer, log *slog.Logger) (pipeline.Processor, pipeline.Operator, error) {
	spec := transform.Spec{Format: pc.Source.Format}
	for _, c := range pc.Schema {
		t, err := streamd.ParseType(c.Type)
		if err != nil {
			return nil, nil, fmt.Errorf("pipeline %q: column %q (line %d): %w", pc.Name, c.Name, c.Line, err)
		}
		spec.Columns = append(spec.Columns, transform.ColumnSpec{Name: c.Name, Type: t, Expr: c.Expr, From: c.From})
	}
	if len(spec.Columns) == 0 && pc.Source.Type == "dynamodb_streams" {
		// Without a schema a change log keeps the images whole.
		spec.Columns = cdcColumns()
	}
	if pc.InferredSchema() {
		return evolver(pc)
	}
	steps := make([]transform.Step, 0, len(pc.Transforms))
	for _, tr := range pc.Transforms {
		steps = append(steps, stepOf(tr))
	}
	stateless, stateful := transform.SplitSteps(steps)
	spec.Steps = stateless
	spec.StepOptions = transform.ChainOptions{Pipeline: pc.Name, Registerer: reg, Logger: log}
	prog, err := transform.Compile(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("pipeline %q: %w", pc.Name, err)
	}
	if len(stateful) == 0 {
		return prog, nil, nil
	}
	chain, err := transform.NewChain(prog.Schema(), stateful, spec.StepOptions)
	if err != nil {
		return nil, nil, fmt.Errorf("pipeline %q: %w", pc.Name, err)
	}
	return prog, chain, nil
}

// evolver is the processor of a pipeline whose schema is inferred at run
// time (Config.CheckRunnable, which run and validate call first, refuses
// CSV input and transforms without a schema).
func evolver(pc config.Pipeline) (pipeline.Processor, pipeline.Operator, error) {
	var seed []streamd.Field
	for _, name := range pc.Sink.PartitionBy {
		seed = append(seed, streamd.Field{Name: name, Type: streamd.Type{Kind: streamd.KindString}})
	}
	ev, err := transform.NewEvolver(transform.EvolveOptions{Seed: seed})
	if err != nil {
		return nil, nil, fmt.Errorf("pipeline %q: %w", pc.Name, err)
	}
	return ev, nil, nil
}

// cdcColumns is the schema of a DynamoDB Streams pipeline that declares
// none: the change's metadata, and keys and images kept whole as JSON.
func cdcColumns() []transform.ColumnSpec {
	str, ts, js := streamd.Type{Kind: streamd.KindString}, streamd.Type{Kind: streamd.KindTimestamp}, streamd.Type{Kind: streamd.KindJSON}
	return []transform.ColumnSpec{
		{Name: "op", Type: str}, {Name: "event_time", Type: ts}, {Name: "sequence_number", Type: str},
		{Name: "event_id", Type: str}, {Name: "keys", Type: js}, {Name: "new_image", Type: js}, {Name: "old_image", Type: js},
	}
}

// stepOf maps one configured transform to its transform.Step.
func stepOf(tr config.Transform) transform.Step {
	st := transform.Step{Filter: tr.Filter, Trim: tr.Trim, Lower: tr.Lower, Upper: tr.Upper, NullIfEmpty: tr.NullIfEmpty,
		Default: tr.Default, Rename: tr.Rename, Drop: tr.Drop, Select: tr.Select}
	if d := tr.Dedup; d != nil {
		st.Dedup = &transform.DedupSpec{Keys: d.Keys, TTL: d.TTL.Std(), MaxKeys: d.MaxKeys}
	}
	if q := tr.Quality; q != nil {
		st.Quality = &transform.QualitySpec{Rules: q.Rules, Action: q.Action, UniqueTTL: q.UniqueTTL.Std(), MaxKeys: q.MaxKeys}
	}
	if o := tr.Outliers; o != nil {
		st.Outliers = &transform.OutlierSpec{Column: o.Column, Method: o.Method, Min: o.Min, Max: o.Max, K: o.K,
			Window: o.Window, MinSamples: o.MinSamples, By: o.By, Action: o.Action, MaxKeys: o.MaxKeys}
	}
	if r := tr.Replace; r != nil {
		st.Replace = &transform.ReplaceSpec{Column: r.Column, Pattern: r.Pattern, With: r.With}
	}
	if p := tr.ParseTime; p != nil {
		st.ParseTime = &transform.ParseTimeSpec{Column: p.Column, Formats: p.Formats, Timezone: p.Timezone, Type: p.Type}
	}
	return st
}

func buildSource(ctx context.Context, cfg *config.Config, pc config.Pipeline, store checkpoint.Store, stores *storeCache,
	reg prometheus.Registerer, log *slog.Logger) (ingest.Source, error) {
	switch pc.Source.Type {
	case "dynamodb_streams":
		awsCfg, err := loadAWS(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: dynamodb_streams source: %w", pc.Name, err)
		}
		leases, err := shardLeases(cfg, pc, store, awsCfg, log)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: dynamodb_streams source: %w", pc.Name, err)
		}
		src, err := ddbstreams.New(awsddb.NewFromConfig(awsCfg), awsddbstreams.NewFromConfig(awsCfg), ddbstreams.Config{
			Table: pc.Source.Table, StreamARN: pc.Source.StreamARN, Start: pc.Source.Start, Leases: leases,
			PollInterval: pc.Source.PollInterval.Std(), IdleInterval: pc.Source.IdleInterval.Std(),
			RefreshInterval: pc.Source.RefreshInterval.Std(), Registerer: reg, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: %w", pc.Name, err)
		}
		return src, nil
	case "kinesis":
		awsCfg, err := loadAWS(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: kinesis source: %w", pc.Name, err)
		}
		leases, err := shardLeases(cfg, pc, store, awsCfg, log)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: kinesis source: %w", pc.Name, err)
		}
		var at time.Time
		if pc.Source.Timestamp != "" {
			if at, err = time.Parse(time.RFC3339, pc.Source.Timestamp); err != nil {
				return nil, fmt.Errorf("pipeline %q: kinesis source: timestamp: %w", pc.Name, err)
			}
		}
		kcfg := kinesis.Config{Stream: pc.Source.Stream, Start: pc.Source.Start, Timestamp: at, Leases: leases, Registerer: reg, Logger: log}
		if e := pc.Source.EnhancedFanOut; e != nil {
			kcfg.EnhancedFanOut = &kinesis.EnhancedFanOut{ConsumerName: e.ConsumerName, ConsumerARN: e.ConsumerARN}
		}
		src, err := kinesis.New(awskinesis.NewFromConfig(awsCfg), kcfg)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: %w", pc.Name, err)
		}
		return src, nil
	case "kafka":
		s := pc.Source
		kc := kafka.Config{
			Brokers: s.Brokers, Topics: s.Topics, TopicRegex: s.TopicRegex, Group: s.Group, Start: s.Start,
			ClientID: s.ClientID, ReadUncommitted: s.ReadUncommitted,
			SessionTimeout: s.SessionTimeout.Std(), RebalanceTimeout: s.RebalanceTimeout.Std(),
			CommitInterval: s.CommitInterval.Std(), MaxBufferedBytes: int(s.MaxBufferedBytes),
			ShutdownTimeout: cfg.ShutdownTimeout.Std(),
			Pipeline:        pc.Name, Registerer: reg, Logger: log,
		}
		for _, c := range pc.Schema {
			if c.Expr == "" && c.From == "" && transform.MetaColumn(c.Name) {
				kc.Metadata = true
			}
		}
		if t := s.TLS; t != nil {
			kc.TLS = &kafka.TLSConfig{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
				ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
		}
		if a := s.SASL; a != nil {
			kc.SASL = &kafka.SASLConfig{Mechanism: a.Mechanism, Username: a.Username, Password: a.Password}
		}
		src, err := kafka.New(kc)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: %w", pc.Name, err)
		}
		return src, nil
	case "file":
		return file.New(file.Config{
			Paths: pc.Source.Paths, Format: pc.Source.Format, MaxRecordSize: int(pc.Source.MaxRecordSize), Logger: log,
			OpenBucket: func(ctx context.Context, bucket string) (file.ObjectReader, error) {
				return stores.open(ctx, "s3://"+bucket)
			},
			Follow: pc.Source.Follow, StateDir: filepath.Join(cfg.StateDir, pc.Name, "follow"), PollInterval: pc.Source.PollInterval.Std(),
		})
	case "http":
		return sidecar.New(sidecar.Config{
			Listen: pc.Source.Listen, Dir: filepath.Join(cfg.StateDir, pc.Name, "wal"), AuthToken: pc.Source.AuthToken,
			MaxRecordBytes: int(pc.Source.MaxRecordSize), MaxBodyBytes: int64(pc.Source.MaxBodyBytes),
			WALMaxBytes: int64(pc.Source.WALMaxBytes), SegmentBytes: int64(pc.Source.WALSegmentBytes),
			ShutdownTimeout: cfg.ShutdownTimeout.Std() / 2, Pipeline: pc.Name, Registerer: reg, Logger: log,
		})
	}
	return nil, fmt.Errorf("pipeline %q: source type %q is not available in this build yet", pc.Name, pc.Source.Type)
}

// shardLeases returns the shard lease manager of a Kinesis or DynamoDB
// Streams pipeline: one process with the embedded store owns every shard;
// with the DynamoDB store, shards are leased in its table and commits are
// fenced by the lease.
func shardLeases(cfg *config.Config, pc config.Pipeline, store checkpoint.Store, awsCfg aws.Config, log *slog.Logger) (lease.Manager, error) {
	ds, ok := store.(*ddbstore.Store)
	if !ok {
		return lease.NewLocal(), nil
	}
	m, err := lease.NewTable(lease.Config{Client: awsddb.NewFromConfig(awsCfg), Table: cfg.Checkpoint.Table, Pipeline: pc.Name, Logger: log})
	if err != nil {
		return nil, err
	}
	ds.SetFence(pc.Name, m)
	return m, nil
}

// summary is the one-line account printed when a run ends.
func summary(p *pipeline.Pipeline, took time.Duration) string {
	s := p.Stats()
	rate := float64(s.Read) / took.Seconds()
	return fmt.Sprintf("streamd: pipeline %s: read %d = written %d + filtered %d + deduplicated %d + dead-lettered %d; %d batches, %d lanes ended, %.1fs, %.0f records/s",
		p.Name(), s.Read, s.Written, s.Filtered, s.Deduplicated, s.DeadLettered, s.Batches, s.LanesEnded, took.Seconds(), rate)
}

// startProgress prints progress at most once a second while stderr is a
// terminal; the returned func stops it.
func startProgress(pipes []*pipeline.Pipeline, stderr io.Writer, start time.Time) func() {
	f, ok := stderr.(*os.File)
	if !ok {
		return func() {}
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
				var read, lanes int64
				for _, p := range pipes {
					s := p.Stats()
					read += s.Read
					lanes += s.LanesEnded
				}
				el := time.Since(start).Seconds()
				fmt.Fprintf(f, "\r\033[Kcommitted %d records, %.0f records/s, %d lanes (files) done", read, float64(read)/el, lanes)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
