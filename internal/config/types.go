package config

import (
	"time"
)

// Config is a whole streamd config file (contract v1, see DESIGN.md).
type Config struct {
	// StateDir is the embedded checkpoint store's directory (default ./var/state).
	StateDir string `yaml:"state_dir,omitempty"`
	// Checkpoint selects a shared checkpoint store instead of StateDir.
	Checkpoint *CheckpointConfig `yaml:"checkpoint,omitempty"`
	// HTTP enables the /metrics, /healthz and /readyz listener when set.
	HTTP *HTTPConfig `yaml:"http,omitempty"`
	// ShutdownTimeout is the SIGTERM drain deadline (default 25s).
	ShutdownTimeout Duration `yaml:"shutdown_timeout,omitempty"`
	// MemoryLimit is the process-wide budget for buffered data. Unset, it is
	// derived from GOMEMLIMIT or the container's cgroup limit, else
	// DefaultMemoryLimit (512MiB).
	MemoryLimit ByteSize `yaml:"memory_limit,omitempty"`
	// HugePages asks the kernel to back the Go heap with transparent huge
	// pages (default true; see UseHugePages).
	HugePages *bool `yaml:"huge_pages,omitempty"`
	// Pipelines are the independent chains this process runs; at least one.
	Pipelines []Pipeline `yaml:"pipelines"`

	// src remembers where the config came from, for error messages.
	src *origin
}

// CheckpointConfig selects a shared checkpoint store instead of state_dir.
type CheckpointConfig struct {
	// Store is "file" (the embedded store in state_dir) or "dynamodb".
	Store string `yaml:"store"`
	// Table is the DynamoDB table of the dynamodb store; created when missing.
	Table string `yaml:"table,omitempty"`
}

// HTTPConfig configures the /metrics, /healthz, /readyz listener.
type HTTPConfig struct {
	// Listen is host:port (default 127.0.0.1:9464).
	Listen string `yaml:"listen"`
}

// Pipeline is one source → transforms → window → sink chain.
type Pipeline struct {
	// Name identifies the pipeline in checkpoints, metrics and output names;
	// it matches [a-z0-9_-]+ and is unique in the file.
	Name string `yaml:"name"`
	// Source is where records come from.
	Source Source `yaml:"source"`
	// Schema is the output columns in order; empty means infer.
	Schema []Column `yaml:"schema,omitempty"`
	// Transforms are applied in order, after decode and cast.
	Transforms []Transform `yaml:"transforms,omitempty"`
	// Window is the micro-batch policy.
	Window Window `yaml:"window"`
	// Sink is where batches go.
	Sink Sink `yaml:"sink"`
	// DeadLetter is where rejected records go.
	DeadLetter DeadLetter `yaml:"dead_letter,omitempty"`
	// Line is the line of the pipeline in the file, for messages (0 when
	// the config was not parsed from a file).
	Line int `yaml:"-"`
}

// Source configures where records come from.
type Source struct {
	// Type is file | kafka | kinesis | dynamodb_streams.
	Type string `yaml:"type"`

	// Paths are the file source's globs, local or s3://; .gz is read
	// transparently.
	Paths []string `yaml:"paths,omitempty"`
	// Format is jsonl | csv (default jsonl).
	Format string `yaml:"format,omitempty"`
	// MaxRecordSize is the longest accepted record (default 1MiB); longer
	// ones are dead-lettered.
	MaxRecordSize ByteSize `yaml:"max_record_size,omitempty"`

	// Brokers are the kafka source's bootstrap host:port addresses.
	Brokers []string `yaml:"brokers,omitempty"`
	// Topics are the kafka topics to consume.
	Topics []string `yaml:"topics,omitempty"`
	// Group is the kafka consumer group.
	Group string `yaml:"group,omitempty"`
	// Start is where a lane without a checkpoint starts: earliest | latest
	// for kafka (default earliest), trim_horizon | latest for kinesis and
	// dynamodb_streams (default trim_horizon). Not used by file sources.
	Start string `yaml:"start,omitempty"`

	// TopicRegex selects kafka topics by regular expression instead of Topics.
	TopicRegex string `yaml:"topic_regex,omitempty"`
	// ClientID is the kafka client id (default streamd).
	ClientID string `yaml:"client_id,omitempty"`
	// TLS configures TLS to the kafka brokers (MSK: tls: {} uses the system roots).
	TLS *KafkaTLS `yaml:"tls,omitempty"`
	// SASL configures kafka authentication: PLAIN, SCRAM-SHA-256,
	// SCRAM-SHA-512 or AWS_MSK_IAM.
	SASL *KafkaSASL `yaml:"sasl,omitempty"`
	// SessionTimeout is the kafka group session timeout.
	SessionTimeout Duration `yaml:"session_timeout,omitempty"`
	// RebalanceTimeout is the kafka group rebalance timeout.
	RebalanceTimeout Duration `yaml:"rebalance_timeout,omitempty"`
	// CommitInterval coalesces kafka group offset commits.
	CommitInterval Duration `yaml:"commit_interval,omitempty"`
	// MaxBufferedBytes bounds what the kafka client buffers before fetching pauses.
	MaxBufferedBytes ByteSize `yaml:"max_buffered_bytes,omitempty"`
	// ReadUncommitted reads records of open kafka transactions too.
	ReadUncommitted bool `yaml:"read_uncommitted,omitempty"`

	// Stream is the kinesis stream name.
	Stream string `yaml:"stream,omitempty"`
	// Timestamp is where a kinesis shard without a checkpoint starts when
	// start is at_timestamp (RFC 3339).
	Timestamp string `yaml:"timestamp,omitempty"`
	// EnhancedFanOut reads kinesis shards with SubscribeToShard instead of
	// polling GetRecords; set exactly one of its keys.
	EnhancedFanOut *EnhancedFanOutConfig `yaml:"enhanced_fan_out,omitempty"`

	// Table is the DynamoDB table whose stream dynamodb_streams reads.
	Table string `yaml:"table,omitempty"`
	// StreamARN reads one DynamoDB stream instead of following table's.
	StreamARN string `yaml:"stream_arn,omitempty"`
	// IdleInterval is the pause after an empty GetRecords (dynamodb_streams, default 1s).
	IdleInterval Duration `yaml:"idle_interval,omitempty"`
	// RefreshInterval is how often streams and shards are described (dynamodb_streams, default 10s).
	RefreshInterval Duration `yaml:"refresh_interval,omitempty"`

	// Listen is the http source's host:port, 127.0.0.1:PORT in a sidecar.
	Listen string `yaml:"listen,omitempty"`
	// AuthToken, when set, is required by the http source on every
	// request: "Authorization: Bearer TOKEN", or a SigV4 header whose
	// access key id is the token (redacted when printed).
	AuthToken string `yaml:"auth_token,omitempty"`
	// WALMaxBytes is the http source's write-ahead log disk budget
	// (default 1GiB); past it requests get 503 with Retry-After.
	WALMaxBytes ByteSize `yaml:"wal_max_bytes,omitempty"`
	// WALSegmentBytes is the http source's log segment size (default
	// 64MiB); disk is freed a segment at a time.
	WALSegmentBytes ByteSize `yaml:"wal_segment_bytes,omitempty"`
	// MaxBodyBytes bounds one http request body, compressed and
	// decompressed (default 8MiB).
	MaxBodyBytes ByteSize `yaml:"max_body_bytes,omitempty"`

	// Follow makes a file source tail its paths (each one literal local
	// JSON-lines file) through rotation, never ending.
	Follow bool `yaml:"follow,omitempty"`
	// PollInterval is how often a followed file is checked (default 250ms).
	PollInterval Duration `yaml:"poll_interval,omitempty"`
}

// EnhancedFanOutConfig selects the Kinesis consumer for enhanced fan-out.
type EnhancedFanOutConfig struct {
	// ConsumerName registers (or reuses) a stream consumer of this name.
	ConsumerName string `yaml:"consumer_name,omitempty"`
	// ConsumerARN uses an existing stream consumer.
	ConsumerARN string `yaml:"consumer_arn,omitempty"`
}

// KafkaTLS configures TLS for a kafka source.
type KafkaTLS struct {
	CAFile             string `yaml:"ca_file,omitempty"`
	CertFile           string `yaml:"cert_file,omitempty"`
	KeyFile            string `yaml:"key_file,omitempty"`
	ServerName         string `yaml:"server_name,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"`
}

// KafkaSASL configures SASL for a kafka source.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username,omitempty"`
	// Password is hidden by Redacted.
	Password string `yaml:"password,omitempty"`
}

// Column is one output column: a name, a type and optionally an expression
// that computes it from the other columns.
type Column struct {
	// Name is the output column name.
	Name string `yaml:"name"`
	// Type is parsed by streamd.ParseType: string, int32, decimal(10,2), ...
	Type string `yaml:"type"`
	// Expr computes the column from the other columns (expr-lang syntax).
	Expr string `yaml:"expr,omitempty"`
	// From names the input field when it differs from Name (a.b for nested).
	From string `yaml:"from,omitempty"`
	// Line is the column's line in the file, for messages.
	Line int `yaml:"-"`
}

// Transform is one step of the transforms list; exactly one field is set.
type Transform struct {
	// Filter keeps the records for which the expression is true.
	Filter string `yaml:"filter,omitempty"`
	// Dedup drops records whose key was seen within the TTL.
	Dedup *DedupConfig `yaml:"dedup,omitempty"`
	// Quality checks data-quality rules.
	Quality *QualityConfig `yaml:"quality,omitempty"`
	// Outliers detects values outside fixed bounds or rolling IQR / z-score limits.
	Outliers *OutliersConfig `yaml:"outliers,omitempty"`
	// Trim removes surrounding white space from these string columns.
	Trim []string `yaml:"trim,omitempty"`
	// Lower lower-cases these string columns.
	Lower []string `yaml:"lower,omitempty"`
	// Upper upper-cases these string columns.
	Upper []string `yaml:"upper,omitempty"`
	// NullIfEmpty turns empty strings in these columns into nulls.
	NullIfEmpty []string `yaml:"null_if_empty,omitempty"`
	// Default fills nulls: column → value (cast to the column's type).
	Default map[string]string `yaml:"default,omitempty"`
	// Replace rewrites a string column with a regular expression.
	Replace *ReplaceConfig `yaml:"replace,omitempty"`
	// Rename renames columns: old → new.
	Rename map[string]string `yaml:"rename,omitempty"`
	// Drop removes columns.
	Drop []string `yaml:"drop,omitempty"`
	// Select keeps only these columns, in this order.
	Select []string `yaml:"select,omitempty"`
	// ParseTime parses a string column with explicit formats and a time zone.
	ParseTime *ParseTimeConfig `yaml:"parse_time,omitempty"`
	// Line is the transform's line in the file, for messages.
	Line int `yaml:"-"`
}

// OutliersConfig configures the outliers operator.
type OutliersConfig struct {
	Column string `yaml:"column"`
	// Method is bounds, iqr or zscore (default iqr).
	Method string   `yaml:"method,omitempty"`
	Min    *float64 `yaml:"min,omitempty"`
	Max    *float64 `yaml:"max,omitempty"`
	// K is the IQR multiplier (default 1.5) or the z-score limit (default 3).
	K float64 `yaml:"k,omitempty"`
	// Window is how many recent values per key the statistics use.
	Window     int      `yaml:"window,omitempty"`
	MinSamples int      `yaml:"min_samples,omitempty"`
	By         []string `yaml:"by,omitempty"`
	// Action is clip, drop, dead_letter or flag.
	Action  string `yaml:"action,omitempty"`
	MaxKeys int    `yaml:"max_keys,omitempty"`
}

// ReplaceConfig configures a regular-expression replacement.
type ReplaceConfig struct {
	Column  string `yaml:"column"`
	Pattern string `yaml:"pattern"`
	With    string `yaml:"with"`
}

// ParseTimeConfig configures timestamp parsing with explicit formats.
type ParseTimeConfig struct {
	Column   string   `yaml:"column"`
	Formats  []string `yaml:"formats"`
	Timezone string   `yaml:"timezone,omitempty"`
	// Type is timestamp (default) or date.
	Type string `yaml:"type,omitempty"`
}

// DedupConfig configures the dedup operator.
type DedupConfig struct {
	// Keys are the columns that identify a duplicate.
	Keys []string `yaml:"keys"`
	// TTL is how long a key is remembered (default 24h).
	TTL Duration `yaml:"ttl,omitempty"`
	// MaxKeys bounds the keys remembered per lane (default 1M; oldest evicted first).
	MaxKeys int `yaml:"max_keys,omitempty"`
}

// QualityConfig configures data-quality rules.
type QualityConfig struct {
	// Rules are DQDL-subset rules such as 'IsComplete "customer_id"'.
	Rules []string `yaml:"rules"`
	// Action is what happens to a failing record: dead_letter (default),
	// drop, warn (count and keep) or flag (keep, naming the failed rules in
	// a dq_failed_rules column).
	Action string `yaml:"action,omitempty"`
	// UniqueTTL is how long IsUnique remembers a value (default 24h).
	UniqueTTL Duration `yaml:"unique_ttl,omitempty"`
	// MaxKeys bounds the values IsUnique remembers per lane.
	MaxKeys int `yaml:"max_keys,omitempty"`
}

// Window configures micro-batching.
type Window struct {
	// MaxRecords closes a batch at this many records (default 100000).
	MaxRecords int `yaml:"max_records,omitempty"`
	// MaxBytes closes a batch at this many input bytes (default 64MiB).
	MaxBytes ByteSize `yaml:"max_bytes,omitempty"`
	// MaxAge closes a batch this long after its first record (default 30s).
	MaxAge Duration `yaml:"max_age,omitempty"`
}

// Sink configures where batches go.
type Sink struct {
	// Type is parquet | dynamodb | opensearch.
	Type string `yaml:"type"`
	// Path is the parquet output: ./dir or s3://bucket/prefix.
	Path string `yaml:"path,omitempty"`
	// PartitionBy are the columns of the Hive partition directories.
	PartitionBy []string `yaml:"partition_by,omitempty"`
	// Compression is snappy (default for parquet) | zstd | none.
	Compression string `yaml:"compression,omitempty"`
	// RowGroupSize is the number of rows per Parquet row group (0: the
	// sink's default).
	RowGroupSize int `yaml:"row_group_size,omitempty"`
	// TargetFileSize splits a partition of a batch into Parquet files of
	// about this estimated size (0: 128MiB; negative: never split).
	TargetFileSize ByteSize `yaml:"target_file_size,omitempty"`
	// RowGroupBytes closes a row group at this estimated size (0: 64MiB;
	// negative: rows only).
	RowGroupBytes ByteSize `yaml:"row_group_bytes,omitempty"`
	// IfNoneMatch makes S3 Puts never overwrite: an existing identical
	// object is a redo, a different one an error.
	IfNoneMatch bool `yaml:"if_none_match,omitempty"`
	// SSE is S3 server-side encryption of the Parquet objects.
	SSE *SinkSSE `yaml:"sse,omitempty"`

	// Table is the dynamodb sink's table.
	Table string `yaml:"table,omitempty"`
	// Key are the dynamodb sink's key columns (partition, then sort).
	Key []string `yaml:"key,omitempty"`

	// URL is the opensearch endpoint, http(s)://host:port.
	URL string `yaml:"url,omitempty"`
	// Index is the opensearch index.
	Index string `yaml:"index,omitempty"`
	// ID are the columns the deterministic document _id is built from.
	ID []string `yaml:"id,omitempty"`
	// Username is the opensearch basic-auth user.
	Username string `yaml:"username,omitempty"`
	// Password is the opensearch basic-auth password; Redacted hides it.
	Password string `yaml:"password,omitempty"`

	// Region is the AWS region of the dynamodb sink and of opensearch SigV4
	// (default: the SDK chain).
	Region string `yaml:"region,omitempty"`
	// Concurrency is the number of requests in flight per batch (dynamodb 4,
	// opensearch 2).
	Concurrency int `yaml:"concurrency,omitempty"`
	// RetryTimeout bounds per-batch retries of throttling, UnprocessedItems,
	// 429 and 5xx (default 2m); past it the batch fails and is redone.
	RetryTimeout Duration `yaml:"retry_timeout,omitempty"`
	// Action is the opensearch bulk action: index (default, upsert) or
	// create (write once).
	Action string `yaml:"action,omitempty"`
	// BulkBytes is the opensearch _bulk request size before gzip (default 5MiB).
	BulkBytes ByteSize `yaml:"bulk_bytes,omitempty"`
	// Gzip compresses opensearch request bodies (default true).
	Gzip *bool `yaml:"gzip,omitempty"`
	// AWSSigV4 signs opensearch requests with AWS SigV4 instead of basic auth.
	AWSSigV4 *SigV4Config `yaml:"aws_sigv4,omitempty"`
}

// SinkSSE configures S3 server-side encryption.
type SinkSSE struct {
	// Type is none, s3 (SSE-S3, AES256) or kms (SSE-KMS).
	Type string `yaml:"type,omitempty"`
	// KMSKeyID is the KMS key for type kms (default: the AWS managed key).
	KMSKeyID string `yaml:"kms_key_id,omitempty"`
	// BucketKey enables S3 Bucket Keys for type kms.
	BucketKey bool `yaml:"bucket_key,omitempty"`
}

// SigV4Config selects AWS SigV4 signing for an opensearch sink.
type SigV4Config struct {
	// Service is es (Amazon OpenSearch Service, default) or aoss (Serverless).
	Service string `yaml:"service,omitempty"`
	// Region is the signing region (default: sink.region, then the SDK chain).
	Region string `yaml:"region,omitempty"`
}

// DeadLetter configures where rejected records go.
type DeadLetter struct {
	// Path is ./dir or s3://bucket/prefix.
	Path string `yaml:"path,omitempty"`
}

// Duration is a time.Duration written as "30s", "24h" or "7d".
type Duration time.Duration

// ByteSize is a byte count written as 1048576, "64MiB", "1GB".
type ByteSize int64

// UseHugePages reports whether streamd asks for transparent huge pages
// for its heap: huge_pages, true when unset.
func (c *Config) UseHugePages() bool { return c.HugePages == nil || *c.HugePages }
