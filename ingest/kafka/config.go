package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"
)

// Start values for a partition that has neither a checkpoint nor a group
// offset.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// SASL mechanisms.
const (
	MechanismPlain      = "PLAIN"
	MechanismScram256   = "SCRAM-SHA-256"
	MechanismScram512   = "SCRAM-SHA-512"
	MechanismMSKIAM     = "AWS_MSK_IAM"
	redactedPlaceholder = "[REDACTED]"
)

// Defaults of Config.
const (
	DefaultClientID         = "streamd"
	DefaultChunkRecords     = 4096
	DefaultPollRecords      = 16384
	DefaultMaxBufferedBytes = 16 << 20
	DefaultSessionTimeout   = 45 * time.Second
	DefaultRebalanceTimeout = 60 * time.Second
	DefaultRevokeTimeout    = 45 * time.Second
	DefaultLostTimeout      = time.Second
	DefaultShutdownTimeout  = 30 * time.Second
	DefaultCommitInterval   = time.Second
	DefaultConnectTimeout   = 30 * time.Second
	DefaultFetchMaxWait     = 500 * time.Millisecond
	defaultCommitTimeout    = 15 * time.Second
	// maxFetchBytes caps one fetch request (compressed bytes): a fetch is
	// decoded whole before any of its records can be polled, so small
	// fetches keep the pipeline fed steadily, and with compression 2MiB
	// already holds ~8MiB of records.
	maxFetchBytes = 2 << 20
)

// Config configures a Kafka / Amazon MSK source. Only Brokers, Group and
// one of Topics / TopicRegex are required.
type Config struct {
	// Brokers are the bootstrap host:port addresses.
	Brokers []string
	// Topics are the topics to consume. Exactly one of Topics and
	// TopicRegex is set.
	Topics []string
	// TopicRegex consumes every topic whose whole name matches this Go
	// regular expression (topics created later join at the next metadata
	// refresh).
	TopicRegex string
	// Group is the consumer group. Instances that share it split the
	// partitions between them (cooperative-sticky).
	Group string
	// Start is where a partition with neither a checkpoint nor a group
	// offset starts: "earliest" (default: nothing is missed, a new group
	// reads the whole retained log) or "latest" (only records produced
	// from now on). It is also where a partition resumes when its resume
	// offset has been deleted by retention.
	Start string
	// ClientID identifies the client to the brokers (default "streamd").
	ClientID string
	// ReadUncommitted also delivers records of open and aborted
	// transactions. The default (false) is read_committed: only committed
	// transactional records, so an aborted producer transaction never
	// reaches the output; lag is then measured to the last stable offset.
	ReadUncommitted bool

	// TLS enables TLS when non-nil (always on for AWS_MSK_IAM).
	TLS *TLSConfig
	// SASL enables SASL authentication when non-nil.
	SASL *SASLConfig

	// SessionTimeout is how long the group waits for a silent member before
	// reassigning its partitions (default 45s; the broker bounds it,
	// usually to [6s, 30m]). Shorter fails over sooner after a crash;
	// longer tolerates longer pauses.
	SessionTimeout time.Duration
	// RebalanceTimeout is how long members may take to rejoin in a
	// rebalance, which includes finishing the batches of revoked
	// partitions (default 60s).
	RebalanceTimeout time.Duration
	// RevokeTimeout bounds how long a revoke waits for the pipeline to
	// finish the revoked partitions' open batches (default 45s; keep it
	// below RebalanceTimeout). A batch not finished by then is abandoned
	// uncommitted and redone by the next owner, which deterministic output
	// names make safe.
	RevokeTimeout time.Duration
	// LostTimeout bounds the wait after partitions were lost (the session
	// expired: another member may already own them) (default 1s).
	LostTimeout time.Duration
	// ShutdownTimeout bounds how long Run, once ctx is done, waits for the
	// pipeline to commit the open batches before it commits the group
	// offsets and leaves the group (default 30s).
	ShutdownTimeout time.Duration
	// CommitInterval coalesces group offset commits (default 1s). Group
	// offsets only feed lag tools and the fallback for partitions without
	// a checkpoint; shorter keeps lag tools closer to the truth at the
	// cost of more commit requests.
	CommitInterval time.Duration
	// ConnectTimeout bounds the first contact with the brokers in Run
	// (default 30s); a bad address, certificate or password fails Run
	// instead of retrying forever.
	ConnectTimeout time.Duration

	// MaxBufferedBytes bounds the bytes read ahead of the pipeline
	// (default 16MiB): an eighth of it for records polled from the client
	// and waiting to be handed on (their values, decompressed), a quarter
	// for at most two fetches (each at most 2MiB as sent by the
	// brokers, so compressed, and a quarter of that per partition) in
	// flight or buffered in the client. Fetching pauses while the queue is
	// full, so memory stays flat whatever the backlog. Larger rides out
	// longer pipeline stalls and raises throughput on high-latency links
	// at the cost of memory. The bound counts values only: each buffered
	// record also costs about 250 bytes of client and pipeline structures,
	// so small records hold about twice the bound.
	MaxBufferedBytes int
	// PollRecords is the most records taken from the client per poll
	// (default 16384); ChunkRecords the most records per chunk handed to
	// the pipeline (default 4096). Larger chunks amortise per-chunk work;
	// smaller ones hold less memory and let rebalances in sooner.
	PollRecords  int
	ChunkRecords int
	// Metadata fills streamd.Record.Meta (key, topic, partition, offset,
	// timestamp, headers) so the decoder can fill _kafka_* columns. It
	// costs one metadata struct per record; leave it off (the default)
	// when the schema declares no metadata column.
	Metadata bool
	// FetchMaxWait is how long a broker may hold a fetch waiting for data
	// (default 500ms).
	FetchMaxWait time.Duration

	// Pipeline labels the metrics (const label "pipeline") so several
	// Kafka pipelines can share one registry.
	Pipeline string
	// Registerer receives the metrics: franz-go's kprom set
	// (streamd_kafka_*) and streamd_kafka_partition_lag_records. Nil
	// disables metrics.
	Registerer prometheus.Registerer
	// Logger receives the source's and the client's logs (default: discard).
	Logger *slog.Logger
	// AWSCredentials, if set, replaces the SDK default credential chain
	// for AWS_MSK_IAM (tests, or a role assumed by the caller).
	AWSCredentials aws.CredentialsProvider
	// LoadAWSConfig loads the AWS config for AWS_MSK_IAM when
	// AWSCredentials is nil (default: config.LoadDefaultConfig, i.e.
	// environment, shared files, ECS task role, IMDS).
	LoadAWSConfig func(ctx context.Context) (aws.Config, error)
}

// TLSConfig configures TLS to the brokers. A zero TLSConfig enables TLS
// verified against the system roots.
type TLSConfig struct {
	// CAFile is a PEM bundle of the CAs that sign the brokers'
	// certificates (default: the system roots).
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key for
	// mutual TLS; both or neither.
	CertFile string
	KeyFile  string
	// ServerName overrides the name verified in the broker certificates.
	ServerName string
	// InsecureSkipVerify disables certificate verification. Never use it
	// outside tests: anyone on the path can read and alter the stream.
	InsecureSkipVerify bool
}

// SASLConfig configures SASL authentication.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM
	// (case-insensitive).
	Mechanism string
	// Username and Password are used by PLAIN and SCRAM; AWS_MSK_IAM takes
	// its credentials from the SDK default chain. The password may come
	// from ${ENV} in the config file; it never appears in logs, metrics
	// or errors.
	Username string
	Password string
}

// String renders the SASL config with the password hidden.
func (s SASLConfig) String() string {
	pw := ""
	if s.Password != "" {
		pw = redactedPlaceholder
	}
	return fmt.Sprintf("{mechanism: %s, username: %s, password: %s}", s.Mechanism, s.Username, pw)
}

// GoString is String, so %#v does not print the password either.
func (s SASLConfig) GoString() string { return s.String() }

// LogValue logs the SASL config with the password hidden.
func (s SASLConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("mechanism", s.Mechanism), slog.String("username", s.Username))
}

// ErrConfig is wrapped by New for an invalid Config.
var ErrConfig = errors.New("invalid kafka source config")

// withDefaults validates c and fills in defaults.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("new kafka source: %w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if len(c.Brokers) == 0 {
		return bad("no brokers")
	}
	for _, b := range c.Brokers {
		if b == "" || strings.ContainsAny(b, " /") {
			return bad("broker %q is not host:port", b)
		}
	}
	if c.Group == "" {
		return bad("no group")
	}
	switch {
	case len(c.Topics) == 0 && c.TopicRegex == "":
		return bad("no topics and no topic_regex")
	case len(c.Topics) > 0 && c.TopicRegex != "":
		return bad("both topics and topic_regex are set; use one")
	case c.TopicRegex != "":
		if _, err := regexp.Compile(c.TopicRegex); err != nil {
			return bad("topic_regex %q: %v", c.TopicRegex, err)
		}
	}
	for _, t := range c.Topics {
		if t == "" || strings.Contains(t, "/") {
			return bad("topic %q is not a valid topic name", t)
		}
	}
	switch strings.ToLower(c.Start) {
	case "", StartEarliest:
		c.Start = StartEarliest
	case StartLatest:
		c.Start = StartLatest
	default:
		return bad("start %q (want earliest or latest)", c.Start)
	}
	if c.SASL != nil {
		s := *c.SASL
		s.Mechanism = strings.ToUpper(s.Mechanism)
		switch s.Mechanism {
		case MechanismPlain, MechanismScram256, MechanismScram512:
			if s.Username == "" || s.Password == "" {
				return bad("sasl %s needs username and password", s.Mechanism)
			}
		case MechanismMSKIAM:
			if s.Username != "" || s.Password != "" {
				return bad("sasl AWS_MSK_IAM takes credentials from the AWS SDK chain, not username/password")
			}
			if c.TLS == nil {
				c.TLS = &TLSConfig{}
			}
		default:
			return bad("sasl mechanism %q (want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM)", c.SASL.Mechanism)
		}
		c.SASL = &s
	}
	if c.TLS != nil {
		t := *c.TLS
		if (t.CertFile == "") != (t.KeyFile == "") {
			return bad("tls cert_file and key_file go together")
		}
		c.TLS = &t
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"session_timeout", &c.SessionTimeout, DefaultSessionTimeout},
		{"rebalance_timeout", &c.RebalanceTimeout, DefaultRebalanceTimeout},
		{"revoke_timeout", &c.RevokeTimeout, DefaultRevokeTimeout},
		{"lost_timeout", &c.LostTimeout, DefaultLostTimeout},
		{"shutdown_timeout", &c.ShutdownTimeout, DefaultShutdownTimeout},
		{"commit_interval", &c.CommitInterval, DefaultCommitInterval},
		{"connect_timeout", &c.ConnectTimeout, DefaultConnectTimeout},
		{"fetch_max_wait", &c.FetchMaxWait, DefaultFetchMaxWait},
	} {
		if *d.v < 0 {
			return bad("%s %v is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxBufferedBytes < 0 || c.PollRecords < 0 || c.ChunkRecords < 0 {
		return bad("max_buffered_bytes, poll_records and chunk_records must not be negative")
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if c.MaxBufferedBytes < 2<<10 {
		return bad("max_buffered_bytes %d is below 2KiB", c.MaxBufferedBytes)
	}
	if c.PollRecords == 0 {
		c.PollRecords = DefaultPollRecords
	}
	if c.ChunkRecords == 0 {
		c.ChunkRecords = DefaultChunkRecords
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
