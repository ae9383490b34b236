package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	ddbstore "github.com/streamd/streamd/checkpoint/dynamodb"
	"github.com/streamd/streamd/transform"
)

// env returns a lookup function over m.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// minimal is a valid config; line numbers of the cases below refer to it
// or to their own text.
const minimal = `pipelines:
  - name: sales
    source:
      type: file
      paths: ["data/*.jsonl"]
    schema:
      - {name: id, type: string}
      - {name: region, type: string}
    sink:
      type: parquet
      path: ./out
      partition_by: [region]
`

func TestParseMinimalAppliesDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), "c.yaml", env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.StateDir != "./var/state" || c.ShutdownTimeout.Std() != 25*time.Second || c.MemoryLimit != 0 {
		t.Errorf("top-level defaults: state_dir %q shutdown_timeout %s memory_limit %d", c.StateDir, c.ShutdownTimeout, c.MemoryLimit)
	}
	if c.HTTP != nil || c.Checkpoint != nil {
		t.Errorf("http/checkpoint must stay nil when absent: %+v %+v", c.HTTP, c.Checkpoint)
	}
	if !c.UseHugePages() {
		t.Error("huge_pages must default to true")
	}
	p := c.Pipelines[0]
	if p.Line != 2 || p.Schema[1].Line != 8 {
		t.Errorf("lines: pipeline %d (want 2), schema[1] %d (want 8)", p.Line, p.Schema[1].Line)
	}
	if p.Source.Format != "jsonl" || p.Source.MaxRecordSize != 1<<20 || p.Source.Start != "" {
		t.Errorf("source defaults: %+v", p.Source)
	}
	if p.Window.MaxRecords != 100000 || p.Window.MaxBytes != 64<<20 || p.Window.MaxAge.Std() != 30*time.Second {
		t.Errorf("window defaults: %+v", p.Window)
	}
	if p.Sink.Compression != "snappy" {
		t.Errorf("sink compression default %q, want snappy", p.Sink.Compression)
	}
}

func TestHugePagesOff(t *testing.T) {
	c, err := Parse([]byte("huge_pages: false\n"+minimal), "c.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.UseHugePages() {
		t.Error("huge_pages: false must turn huge pages off")
	}
}

func TestParseDefaultsPerType(t *testing.T) {
	src := `http: {}
pipelines:
  - name: k
    source: {type: kafka, brokers: ["b:9092"], topics: [t], group: g}
    schema: [{name: id, type: string}]
    transforms:
      - dedup: {keys: [id]}
      - quality: {rules: ['IsComplete "id"']}
    sink: {type: dynamodb, table: t, key: [id]}
  - name: s
    source: {type: kinesis, stream: s}
    sink: {type: opensearch, url: "http://h:9200", index: i}
  - name: d
    source: {type: dynamodb_streams, table: t}
    sink: {type: parquet, path: s3://b/p}
`
	c, err := Parse([]byte(src), "c.yaml", env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.HTTP.Listen != "127.0.0.1:9464" {
		t.Errorf("http.listen default %q", c.HTTP.Listen)
	}
	k, s, d := c.Pipelines[0], c.Pipelines[1], c.Pipelines[2]
	if k.Source.Start != "earliest" || s.Source.Start != "trim_horizon" || d.Source.Start != "trim_horizon" {
		t.Errorf("start defaults: %q %q %q", k.Source.Start, s.Source.Start, d.Source.Start)
	}
	if d.Source.Format != "" {
		t.Errorf("dynamodb_streams format %q, want none", d.Source.Format)
	}
	if k.Transforms[0].Dedup.TTL.Std() != 24*time.Hour || k.Transforms[1].Quality.Action != "dead_letter" {
		t.Errorf("transform defaults: %+v %+v", k.Transforms[0].Dedup, k.Transforms[1].Quality)
	}
	if k.Sink.Compression != "" || s.Sink.Compression != "" || d.Sink.Compression != "snappy" {
		t.Errorf("compression defaults apply to parquet only: %q %q %q", k.Sink.Compression, s.Sink.Compression, d.Sink.Compression)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		env      map[string]string
		sentinel error
		want     []string // each must appear in one message
	}{
		{
			name:     "unknown top-level key",
			src:      "pipeline:\n  - name: x\n",
			want:     []string{`c.yaml:1: unknown key "pipeline" at the top level`, `did you mean "pipelines"?`},
			sentinel: ErrUnknownKey,
		},
		{
			name: "unknown key in window",
			src: minimal + `    window:
      max_records: 10
      max_recrds: 5
`,
			want:     []string{`c.yaml:15: unknown key "max_recrds" in pipelines[0].window (known: max_records, max_bytes, max_age)`},
			sentinel: ErrUnknownKey,
		},
		{
			name:     "unknown key in a schema column",
			src:      strings.Replace(minimal, "{name: region, type: string}", "{name: region, typ: string}", 1),
			want:     []string{`c.yaml:8: unknown key "typ" in pipelines[0].schema[1]`},
			sentinel: ErrUnknownKey,
		},
		{
			name:     "unknown key in dedup",
			src:      minimal + "    transforms:\n      - filter: x > 1\n      - dedup: {keys: [id], tll: 1h}\n",
			want:     []string{`c.yaml:15: unknown key "tll" in pipelines[0].transforms[1].dedup`},
			sentinel: ErrUnknownKey,
		},
		{
			name:     "unknown key in checkpoint",
			src:      "checkpoint:\n  store: dynamodb\n  tabel: x\n" + minimal,
			want:     []string{`c.yaml:3: unknown key "tabel" in checkpoint`},
			sentinel: ErrUnknownKey,
		},
		{
			name:     "duplicate key",
			src:      "state_dir: a\nstate_dir: b\n" + minimal,
			want:     []string{`c.yaml:2: state_dir: duplicate key "state_dir" (first at line 1)`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "bad duration",
			src:      minimal + "    window: {max_age: 3 0s}\n",
			want:     []string{`c.yaml:13: pipelines[0].window.max_age: invalid duration "3 0s"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "duration without unit",
			src:      "shutdown_timeout: 30\n" + minimal,
			want:     []string{`c.yaml:1: shutdown_timeout: invalid duration "30"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "bad size",
			src:      "memory_limit: 512MB B\n" + minimal,
			want:     []string{`c.yaml:1: memory_limit: invalid size "512MB B"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "huge_pages not a bool",
			src:      "huge_pages: sometimes\n" + minimal,
			want:     []string{`c.yaml:1: huge_pages`, `"sometimes"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "bad size unit",
			src:      minimal + "    window:\n      max_bytes: 64MiBs\n",
			want:     []string{`c.yaml:14: pipelines[0].window.max_bytes: invalid size "64MiBs"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "bad integer",
			src:      minimal + "    window: {max_records: lots}\n",
			want:     []string{`c.yaml:13: pipelines[0].window.max_records: invalid integer "lots"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "list where a mapping belongs",
			src:      minimal + "    window: [1, 2]\n",
			want:     []string{`c.yaml:13: pipelines[0].window: expected a mapping`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "mapping where a string belongs",
			src:      strings.Replace(minimal, "path: ./out", "path: {dir: ./out}", 1),
			want:     []string{`c.yaml:11: pipelines[0].sink.path: expected a single value`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "bad column type",
			src:      strings.Replace(minimal, "{name: region, type: string}", "{name: region, type: \"decimal(10)\"}", 1),
			want:     []string{`c.yaml:8: pipelines[0].schema[1].type: column "region": parse type "decimal(10)"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "unknown column type",
			src:      strings.Replace(minimal, "{name: id, type: string}", "{name: id, type: uuid}", 1),
			want:     []string{`c.yaml:7: pipelines[0].schema[0].type: column "id": parse type "uuid"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "missing column type",
			src:      strings.Replace(minimal, "{name: id, type: string}", "{name: id}", 1),
			want:     []string{`c.yaml:7: pipelines[0].schema[0].type: required type of column "id"`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "duplicate column",
			src:      strings.Replace(minimal, "{name: region, type: string}", "{name: id, type: int64}", 1),
			want:     []string{`c.yaml:8: pipelines[0].schema[1].name: duplicate column "id" (also pipelines[0].schema[0])`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "partition column not in schema",
			src:      strings.Replace(minimal, "partition_by: [region]", "partition_by: [country]", 1),
			want:     []string{`c.yaml:12: pipelines[0].sink.partition_by[0]: partition column "country" is not in the schema`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "multiple transform keys",
			src:      minimal + "    transforms:\n      - filter: id != ''\n        dedup: {keys: [id]}\n",
			want:     []string{`c.yaml:14: pipelines[0].transforms[0]: a transform needs exactly one key of filter, dedup, quality, outliers, trim, lower, upper, null_if_empty, default, replace, rename, drop, select, parse_time (got filter, dedup)`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "empty transform",
			src:      minimal + "    transforms:\n      - filter: \"\"\n",
			want:     []string{`c.yaml:14: pipelines[0].transforms[0]: a transform needs exactly one key`, `(got none)`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "outlier bounds without limits",
			src:      minimal + "    transforms:\n      - outliers: {column: q, method: bounds}\n",
			want:     []string{`c.yaml:14: pipelines[0].transforms[0].outliers.min`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "unset env without default",
			src:      strings.Replace(minimal, "path: ./out", "path: s3://${BUCKET}/out", 1),
			want:     []string{`c.yaml:11: pipelines[0].sink.path: environment variable BUCKET is not set`},
			sentinel: ErrUnsetEnv,
		},
		{
			name:     "unterminated env reference",
			src:      strings.Replace(minimal, "path: ./out", "path: ${BUCKET", 1),
			want:     []string{`c.yaml:11: pipelines[0].sink.path: unterminated ${`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "no pipelines",
			src:      "state_dir: ./x\npipelines: []\n",
			want:     []string{`c.yaml:2: pipelines: at least one pipeline is required`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "empty file",
			src:      "# nothing here\n",
			want:     []string{`c.yaml: the config is empty`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "yaml syntax",
			src:      "state_dir: x\npipelines:\n\t- name: a\n",
			want:     []string{`c.yaml:3: invalid YAML: found character that cannot start any token`},
			sentinel: ErrSyntax,
		},
		{
			name:     "two documents",
			src:      minimal + "---\nstate_dir: x\n",
			want:     []string{`c.yaml:13: the file holds more than one YAML document`},
			sentinel: ErrSyntax,
		},
		{
			name:     "bad pipeline name",
			src:      strings.Replace(minimal, "name: sales", "name: Sales Data", 1),
			want:     []string{`c.yaml:2: pipelines[0].name: invalid name "Sales Data"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "duplicate pipeline name",
			src:      minimal + strings.TrimPrefix(minimal, "pipelines:\n"),
			want:     []string{`c.yaml:13: pipelines[1].name: duplicate pipeline name "sales" (also pipelines[0])`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "missing source type",
			src:      strings.Replace(minimal, "      type: file\n", "", 1),
			want:     []string{`c.yaml:3: pipelines[0].source.type: required`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "unknown source type",
			src:      strings.Replace(minimal, "type: file", "type: ftp", 1),
			want:     []string{`c.yaml:4: pipelines[0].source.type: invalid value "ftp" (want file, kafka, kinesis, dynamodb_streams, http)`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "file source without paths",
			src:      strings.Replace(minimal, "      paths: [\"data/*.jsonl\"]\n", "", 1),
			want:     []string{`c.yaml:3: pipelines[0].source.paths: required for a file source`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "bad glob",
			src:      strings.Replace(minimal, `"data/*.jsonl"`, `"data/[.jsonl"`, 1),
			want:     []string{`c.yaml:5: pipelines[0].source.paths[0]: invalid glob "data/[.jsonl"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "bad format",
			src:      strings.Replace(minimal, "type: file\n", "type: file\n      format: xml\n", 1),
			want:     []string{`c.yaml:5: pipelines[0].source.format: invalid value "xml" (want jsonl, csv)`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "key of another source type",
			src:      strings.Replace(minimal, "type: file\n", "type: file\n      stream: s\n", 1),
			want:     []string{`c.yaml:5: pipelines[0].source.stream: does not apply to a file source`},
			sentinel: ErrInvalidValue,
		},
		{
			name: "kafka without brokers topics group, bad start",
			src: `pipelines:
  - name: k
    source:
      type: kafka
      start: trim_horizon
    sink: {type: parquet, path: ./o}
`,
			want: []string{
				`c.yaml:3: pipelines[0].source.brokers: required for a kafka source`,
				`c.yaml:3: pipelines[0].source.topics: required (or topic_regex) for a kafka source`,
				`c.yaml:3: pipelines[0].source.group: required for a kafka source`,
				`c.yaml:5: pipelines[0].source.start: invalid value "trim_horizon" (want earliest, latest)`,
			},
			sentinel: ErrMissingKey,
		},
		{
			name:     "kafka broker without port",
			src:      "pipelines:\n  - name: k\n    source:\n      type: kafka\n      brokers: [localhost]\n      topics: [t]\n      group: g\n    sink: {type: parquet, path: ./o}\n",
			want:     []string{`c.yaml:5: pipelines[0].source.brokers[0]: invalid broker "localhost" (want host:port)`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "kinesis without stream",
			src:      "pipelines:\n  - name: k\n    source: {type: kinesis, start: earliest}\n    sink: {type: parquet, path: ./o}\n",
			want:     []string{`c.yaml:3: pipelines[0].source.stream: required for a kinesis source`, `c.yaml:3: pipelines[0].source.start: invalid value "earliest" (want trim_horizon, latest, at_timestamp)`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "dynamodb_streams without table",
			src:      "pipelines:\n  - name: k\n    source: {type: dynamodb_streams}\n    sink: {type: parquet, path: ./o}\n",
			want:     []string{`c.yaml:3: pipelines[0].source.table: required (or stream_arn) for a dynamodb_streams source`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "missing sink",
			src:      "pipelines:\n  - name: k\n    source: {type: kinesis, stream: s}\n",
			want:     []string{`c.yaml:2: pipelines[0].sink.type: required`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "parquet without path, bad compression",
			src:      strings.Replace(minimal, "      path: ./out\n", "      compression: gzip\n", 1),
			want:     []string{`c.yaml:9: pipelines[0].sink.path: required for a parquet sink`, `c.yaml:11: pipelines[0].sink.compression: invalid value "gzip" (want snappy, zstd, none)`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "s3 path without bucket",
			src:      strings.Replace(minimal, "path: ./out", "path: s3:///out", 1),
			want:     []string{`c.yaml:11: pipelines[0].sink.path: no bucket in "s3:///out"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "unsupported scheme",
			src:      strings.Replace(minimal, "path: ./out", "path: gs://b/out", 1),
			want:     []string{`c.yaml:11: pipelines[0].sink.path: unsupported scheme "gs"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "dynamodb sink without table and key",
			src:      "pipelines:\n  - name: k\n    source: {type: kinesis, stream: s}\n    sink:\n      type: dynamodb\n",
			want:     []string{`c.yaml:4: pipelines[0].sink.table: required for a dynamodb sink`, `c.yaml:4: pipelines[0].sink.key: required for a dynamodb sink`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "opensearch sink without url and index",
			src:      "pipelines:\n  - name: k\n    source: {type: kinesis, stream: s}\n    sink:\n      type: opensearch\n      partition_by: [x]\n",
			want:     []string{`c.yaml:4: pipelines[0].sink.url: required`, `c.yaml:4: pipelines[0].sink.index: required`, `c.yaml:6: pipelines[0].sink.partition_by: does not apply to a opensearch sink`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "unknown sink type",
			src:      strings.Replace(minimal, "type: parquet", "type: s3", 1),
			want:     []string{`c.yaml:10: pipelines[0].sink.type: invalid value "s3" (want parquet, dynamodb, opensearch)`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "checkpoint dynamodb without table",
			src:      "checkpoint: {store: dynamodb}\n" + minimal,
			want:     []string{`c.yaml:1: checkpoint.table: required for the dynamodb store`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "unknown checkpoint store",
			src:      "checkpoint:\n  store: redis\n" + minimal,
			want:     []string{`c.yaml:2: checkpoint.store: invalid value "redis" (want file, dynamodb)`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "bad listen address",
			src:      "http: {listen: localhost}\n" + minimal,
			want:     []string{`c.yaml:1: http.listen: invalid address "localhost"`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "negative window limits",
			src:      minimal + "    window:\n      max_records: -1\n      max_age: -5s\n",
			want:     []string{`c.yaml:14: pipelines[0].window.max_records: must be positive`, `c.yaml:15: pipelines[0].window.max_age: must be positive`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "window larger than memory limit",
			src:      "memory_limit: 64MiB\n" + minimal + "    window: {max_bytes: 128MiB}\n",
			want:     []string{`c.yaml:14: pipelines[0].window.max_bytes: 128MiB exceeds memory_limit 64MiB`},
			sentinel: ErrInvalidValue,
		},
		{
			name:     "quality without rules, bad action",
			src:      minimal + "    transforms:\n      - quality: {action: explode}\n",
			want:     []string{`c.yaml:14: pipelines[0].transforms[0].quality.rules: required`, `c.yaml:14: pipelines[0].transforms[0].quality.action: invalid value "explode"`},
			sentinel: ErrMissingKey,
		},
		{
			name:     "start on a file source",
			src:      strings.Replace(minimal, "type: file\n", "type: file\n      start: latest\n", 1),
			want:     []string{`c.yaml:5: pipelines[0].source.start: does not apply to a file source`},
			sentinel: ErrInvalidValue,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.src), "c.yaml", env(tt.env))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error; config:\n%s", c)
			}
			if c != nil {
				t.Errorf("Parse returned a config along with the error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain\n  %s\ngot:\n  %s", w, strings.ReplaceAll(msg, "\n", "\n  "))
				}
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(err, %v) = false; err: %v", tt.sentinel, err)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "c.yaml" {
				t.Errorf("errors.As(*Error) failed or wrong file: %#v", ce)
			}
		})
	}
}

func TestParseReportsAllProblems(t *testing.T) {
	src := `pipelines:
  - name: a
    source: {type: file}
    sink: {type: parquet}
  - name: a
    source: {type: kafka, brokers: ["h:1"], topics: [t], group: g}
    schema: [{name: id, type: string}]
    sink: {type: dynamodb, table: t}
`
	_, err := Parse([]byte(src), "c.yaml", env(nil))
	if err == nil {
		t.Fatal("Parse succeeded, want errors")
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error is not joined: %T", err)
	}
	if n := len(j.Unwrap()); n != 4 {
		t.Errorf("got %d problems, want 4 (paths, path, duplicate name, key):\n%v", n, err)
	}
}

func TestEnvExpansion(t *testing.T) {
	src := `state_dir: "${STATE:-./var/default-state}"
shutdown_timeout: ${TIMEOUT}
memory_limit: ${MEM:-1GiB}
pipelines:
  - name: ${NAME}
    source:
      type: file
      paths: ["${DIR}/*.jsonl", "$${literal}/x", "cost$5/*.csv"]
    window: {max_records: "${RECORDS}", max_age: "${AGE:-}"}
    sink: {type: parquet, path: "s3://${BUCKET}/${PREFIX:-out}"}
`
	c, err := Parse([]byte(src), "c.yaml", env(map[string]string{
		"TIMEOUT": "40s", "NAME": "orders", "DIR": "/data", "RECORDS": "500",
		"BUCKET": "lake", "PREFIX": "", // empty: the default applies
	}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	p := c.Pipelines[0]
	checks := []struct{ got, want string }{
		{c.StateDir, "./var/default-state"},
		{c.ShutdownTimeout.String(), "40s"},
		{c.MemoryLimit.String(), "1GiB"},
		{p.Name, "orders"},
		{strings.Join(p.Source.Paths, " "), "/data/*.jsonl ${literal}/x cost$5/*.csv"},
		{p.Sink.Path, "s3://lake/out"},
		{p.Window.MaxAge.String(), "30s"}, // empty expansion: the default
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("got %q, want %q", ch.got, ch.want)
		}
	}
	if p.Window.MaxRecords != 500 {
		t.Errorf("max_records %d, want 500", p.Window.MaxRecords)
	}
}

func TestExpandEnvErrors(t *testing.T) {
	for _, s := range []string{"${}", "${1A}", "${A-B}", "${A", "x${A:-b"} {
		if _, err := expandEnv(s, env(map[string]string{"A": "a"}), func(string, string) {}); err == nil {
			t.Errorf("expandEnv(%q) succeeded, want an error", s)
		}
	}
}

func TestSecretsStayOutOfMessagesAndPrints(t *testing.T) {
	const secret = "hunter2-s3cr3t"
	src := `pipelines:
  - name: search
    source: {type: kinesis, stream: s}
    sink:
      type: opensearch
      url: "http://admin:${OS_PASSWORD}@search:9200"
      index: Sales
      username: admin
      password: ${OS_PASSWORD}
`
	_, err := Parse([]byte(src), "c.yaml", env(map[string]string{"OS_PASSWORD": secret}))
	if err == nil || !strings.Contains(err.Error(), `c.yaml:7: pipelines[0].sink.index: index "Sales" must be lower case`) {
		t.Fatalf("want the index error, got %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error leaks the secret: %v", err)
	}

	// A URL that fails validation must not echo its password.
	bad := strings.Replace(strings.Replace(src, "index: Sales", "index: sales", 1), "http://admin", "ftp://admin", 1)
	_, err = Parse([]byte(bad), "c.yaml", env(map[string]string{"OS_PASSWORD": secret}))
	if err == nil || !strings.Contains(err.Error(), "pipelines[0].sink.url: invalid URL") {
		t.Fatalf("want the url error, got %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error leaks the secret: %v", err)
	}

	good := strings.Replace(src, "index: Sales", "index: sales", 1)
	c, err := Parse([]byte(good), "c.yaml", env(map[string]string{"OS_PASSWORD": secret}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Pipelines[0].Sink.Password != secret {
		t.Errorf("the config itself must keep the password, got %q", c.Pipelines[0].Sink.Password)
	}
	r := c.Redacted()
	if r.Pipelines[0].Sink.Password != "[REDACTED]" || r.Pipelines[0].Sink.URL != "http://admin:[REDACTED]@search:9200" {
		t.Errorf("Redacted: password %q url %q", r.Pipelines[0].Sink.Password, r.Pipelines[0].Sink.URL)
	}
	if c.Pipelines[0].Sink.Password != secret || c.Pipelines[0].Sink.URL == r.Pipelines[0].Sink.URL {
		t.Error("Redacted modified the original")
	}
	out := c.String()
	if strings.Contains(out, secret) || !strings.Contains(out, "password: '[REDACTED]'") || !strings.Contains(out, "index: sales") {
		t.Errorf("String:\n%s", out)
	}
}

func TestRedactedRoundTrips(t *testing.T) {
	c, err := Parse([]byte(minimal), "c.yaml", env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	again, err := Parse([]byte(c.String()), "again.yaml", env(nil))
	if err != nil {
		t.Fatalf("Parse(String()): %v\n%s", err, c)
	}
	if again.String() != c.String() {
		t.Errorf("round trip differs:\n%s\n---\n%s", c, again)
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	src := `x-window: &win {max_records: 10, max_age: 5s}
pipelines:
  - name: a
    source: {type: file, paths: a.jsonl}
    window: *win
    sink: &out {type: parquet, path: ./a}
  - name: b
    source: {type: file, paths: [b.jsonl]}
    window:
      <<: *win
      max_age: 1s
    sink:
      <<: *out
      path: ./b
`
	_, err := Parse([]byte(src), "c.yaml", env(nil))
	if err == nil || !strings.Contains(err.Error(), `c.yaml:1: unknown key "x-window" at the top level`) {
		t.Fatalf("want unknown x-window, got %v", err)
	}
	src = "pipelines:\n" + src[strings.Index(src, "  - name: a"):]
	src = strings.Replace(src, "window: *win", "window: &win {max_records: 10, max_age: 5s}", 1)
	c, err := Parse([]byte(src), "c.yaml", env(nil))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	a, b := c.Pipelines[0], c.Pipelines[1]
	if a.Source.Paths[0] != "a.jsonl" {
		t.Errorf("a single path string must become a list: %v", a.Source.Paths)
	}
	if b.Window.MaxRecords != 10 || b.Window.MaxAge.String() != "1s" || b.Sink.Type != "parquet" || b.Sink.Path != "./b" {
		t.Errorf("merge keys: window %+v sink %+v", b.Window, b.Sink)
	}
}

func TestValidateCodeBuiltConfig(t *testing.T) {
	c := &Config{Pipelines: []Pipeline{{Name: "x", Source: Source{Type: "file", Paths: []string{"a"}}, Sink: Sink{Type: "parquet", Path: "./o"}}}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "config: shutdown_timeout: must be positive") {
		t.Errorf("Validate before SetDefaults: %v", err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after SetDefaults: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(t.TempDir() + "/nope.yaml")
	if err == nil || !strings.Contains(err.Error(), "load config:") || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("Load: %v", err)
	}
}

func TestDynamoDBCheckpointBoundsKeyedState(t *testing.T) {
	base := `checkpoint: {store: dynamodb, table: t}
pipelines:
  - name: p
    source: {type: file, paths: [a]}
    schema: [{name: id, type: string}]
    transforms:
%s    sink: {type: parquet, path: out}
`
	cases := []struct {
		name, transforms string
		want             string // "" for valid
	}{
		{"dedup default", "      - dedup: {keys: [id]}\n", "c.yaml:7: pipelines[0].transforms[0].dedup.max_keys: dedup remembers up to 1000000 keys"},
		{"dedup too many", "      - dedup: {keys: [id], max_keys: 20000}\n", "set max_keys to at most 14506"},
		{"dedup bounded", "      - dedup: {keys: [id], max_keys: 14000}\n", ""},
		{"IsUnique default", "      - quality: {rules: ['IsUnique \"id\"']}\n", "pipelines[0].transforms[0].quality.max_keys"},
		{"quality without IsUnique", "      - quality: {rules: ['IsComplete \"id\"']}\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(fmt.Sprintf(base, tc.transforms)), "c.yaml", env(nil))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Parse = %v, want %q", err, tc.want)
			}
		})
	}
	// The same dedup is fine with the file store.
	if _, err := Parse([]byte("state_dir: s\n"+strings.SplitN(fmt.Sprintf(base, "      - dedup: {keys: [id]}\n"), "\n", 2)[1]), "c.yaml", env(nil)); err != nil {
		t.Fatalf("file store: %v", err)
	}
}

func TestStateLimitsMatchTheirSources(t *testing.T) {
	if dynamoStateLimit != ddbstore.MaxOpStateBytes {
		t.Errorf("dynamoStateLimit %d != checkpoint/dynamodb.MaxOpStateBytes %d", dynamoStateLimit, ddbstore.MaxOpStateBytes)
	}
	if defaultStateKeys != transform.DefaultDedupMaxKeys {
		t.Errorf("defaultStateKeys %d != transform.DefaultDedupMaxKeys %d", defaultStateKeys, transform.DefaultDedupMaxKeys)
	}
}

// TestCheckRunnable: configs without a schema load (streamd infer reads
// them to print one) but run only when the schema can be inferred at run
// time.
func TestCheckRunnable(t *testing.T) {
	cases := []struct {
		name, pipeline, want string // want "" for runnable
	}{
		{"json without schema", "    source: {type: file, paths: [a]}\n    sink: {type: parquet, path: out}\n", ""},
		{"csv without schema", "    source: {type: file, paths: [a], format: csv}\n    sink: {type: parquet, path: out}\n",
			"c.yaml:3: pipelines[0].schema: required for csv input"},
		{"transforms without schema", "    source: {type: file, paths: [a]}\n    transforms:\n      - filter: \"x > 1\"\n    sink: {type: parquet, path: out}\n",
			"c.yaml:5: pipelines[0].transforms: need a declared schema"},
		{"dynamodb sink without schema", "    source: {type: file, paths: [a]}\n    sink: {type: dynamodb, table: t, key: [id]}\n",
			"pipelines[0].schema: required with a dynamodb sink"},
		{"opensearch ids without schema", "    source: {type: file, paths: [a]}\n    sink: {type: opensearch, url: \"http://h:9200\", index: i, id: [id]}\n",
			"pipelines[0].sink.id: needs a declared schema"},
		{"change log without schema", "    source: {type: dynamodb_streams, table: t}\n    sink: {type: dynamodb, table: t2, key: [keys]}\n", ""},
		{"csv with schema", "    source: {type: file, paths: [a], format: csv}\n    schema: [{name: id, type: string}]\n    sink: {type: parquet, path: out}\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte("state_dir: s\npipelines:\n  - name: p\n"+tc.pipeline), "c.yaml", env(nil))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = c.CheckRunnable()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckRunnable: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckRunnable = %v, want %q", err, tc.want)
			}
		})
	}
}
