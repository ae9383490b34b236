package ddbstreams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/checkpoint/lease"
)

// StreamsAPI is the part of the DynamoDB Streams client the source uses;
// *dynamodbstreams.Client implements it.
type StreamsAPI interface {
	ListStreams(ctx context.Context, in *dynamodbstreams.ListStreamsInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.ListStreamsOutput, error)
	DescribeStream(ctx context.Context, in *dynamodbstreams.DescribeStreamInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(ctx context.Context, in *dynamodbstreams.GetShardIteratorInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

// TableAPI is the part of the DynamoDB client the source uses to find a
// table's stream; *dynamodb.Client implements it.
type TableAPI interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// Start positions for shards without a checkpoint.
const (
	StartTrimHorizon = "trim_horizon"
	StartLatest      = "latest"
)

// Config configures a Source.
type Config struct {
	// Table is the table whose stream is read. The source follows the
	// table's streams: when the stream is disabled and enabled again (a new
	// stream ARN), the old stream is read to its end, then the new one, and
	// the gap between them is reported. Either Table or StreamARN is
	// required.
	Table string
	// StreamARN, when set, reads that one stream only (no DescribeTable
	// call, no following of a re-enabled stream). Table is then only used
	// in metric labels (default: the table named in the ARN).
	StreamARN string
	// Start is where a shard without a checkpoint starts when nothing was
	// read before it: trim_horizon (default: the last 24 h the stream
	// retains) or latest (only changes made from now on). A shard whose
	// parent was read, or that appeared while the source ran, always starts
	// at its trim horizon, so a rollover loses nothing.
	Start string
	// Leases shares the shards with other processes (lease.Table with the
	// DynamoDB checkpoint store). Default: lease.NewLocal(), this process
	// reads every shard.
	Leases lease.Manager
	// RefreshInterval is how often the table's streams and their shards
	// are described to notice rollovers and a re-enabled stream (default
	// 10s; also right after a shard finished). DynamoDB allows 10
	// DescribeStream calls per second per account: keep it well above
	// (number of sources / 10) seconds.
	RefreshInterval time.Duration
	// PollInterval is the least time between two GetRecords of one shard
	// (default 250ms). DynamoDB Streams serves about 5 reads per second
	// per shard, shared by every reader of the stream (Lambda triggers,
	// Global Tables count too): raise it when several applications read.
	PollInterval time.Duration
	// IdleInterval is the pause after a GetRecords that returned nothing,
	// that is, when the shard is caught up (default 1s): lower latency for
	// more calls.
	IdleInterval time.Duration
	// MaxRecords is GetRecords' Limit (default 1000, the maximum).
	MaxRecords int32
	// MaxBackoff caps the exponential backoff (with jitter) after a
	// throttled or failed call (default 10s; it starts at PollInterval).
	MaxBackoff time.Duration
	// Registerer receives the source's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives shard changes, stream switches and losses; nil
	// discards them.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.Table == "" && c.StreamARN == "" {
		return errors.New("table or stream_arn is required")
	}
	switch c.Start {
	case "":
		c.Start = StartTrimHorizon
	case StartTrimHorizon, StartLatest:
	default:
		return fmt.Errorf("start %q is not trim_horizon or latest", c.Start)
	}
	if c.Table == "" {
		c.Table = tableOfARN(c.StreamARN)
	}
	if c.Leases == nil {
		c.Leases = lease.NewLocal()
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = 10 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 250 * time.Millisecond
	}
	if c.IdleInterval <= 0 {
		c.IdleInterval = time.Second
	}
	if c.MaxRecords <= 0 || c.MaxRecords > 1000 {
		c.MaxRecords = 1000
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	return nil
}

// LoadClients returns DynamoDB and DynamoDB Streams clients from the AWS
// SDK's default configuration: AWS_REGION, the credential chain (ECS task
// role, profiles, environment), AWS_CA_BUNDLE, and the endpoint variables
// AWS_ENDPOINT_URL_DYNAMODB (DescribeTable) and
// AWS_ENDPOINT_URL_DYNAMODB_STREAMS (the stream), each falling back to
// AWS_ENDPOINT_URL. DynamoDB Local serves both APIs on one port: set both
// variables to it.
func LoadClients(ctx context.Context) (*dynamodb.Client, *dynamodbstreams.Client, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("load aws config: %w", err)
	}
	return dynamodb.NewFromConfig(cfg), dynamodbstreams.NewFromConfig(cfg), nil
}
