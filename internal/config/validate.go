package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/streamd/streamd"
)

// Defaults applied by SetDefaults (and so by Parse and Load).
const (
	DefaultStateDir        = "./var/state"
	DefaultHTTPListen      = "127.0.0.1:9464"
	DefaultShutdownTimeout = Duration(25 * time.Second)
	DefaultMemoryLimit     = ByteSize(512 << 20)
	DefaultMaxRecords      = 100000
	DefaultMaxBytes        = ByteSize(64 << 20)
	DefaultMaxAge          = Duration(30 * time.Second)
	DefaultFormat          = "jsonl"
	DefaultMaxRecordSize   = ByteSize(1 << 20)
	DefaultCompression     = "snappy"
	DefaultDedupTTL        = Duration(24 * time.Hour)
	DefaultQualityAction   = "dead_letter"
)

// The source, sink and checkpoint store types.
const (
	SourceFile            = "file"
	SourceKafka           = "kafka"
	SourceKinesis         = "kinesis"
	SourceDynamoDBStreams = "dynamodb_streams"
	SourceHTTP            = "http"

	SinkParquet    = "parquet"
	SinkDynamoDB   = "dynamodb"
	SinkOpenSearch = "opensearch"

	StoreFile     = "file"
	StoreDynamoDB = "dynamodb"
)

// SetDefaults fills every unset field that has a default: state_dir,
// http.listen, shutdown_timeout, memory_limit and per pipeline the source
// format, max_record_size and start, the window limits, the parquet
// compression, the dedup ttl and the quality action.
func (c *Config) SetDefaults() {
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.HTTP != nil && c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultHTTPListen
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	for i := range c.Pipelines {
		p := &c.Pipelines[i]
		s := &p.Source
		if s.Format == "" && s.Type != SourceDynamoDBStreams {
			s.Format = DefaultFormat
		}
		if s.MaxRecordSize == 0 {
			s.MaxRecordSize = DefaultMaxRecordSize
			if s.Type == SourceHTTP {
				s.MaxRecordSize = 1000 << 10 // Firehose's record limit
			}
		}
		if s.Start == "" {
			switch s.Type {
			case SourceKafka:
				s.Start = "earliest"
			case SourceKinesis, SourceDynamoDBStreams:
				s.Start = "trim_horizon"
			}
		}
		if p.Window.MaxRecords == 0 {
			p.Window.MaxRecords = DefaultMaxRecords
		}
		if p.Window.MaxBytes == 0 {
			p.Window.MaxBytes = DefaultMaxBytes
		}
		if p.Window.MaxAge == 0 {
			p.Window.MaxAge = DefaultMaxAge
		}
		if p.Sink.Type == SinkParquet && p.Sink.Compression == "" {
			p.Sink.Compression = DefaultCompression
		}
		for _, t := range p.Transforms {
			if t.Dedup != nil && t.Dedup.TTL == 0 {
				t.Dedup.TTL = DefaultDedupTTL
			}
			if t.Quality != nil && t.Quality.Action == "" {
				t.Quality.Action = DefaultQualityAction
			}
		}
	}
}

// validator collects problems with their key paths and lines.
type validator struct {
	src  *origin
	errs []error
}

func (v *validator) fail(path string, sentinel error, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	var file string
	if v.src != nil {
		file = v.src.name
		msg = v.src.scrubString(msg)
	}
	v.errs = append(v.errs, &Error{File: file, Line: v.src.line(path), Path: path, Msg: msg, Err: sentinel})
}

func (v *validator) required(path, what string) {
	v.fail(path, ErrMissingKey, "required %s", what)
}

func (v *validator) oneOf(path, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.fail(path, ErrInvalidValue, "invalid value %q (want %s)", val, strings.Join(allowed, ", "))
}

var pipelineName = regexp.MustCompile(`^[a-z0-9_-]+$`)

// Validate checks the config against the contract and returns every
// problem joined with errors.Join (nil when there is none). Each problem is
// an *Error naming the key path and, for a parsed config, the file and
// line. Validate does not apply defaults; Parse and Load call SetDefaults
// first.
func (c *Config) Validate() error {
	v := &validator{src: c.src}
	if c.StateDir == "" && (c.Checkpoint == nil || c.Checkpoint.Store == StoreFile) {
		v.required("state_dir", "(the embedded checkpoint store's directory)")
	}
	if cp := c.Checkpoint; cp != nil {
		switch cp.Store {
		case "":
			v.required("checkpoint.store", "(file or dynamodb)")
		case StoreFile:
			if cp.Table != "" {
				v.fail("checkpoint.table", ErrInvalidValue, "applies to the dynamodb store only")
			}
		case StoreDynamoDB:
			if cp.Table == "" {
				v.required("checkpoint.table", "for the dynamodb store")
			}
		default:
			v.oneOf("checkpoint.store", cp.Store, StoreFile, StoreDynamoDB)
		}
	}
	if c.HTTP != nil {
		if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil || !validPort(port) {
			v.fail("http.listen", ErrInvalidValue, "invalid address %q (want host:port such as 127.0.0.1:9464 or :9464)", c.HTTP.Listen)
		}
	}
	if c.ShutdownTimeout <= 0 {
		v.fail("shutdown_timeout", ErrInvalidValue, "must be positive, got %s", c.ShutdownTimeout)
	}
	if c.MemoryLimit < 0 {
		v.fail("memory_limit", ErrInvalidValue, "must not be negative, got %s", c.MemoryLimit)
	}
	if len(c.Pipelines) == 0 {
		v.fail("pipelines", ErrMissingKey, "at least one pipeline is required")
	}
	names := map[string]int{}
	for i := range c.Pipelines {
		p := &c.Pipelines[i]
		pp := "pipelines[" + strconv.Itoa(i) + "]"
		switch {
		case p.Name == "":
			v.required(pp+".name", "(a name matching [a-z0-9_-]+)")
		case !pipelineName.MatchString(p.Name):
			v.fail(pp+".name", ErrInvalidValue, "invalid name %q (want lower-case letters, digits, _ and -)", p.Name)
		default:
			if first, dup := names[p.Name]; dup {
				v.fail(pp+".name", ErrInvalidValue, "duplicate pipeline name %q (also pipelines[%d])", p.Name, first)
			} else {
				names[p.Name] = i
			}
		}
		v.pipeline(pp, p, c.MemoryLimit)
		if c.Checkpoint != nil && c.Checkpoint.Store == StoreDynamoDB {
			v.stateFitsDynamoDB(pp+".transforms", p.Transforms)
		}
	}
	if len(v.errs) == 0 {
		return nil
	}
	return errors.Join(v.errs...)
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

func (v *validator) pipeline(pp string, p *Pipeline, memoryLimit ByteSize) {
	v.source(pp+".source", &p.Source)
	cols := v.schema(pp+".schema", p.Schema)
	v.transforms(pp+".transforms", p.Transforms, cols)
	w := p.Window
	if w.MaxRecords <= 0 {
		v.fail(pp+".window.max_records", ErrInvalidValue, "must be positive, got %d", w.MaxRecords)
	}
	if w.MaxBytes <= 0 {
		v.fail(pp+".window.max_bytes", ErrInvalidValue, "must be positive, got %s", w.MaxBytes)
	} else if memoryLimit > 0 && w.MaxBytes > memoryLimit {
		v.fail(pp+".window.max_bytes", ErrInvalidValue, "%s exceeds memory_limit %s", w.MaxBytes, memoryLimit)
	}
	if w.MaxAge <= 0 {
		v.fail(pp+".window.max_age", ErrInvalidValue, "must be positive, got %s", w.MaxAge)
	}
	v.sink(pp+".sink", &p.Sink, cols)
	if p.DeadLetter.Path != "" {
		v.location(pp+".dead_letter.path", p.DeadLetter.Path)
	}
}

// InferredSchema reports whether the pipeline's columns are inferred at
// run time: no schema is declared and the source is not a DynamoDB change
// log (which has fixed default columns).
func (p *Pipeline) InferredSchema() bool {
	return len(p.Schema) == 0 && p.Source.Type != "dynamodb_streams"
}

// CheckRunnable checks what running the config needs beyond Validate
// (which `streamd infer` also uses, on configs that have no schema yet): a
// pipeline without a schema must be one whose schema can be inferred at
// run time — JSON input, no transforms, no sink that needs typed key
// columns from the first batch on. Problems are *Error values naming the
// key path and line, joined.
func (c *Config) CheckRunnable() error {
	v := &validator{src: c.src}
	for i := range c.Pipelines {
		p := &c.Pipelines[i]
		pp := "pipelines[" + strconv.Itoa(i) + "]"
		if !p.InferredSchema() {
			continue
		}
		if strings.EqualFold(p.Source.Format, "csv") {
			v.fail(pp+".schema", ErrMissingKey, "required for csv input (a schema is inferred at run time from JSON records only; `streamd infer` prints one for a CSV sample)")
		}
		if len(p.Transforms) > 0 {
			v.fail(pp+".transforms", ErrInvalidValue, "need a declared schema: with none, columns are inferred at run time and transforms could name columns that do not exist yet (`streamd infer` prints a schema to start from)")
		}
		// Key columns must exist, with their DynamoDB type, from the
		// first batch on; an inferred schema promises neither.
		if p.Sink.Type == "dynamodb" {
			v.fail(pp+".schema", ErrMissingKey, "required with a dynamodb sink: its key columns need declared types from the first batch on (`streamd infer` prints a schema)")
		}
		if p.Sink.Type == "opensearch" && len(p.Sink.ID) > 0 {
			v.fail(pp+".sink.id", ErrInvalidValue, "needs a declared schema: the id columns must exist from the first batch on")
		}
	}
	if len(v.errs) == 0 {
		return nil
	}
	return errors.Join(v.errs...)
}

// Operator state that fits a DynamoDB checkpoint item: the limit is
// checkpoint/dynamodb.MaxOpStateBytes (a test keeps them equal), a
// remembered key costs about keyStateBytes, and max_keys defaults to
// defaultStateKeys (transform.DefaultDedupMaxKeys).
const (
	dynamoStateLimit = 340 << 10
	keyStateBytes    = 24
	defaultStateKeys = 1_000_000
)

// stateFitsDynamoDB checks that the keyed state of dedup and IsUnique steps
// fits a DynamoDB checkpoint item even when max_keys are all remembered:
// they are, in a long-running stream, and a commit that does not fit
// fails every time.
func (v *validator) stateFitsDynamoDB(tp string, ts []Transform) {
	maxKeys := dynamoStateLimit / keyStateBytes
	check := func(key string, n int, what string) {
		if n == 0 {
			n = defaultStateKeys
		}
		if n > maxKeys {
			v.fail(key, ErrInvalidValue, "%s remembers up to %d keys (~%d KiB of state per lane, saved with every commit), more than a DynamoDB checkpoint item holds: set max_keys to at most %d (keys beyond it are evicted oldest first) or use the file checkpoint store (state_dir)",
				what, n, n*keyStateBytes>>10, maxKeys)
		}
	}
	for i, t := range ts {
		ip := tp + "[" + strconv.Itoa(i) + "]"
		if d := t.Dedup; d != nil {
			check(ip+".dedup.max_keys", d.MaxKeys, "dedup")
		}
		if q := t.Quality; q != nil {
			for _, r := range q.Rules {
				if strings.Contains(r, "IsUnique") {
					check(ip+".quality.max_keys", q.MaxKeys, "IsUnique")
					break
				}
			}
		}
	}
}

// notFor reports keys set that belong to other types.
func (v *validator) notFor(base, typ string, set map[string]bool) {
	for _, k := range sortedKeys(set) {
		if set[k] {
			v.fail(base+"."+k, ErrInvalidValue, "does not apply to a %s %s", typ, base[strings.LastIndexByte(base, '.')+1:])
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Small maps: insertion sort keeps messages in a stable order.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// sourceKeys lists, for every source key that only some source types take,
// the types that take it.
var sourceKeys = map[string][]string{
	"paths":              {SourceFile},
	"follow":             {SourceFile},
	"poll_interval":      {SourceFile, SourceDynamoDBStreams},
	"format":             {SourceFile, SourceKafka, SourceKinesis, SourceHTTP},
	"brokers":            {SourceKafka},
	"topics":             {SourceKafka},
	"topic_regex":        {SourceKafka},
	"group":              {SourceKafka},
	"client_id":          {SourceKafka},
	"tls":                {SourceKafka},
	"sasl":               {SourceKafka},
	"session_timeout":    {SourceKafka},
	"rebalance_timeout":  {SourceKafka},
	"commit_interval":    {SourceKafka},
	"max_buffered_bytes": {SourceKafka},
	"read_uncommitted":   {SourceKafka},
	"start":              {SourceKafka, SourceKinesis, SourceDynamoDBStreams},
	"stream":             {SourceKinesis},
	"timestamp":          {SourceKinesis},
	"enhanced_fan_out":   {SourceKinesis},
	"table":              {SourceDynamoDBStreams},
	"stream_arn":         {SourceDynamoDBStreams},
	"idle_interval":      {SourceDynamoDBStreams},
	"refresh_interval":   {SourceDynamoDBStreams},
	"listen":             {SourceHTTP},
	"auth_token":         {SourceHTTP},
	"wal_max_bytes":      {SourceHTTP},
	"wal_segment_bytes":  {SourceHTTP},
	"max_body_bytes":     {SourceHTTP},
}

func (v *validator) source(sp string, s *Source) {
	switch s.Type {
	case "":
		v.required(sp+".type", "(file, kafka, kinesis or dynamodb_streams)")
		return
	case SourceFile:
		if len(s.Paths) == 0 {
			v.required(sp+".paths", "for a file source (globs, local or s3://)")
		}
		for i, g := range s.Paths {
			gp := sp + ".paths[" + strconv.Itoa(i) + "]"
			if v.location(gp, g) {
				if _, err := path.Match(g, ""); err != nil {
					v.fail(gp, ErrInvalidValue, "invalid glob %q: %v", g, err)
				}
			}
		}
		if s.Follow {
			for i, g := range s.Paths {
				if strings.HasPrefix(g, "s3://") || strings.HasSuffix(g, ".gz") || strings.ContainsAny(g, `*?[\`) {
					v.fail(sp+".paths["+strconv.Itoa(i)+"]", ErrInvalidValue, "follow takes one literal local file per path (no glob, s3:// or .gz), got %q", g)
				}
			}
			if s.Format == "csv" {
				v.fail(sp+".format", ErrInvalidValue, "follow reads jsonl only")
			}
		} else if s.PollInterval != 0 {
			v.fail(sp+".poll_interval", ErrInvalidValue, "applies to follow: true only")
		}
	case SourceHTTP:
		if _, port, err := net.SplitHostPort(s.Listen); err != nil || !validPort(port) {
			v.fail(sp+".listen", ErrInvalidValue, "invalid address %q (want host:port such as 127.0.0.1:4319)", s.Listen)
		}
		if s.Format != "" && s.Format != "jsonl" {
			v.fail(sp+".format", ErrInvalidValue, "an http source takes JSON records (jsonl), not %q", s.Format)
		}
		if s.WALMaxBytes < 0 || s.WALSegmentBytes < 0 || s.MaxBodyBytes < 0 {
			v.fail(sp, ErrInvalidValue, "wal_max_bytes, wal_segment_bytes and max_body_bytes must not be negative")
		}
	case SourceKafka:
		if len(s.Brokers) == 0 {
			v.required(sp+".brokers", "for a kafka source (host:port list)")
		}
		for i, b := range s.Brokers {
			if _, port, err := net.SplitHostPort(b); err != nil || port == "" || !validPort(port) {
				v.fail(sp+".brokers["+strconv.Itoa(i)+"]", ErrInvalidValue, "invalid broker %q (want host:port)", b)
			}
		}
		switch {
		case len(s.Topics) == 0 && s.TopicRegex == "":
			v.required(sp+".topics", "(or topic_regex) for a kafka source")
		case len(s.Topics) > 0 && s.TopicRegex != "":
			v.fail(sp+".topic_regex", ErrInvalidValue, "use either topics or topic_regex, not both")
		case s.TopicRegex != "":
			if _, err := regexp.Compile(s.TopicRegex); err != nil {
				v.fail(sp+".topic_regex", ErrInvalidValue, "invalid regular expression: %v", err)
			}
		}
		for i, t := range s.Topics {
			if t == "" {
				v.required(sp+".topics["+strconv.Itoa(i)+"]", "topic name")
			}
		}
		if s.Group == "" {
			v.required(sp+".group", "for a kafka source (the consumer group)")
		}
		v.oneOf(sp+".start", s.Start, "earliest", "latest")
		if a := s.SASL; a != nil {
			v.oneOf(sp+".sasl.mechanism", a.Mechanism, "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "AWS_MSK_IAM")
			if a.Mechanism != "AWS_MSK_IAM" && a.Username == "" {
				v.required(sp+".sasl.username", "for SASL "+a.Mechanism)
			}
		}
	case SourceKinesis:
		if s.Stream == "" {
			v.required(sp+".stream", "for a kinesis source")
		}
		v.oneOf(sp+".start", s.Start, "trim_horizon", "latest", "at_timestamp")
		if e := s.EnhancedFanOut; e != nil && (e.ConsumerName == "") == (e.ConsumerARN == "") {
			v.fail(sp+".enhanced_fan_out", ErrInvalidValue, "set exactly one of consumer_name and consumer_arn")
		}
		if s.Start == "at_timestamp" {
			if _, err := time.Parse(time.RFC3339, s.Timestamp); err != nil {
				v.fail(sp+".timestamp", ErrInvalidValue, "start at_timestamp needs an RFC 3339 timestamp, got %q", s.Timestamp)
			}
		}
	case SourceDynamoDBStreams:
		if s.Table == "" && s.StreamARN == "" {
			v.required(sp+".table", "(or stream_arn) for a dynamodb_streams source")
		}
		v.oneOf(sp+".start", s.Start, "trim_horizon", "latest")
	default:
		v.oneOf(sp+".type", s.Type, SourceFile, SourceKafka, SourceKinesis, SourceDynamoDBStreams, SourceHTTP)
		return
	}
	foreign := map[string]bool{}
	for key, set := range setYAMLKeys(s) {
		if types, ok := sourceKeys[key]; ok && set && !slices.Contains(types, s.Type) {
			foreign[key] = true
		}
	}
	v.notFor(sp, s.Type, foreign)
	if s.Format != "" {
		v.oneOf(sp+".format", s.Format, "jsonl", "csv")
	}
	if s.MaxRecordSize <= 0 {
		v.fail(sp+".max_record_size", ErrInvalidValue, "must be positive, got %s", s.MaxRecordSize)
	}
}

// setYAMLKeys reports, per yaml key of the struct v points to, whether the
// field holds a non-zero value.
func setYAMLKeys(v any) map[string]bool {
	rv := reflect.ValueOf(v).Elem()
	out := map[string]bool{}
	for i := range rv.NumField() {
		f := rv.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		if key := yamlKey(f); key != "" && key != "-" {
			out[key] = !rv.Field(i).IsZero()
		}
	}
	return out
}

// location checks a local path or s3://bucket/prefix; it reports whether
// the value was acceptable.
func (v *validator) location(p, loc string) bool {
	if loc == "" {
		v.required(p, "path (a local path or s3://bucket/prefix)")
		return false
	}
	scheme, rest, ok := strings.Cut(loc, "://")
	if !ok {
		return true
	}
	if strings.ToLower(scheme) != "s3" {
		v.fail(p, ErrInvalidValue, "unsupported scheme %q in %q (want a local path or s3://bucket/prefix)", scheme, loc)
		return false
	}
	bucket, _, _ := strings.Cut(rest, "/")
	if bucket == "" {
		v.fail(p, ErrInvalidValue, "no bucket in %q (want s3://bucket/prefix)", loc)
		return false
	}
	return true
}

// schema checks the columns and returns their names (nil when the schema
// is to be inferred).
func (v *validator) schema(sp string, cols []Column) map[string]bool {
	if len(cols) == 0 {
		return nil
	}
	names := make(map[string]bool, len(cols))
	first := map[string]int{}
	for i, c := range cols {
		cp := sp + "[" + strconv.Itoa(i) + "]"
		if c.Name == "" {
			v.required(cp+".name", "column name")
		} else if j, dup := first[c.Name]; dup {
			v.fail(cp+".name", ErrInvalidValue, "duplicate column %q (also %s[%d])", c.Name, sp, j)
		} else {
			first[c.Name] = i
			names[c.Name] = true
		}
		if c.Type == "" {
			v.required(cp+".type", fmt.Sprintf("type of column %q", c.Name))
		} else if _, err := streamd.ParseType(c.Type); err != nil {
			v.fail(cp+".type", ErrInvalidValue, "column %q: %v", c.Name, err)
		}
		if c.Expr != "" && c.From != "" {
			v.fail(cp+".from", ErrInvalidValue, "column %q has both expr and from; a computed column reads no input field", c.Name)
		}
	}
	return names
}

func (v *validator) columns(p string, list []string, cols map[string]bool, what string) {
	seen := map[string]bool{}
	for i, name := range list {
		ip := p + "[" + strconv.Itoa(i) + "]"
		switch {
		case name == "":
			v.required(ip, "column name")
		case seen[name]:
			v.fail(ip, ErrInvalidValue, "column %q listed twice", name)
		case cols != nil && !cols[name]:
			v.fail(ip, ErrInvalidValue, "%s column %q is not in the schema", what, name)
		}
		seen[name] = true
	}
}

func (v *validator) transforms(tp string, ts []Transform, cols map[string]bool) {
	for i, t := range ts {
		ip := tp + "[" + strconv.Itoa(i) + "]"
		set := t.keys()
		if len(set) != 1 {
			got := "none"
			if len(set) > 0 {
				got = strings.Join(set, ", ")
			}
			v.fail(ip, ErrInvalidValue, "a transform needs exactly one key of %s (got %s)", strings.Join(transformKeys, ", "), got)
			continue
		}
		// Columns are checked against the schema each step sees when the
		// transform program is compiled (streamd validate does that): after
		// rename or select it is not the declared one.
		if d := t.Dedup; d != nil {
			if len(d.Keys) == 0 {
				v.required(ip+".dedup.keys", "for dedup")
			}
			if d.TTL < 0 {
				v.fail(ip+".dedup.ttl", ErrInvalidValue, "must not be negative, got %s", d.TTL)
			}
		}
		if q := t.Quality; q != nil {
			if len(q.Rules) == 0 {
				v.required(ip+".quality.rules", "for quality")
			}
			for j, r := range q.Rules {
				if strings.TrimSpace(r) == "" {
					v.required(ip+".quality.rules["+strconv.Itoa(j)+"]", "rule")
				}
			}
			v.oneOf(ip+".quality.action", q.Action, "dead_letter", "drop", "warn", "flag")
		}
		if o := t.Outliers; o != nil {
			if o.Column == "" {
				v.required(ip+".outliers.column", "for outliers")
			}
			if o.Method != "" {
				v.oneOf(ip+".outliers.method", o.Method, "bounds", "iqr", "zscore")
			}
			if o.Action != "" {
				v.oneOf(ip+".outliers.action", o.Action, "clip", "drop", "dead_letter", "flag")
			}
			if o.Method == "bounds" && o.Min == nil && o.Max == nil {
				v.required(ip+".outliers.min", "or max for method bounds")
			}
		}
		if r := t.Replace; r != nil {
			if r.Column == "" {
				v.required(ip+".replace.column", "for replace")
			}
			if r.Pattern == "" {
				v.required(ip+".replace.pattern", "for replace")
			}
		}
		if p := t.ParseTime; p != nil {
			if p.Column == "" {
				v.required(ip+".parse_time.column", "for parse_time")
			}
			if len(p.Formats) == 0 {
				v.required(ip+".parse_time.formats", "for parse_time")
			}
			if p.Type != "" {
				v.oneOf(ip+".parse_time.type", p.Type, "timestamp", "date")
			}
		}
	}
}

// transformKeys are the keys of a transforms entry, in documentation order.
var transformKeys = []string{"filter", "dedup", "quality", "outliers", "trim", "lower", "upper", "null_if_empty",
	"default", "replace", "rename", "drop", "select", "parse_time"}

// keys returns which of transformKeys are set on t.
func (t Transform) keys() []string {
	set := []bool{t.Filter != "", t.Dedup != nil, t.Quality != nil, t.Outliers != nil, len(t.Trim) > 0, len(t.Lower) > 0,
		len(t.Upper) > 0, len(t.NullIfEmpty) > 0, len(t.Default) > 0, t.Replace != nil, len(t.Rename) > 0, len(t.Drop) > 0,
		len(t.Select) > 0, t.ParseTime != nil}
	var out []string
	for i, ok := range set {
		if ok {
			out = append(out, transformKeys[i])
		}
	}
	return out
}

func (v *validator) sink(sp string, s *Sink, cols map[string]bool) {
	foreign := map[string]bool{}
	parquetSet := func() {
		foreign["path"], foreign["partition_by"] = s.Path != "", len(s.PartitionBy) > 0
		foreign["compression"], foreign["row_group_size"] = s.Compression != "", s.RowGroupSize != 0
		foreign["target_file_size"], foreign["row_group_bytes"] = s.TargetFileSize != 0, s.RowGroupBytes != 0
		foreign["if_none_match"], foreign["sse"] = s.IfNoneMatch, s.SSE != nil
	}
	switch s.Type {
	case "":
		v.required(sp+".type", "(parquet, dynamodb or opensearch)")
		return
	case SinkParquet:
		if s.Path == "" {
			v.required(sp+".path", "for a parquet sink (./dir or s3://bucket/prefix)")
		} else {
			v.location(sp+".path", s.Path)
		}
		v.columns(sp+".partition_by", s.PartitionBy, cols, "partition")
		if s.Compression != "" {
			v.oneOf(sp+".compression", s.Compression, "snappy", "zstd", "none")
		}
		if s.RowGroupSize < 0 {
			v.fail(sp+".row_group_size", ErrInvalidValue, "must not be negative, got %d", s.RowGroupSize)
		}
		if (s.SSE != nil || s.IfNoneMatch) && !strings.HasPrefix(s.Path, "s3://") {
			v.fail(sp+".path", ErrInvalidValue, "sse and if_none_match need an s3:// path")
		}
		if s.SSE != nil {
			if s.SSE.Type != "" {
				v.oneOf(sp+".sse.type", s.SSE.Type, "none", "s3", "kms")
			}
			if (s.SSE.KMSKeyID != "" || s.SSE.BucketKey) && s.SSE.Type != "kms" {
				v.fail(sp+".sse", ErrInvalidValue, "kms_key_id and bucket_key need type kms")
			}
		}
		foreign["table"], foreign["key"] = s.Table != "", len(s.Key) > 0
		foreign["url"], foreign["index"], foreign["id"] = s.URL != "", s.Index != "", len(s.ID) > 0
		foreign["username"], foreign["password"] = s.Username != "", s.Password != ""
		foreign["region"], foreign["concurrency"], foreign["retry_timeout"] = s.Region != "", s.Concurrency != 0, s.RetryTimeout != 0
		foreign["action"], foreign["bulk_bytes"] = s.Action != "", s.BulkBytes != 0
		foreign["gzip"], foreign["aws_sigv4"] = s.Gzip != nil, s.AWSSigV4 != nil
	case SinkDynamoDB:
		if s.Table == "" {
			v.required(sp+".table", "for a dynamodb sink")
		}
		switch {
		case len(s.Key) == 0:
			v.required(sp+".key", "for a dynamodb sink (partition key column, optional sort key column)")
		case len(s.Key) > 2:
			v.fail(sp+".key", ErrInvalidValue, "at most two columns (partition key, sort key), got %d", len(s.Key))
		}
		v.columns(sp+".key", s.Key, cols, "key")
		parquetSet()
		foreign["url"], foreign["index"], foreign["id"] = s.URL != "", s.Index != "", len(s.ID) > 0
		foreign["username"], foreign["password"] = s.Username != "", s.Password != ""
		foreign["action"], foreign["bulk_bytes"] = s.Action != "", s.BulkBytes != 0
		foreign["gzip"], foreign["aws_sigv4"] = s.Gzip != nil, s.AWSSigV4 != nil
	case SinkOpenSearch:
		if s.URL == "" {
			v.required(sp+".url", "for an opensearch sink (http://host:9200)")
		} else if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.fail(sp+".url", ErrInvalidValue, "invalid URL %q (want http(s)://host:port)", redactURL(s.URL))
		}
		if s.Index == "" {
			v.required(sp+".index", "for an opensearch sink")
		} else {
			// Literal parts must be lower case; {column} or {column:layout}
			// parts name a column.
			lit, refs := splitTemplate(s.Index)
			if strings.ToLower(lit) != lit {
				v.fail(sp+".index", ErrInvalidValue, "index %q must be lower case outside {column} parts", s.Index)
			}
			v.columns(sp+".index", refs, cols, "index template")
		}
		v.columns(sp+".id", s.ID, cols, "id")
		if s.Password != "" && s.Username == "" {
			v.required(sp+".username", "when a password is set")
		}
		if s.AWSSigV4 != nil {
			if s.Username != "" {
				v.fail(sp+".aws_sigv4", ErrInvalidValue, "use either aws_sigv4 or username/password, not both")
			}
			if s.AWSSigV4.Service != "" {
				v.oneOf(sp+".aws_sigv4.service", s.AWSSigV4.Service, "es", "aoss")
			}
		}
		if s.Action != "" {
			v.oneOf(sp+".action", s.Action, "index", "create")
		}
		parquetSet()
		foreign["table"], foreign["key"] = s.Table != "", len(s.Key) > 0
	default:
		v.oneOf(sp+".type", s.Type, SinkParquet, SinkDynamoDB, SinkOpenSearch)
		return
	}
	v.notFor(sp, s.Type, foreign)
}

// splitTemplate splits an index template such as "sales-{region}-{day:2006.01}"
// into its literal text and the column names it references.
func splitTemplate(t string) (literal string, cols []string) {
	var lit strings.Builder
	for {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			lit.WriteString(t)
			return lit.String(), cols
		}
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			lit.WriteString(t)
			return lit.String(), cols
		}
		lit.WriteString(t[:i])
		name, _, _ := strings.Cut(t[i+1:i+j], ":")
		cols = append(cols, name)
		t = t[i+j+1:]
	}
}
