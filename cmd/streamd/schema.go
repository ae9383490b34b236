package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/internal/config"
	"github.com/streamd/streamd/sink/parquet"
	"github.com/streamd/streamd/transform/infer"
)

const schemaUsage = `usage: streamd schema --config FILE [--pipeline NAME]

Reads the schemas a Parquet pipeline whose schema is inferred at run time
recorded for its files (under _streamd_schemas/ in the sink path) and prints
each, then their superset as a config "schema:" list and as Athena CREATE
EXTERNAL TABLE DDL: every column of every file, types widened where files
differ (int64 and float64 → float64); columns whose types conflict become
string and are listed as warnings.
`

// runSchema implements `streamd schema`. Exit codes: 0 success, 1 runtime
// failure (or nothing recorded), 2 usage or config error.
func runSchema(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("streamd schema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, schemaUsage) }
	cfgPath := fs.String("config", "", "config file (YAML)")
	name := fs.String("pipeline", "", "pipeline (default: the only Parquet one)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "streamd schema: --config is required")
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "streamd: invalid config:\n%v\n", err)
		return 2
	}
	var pc *config.Pipeline
	for i := range cfg.Pipelines {
		p := &cfg.Pipelines[i]
		if (*name == "" && p.Sink.Type == "parquet") || p.Name == *name {
			pc = p
			break
		}
	}
	switch {
	case pc == nil && *name != "":
		fmt.Fprintf(stderr, "streamd schema: no pipeline %q in the config\n", *name)
		return 2
	case pc == nil:
		fmt.Fprintln(stderr, "streamd schema: no pipeline with a parquet sink in the config")
		return 2
	case pc.Sink.Type != "parquet":
		fmt.Fprintf(stderr, "streamd schema: pipeline %q writes to %s; schemas are recorded by the parquet sink\n", pc.Name, pc.Sink.Type)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := openLocation(ctx, pc.Sink.Path, log)
	if err != nil {
		fmt.Fprintf(stderr, "streamd schema: pipeline %q: %v\n", pc.Name, err)
		return 1
	}
	recs, err := parquet.ReadSchemas(ctx, store, pc.Name)
	if err != nil {
		fmt.Fprintf(stderr, "streamd schema: pipeline %q: %v\n", pc.Name, err)
		return 1
	}
	if len(recs) == 0 {
		fmt.Fprintf(stderr, "streamd schema: pipeline %q: no schemas recorded under %s/%s (they are recorded when the schema is inferred at run time)\n",
			pc.Name, pc.Sink.Path, parquet.SchemaDir)
		return 1
	}
	schemas := make([]*streamd.Schema, len(recs))
	for i, r := range recs {
		schemas[i], _ = r.Schema() // ReadSchemas checked it
		fmt.Fprintf(stdout, "# file schema %d of %d: %s\n", i+1, len(recs), r.Fingerprint)
	}
	super, conflicts := infer.Superset(schemas)
	for _, c := range conflicts {
		fmt.Fprintf(stdout, "# warning: %s; the superset says string, and files with the other type need a cast or a separate table\n", c)
	}
	loc := pc.Sink.Path
	if !isURL(loc) {
		if abs, err := filepath.Abs(loc); err == nil {
			loc = abs
		}
	}
	ddl, err := infer.DDL(super, infer.TableOptions{Name: pc.Name, Location: loc, PartitionBy: pc.Sink.PartitionBy, Compression: pc.Sink.Compression})
	if err != nil {
		fmt.Fprintf(stderr, "streamd schema: pipeline %q: %v\n", pc.Name, err)
		return 1
	}
	fmt.Fprintf(stdout, "# pipeline %s: superset of %d file schemas\n", pc.Name, len(recs))
	fmt.Fprint(stdout, infer.SchemaYAML(super))
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, ddl)
	return 0
}
