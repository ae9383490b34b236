package config

import (
	"time"
)

// Config is a whole streamd config file (contract v1, see DESIGN.md).
type Config struct {
	// StateDir is the embedded checkpoint store's directory (default ./var/state).
	StateDir   string            `yaml:"state_dir"`
	Checkpoint *CheckpointConfig `yaml:"checkpoint"`
	HTTP       *HTTPConfig       `yaml:"http"`
	// ShutdownTimeout is the SIGTERM drain deadline (default 25s).
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// MemoryLimit is the process-wide budget for buffered data (default 512MiB).
	MemoryLimit ByteSize   `yaml:"memory_limit"`
	Pipelines   []Pipeline `yaml:"pipelines"`
}

// CheckpointConfig selects a shared checkpoint store instead of state_dir.
type CheckpointConfig struct {
	Store string `yaml:"store"` // file | dynamodb
	Table string `yaml:"table"`
}

// HTTPConfig configures the /metrics, /healthz, /readyz listener.
type HTTPConfig struct {
	Listen string `yaml:"listen"`
}

// Pipeline is one source → transforms → window → sink chain.
type Pipeline struct {
	Name       string      `yaml:"name"`
	Source     Source      `yaml:"source"`
	Schema     []Column    `yaml:"schema"`
	Transforms []Transform `yaml:"transforms"`
	Window     Window      `yaml:"window"`
	Sink       Sink        `yaml:"sink"`
	DeadLetter DeadLetter  `yaml:"dead_letter"`
	Line       int         `yaml:"-"` // line of the pipeline in the file, for messages
}

// Source configures where records come from.
type Source struct {
	Type string `yaml:"type"` // file | kafka | kinesis | dynamodb_streams

	// file
	Paths         []string `yaml:"paths"`
	Format        string   `yaml:"format"` // jsonl | csv
	MaxRecordSize ByteSize `yaml:"max_record_size"`

	// kafka
	Brokers []string `yaml:"brokers"`
	Topics  []string `yaml:"topics"`
	Group   string   `yaml:"group"`
	Start   string   `yaml:"start"`

	// kinesis
	Stream string `yaml:"stream"`

	// dynamodb_streams
	Table string `yaml:"table"`
}

// Column is one output column: a name, a type and optionally an expression
// that computes it from the other columns.
type Column struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	Expr string `yaml:"expr"`
	// From names the input field when it differs from Name (a.b for nested).
	From string `yaml:"from"`
	Line int    `yaml:"-"`
}

// Transform is one step of the transforms list; exactly one field is set.
type Transform struct {
	Filter  string         `yaml:"filter"`
	Dedup   *DedupConfig   `yaml:"dedup"`
	Quality *QualityConfig `yaml:"quality"`
	Line    int            `yaml:"-"`
}

// DedupConfig configures the dedup operator.
type DedupConfig struct {
	Keys []string `yaml:"keys"`
	TTL  Duration `yaml:"ttl"`
}

// QualityConfig configures data-quality rules.
type QualityConfig struct {
	Rules  []string `yaml:"rules"`
	Action string   `yaml:"action"`
}

// Window configures micro-batching.
type Window struct {
	MaxRecords int      `yaml:"max_records"`
	MaxBytes   ByteSize `yaml:"max_bytes"`
	MaxAge     Duration `yaml:"max_age"`
}

// Sink configures where batches go.
type Sink struct {
	Type        string   `yaml:"type"` // parquet | dynamodb | opensearch
	Path        string   `yaml:"path"` // ./dir or s3://bucket/prefix
	PartitionBy []string `yaml:"partition_by"`
	Compression string   `yaml:"compression"` // snappy | zstd | none
	// RowGroupSize is the number of rows per Parquet row group (default 100000... set by the sink).
	RowGroupSize int `yaml:"row_group_size"`

	// dynamodb
	Table string   `yaml:"table"`
	Key   []string `yaml:"key"`

	// opensearch
	URL      string   `yaml:"url"`
	Index    string   `yaml:"index"`
	ID       []string `yaml:"id"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password"`
}

// DeadLetter configures where rejected records go.
type DeadLetter struct {
	Path string `yaml:"path"` // ./dir or s3://bucket/prefix
}

// Duration is a time.Duration written as "30s", "24h".
type Duration time.Duration

// ByteSize is a byte count written as 1048576, "64MiB", "1GB".
type ByteSize int64
