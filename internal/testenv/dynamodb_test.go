package testenv_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/streamd/streamd/internal/testenv"
)

func TestDynamoDBLocal(t *testing.T) {
	peer := testenv.DynamoDB(t)
	assertLoopbackOnly(t, peer.Endpoint)
	assertLoopbackOnly(t, peer.AdminURL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := peer.Client()
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("ttt"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: types.KeyTypeHash}},
		StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		t.Fatal(err)
	}
	put := func(k string) {
		t.Helper()
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("ttt"),
			Item: map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: k}}}); err != nil {
			t.Fatal(err)
		}
	}
	put("a")
	// A conditional write on an existing key fails: the peer is real.
	_, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("ttt"),
		Item:                map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "a"}},
		ConditionExpression: aws.String("attribute_not_exists(k)")})
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		t.Fatalf("conditional put on an existing key = %v, want ConditionalCheckFailedException", err)
	}

	streams := peer.StreamsClient()
	ls, err := streams.ListStreams(ctx, &dynamodbstreams.ListStreamsInput{TableName: aws.String("ttt")})
	if err != nil || len(ls.Streams) != 1 {
		t.Fatalf("list streams = %v, %v", ls, err)
	}
	arn := ls.Streams[0].StreamArn
	shards := func() []stypes.Shard {
		t.Helper()
		d, err := streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: arn})
		if err != nil {
			t.Fatal(err)
		}
		return d.StreamDescription.Shards
	}
	before := shards()
	if len(before) != 1 {
		t.Fatalf("got %d shards before rollover, want 1", len(before))
	}
	peer.TriggerShardRollovers(t)
	put("b")
	after := shards()
	if len(after) != 2 {
		t.Fatalf("got %d shards after rollover, want 2", len(after))
	}
	var child *stypes.Shard
	for i := range after {
		if aws.ToString(after[i].ParentShardId) == aws.ToString(before[0].ShardId) {
			child = &after[i]
		}
	}
	if child == nil {
		t.Fatalf("no child of %s after rollover: %+v", aws.ToString(before[0].ShardId), after)
	}
	for _, s := range after {
		if aws.ToString(s.ShardId) == aws.ToString(before[0].ShardId) && s.SequenceNumberRange.EndingSequenceNumber == nil {
			t.Fatal("parent shard still open after rollover")
		}
	}

	// Dilated by 48 h, the parent shard falls behind the 24 h trim horizon:
	// it is gone, or its records carry a creation time two days back.
	peer.DilateEventTimes(t, 48)
	it, err := streams.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: arn,
		ShardId: before[0].ShardId, ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		var gone *stypes.ResourceNotFoundException
		var trimmed *stypes.TrimmedDataAccessException
		if errors.As(err, &gone) || errors.As(err, &trimmed) {
			return
		}
		t.Fatal(err)
	}
	rec, err := streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it.ShardIterator})
	var gone *stypes.ResourceNotFoundException
	var trimmed *stypes.TrimmedDataAccessException
	if errors.As(err, &gone) || errors.As(err, &trimmed) {
		return // the dilated shard was trimmed away: aged past retention
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rec.Records {
		if age := time.Since(aws.ToTime(r.Dynamodb.ApproximateCreationDateTime)); age < 47*time.Hour {
			t.Fatalf("record aged %v after a 48h dilation", age)
		}
	}
}

func TestDynamoDBEnv(t *testing.T) {
	peer := testenv.DynamoDB(t)
	env := strings.Join(peer.Env(), "\n")
	for _, want := range []string{"AWS_ENDPOINT_URL_DYNAMODB=" + peer.Endpoint, "AWS_ENDPOINT_URL_DYNAMODB_STREAMS=" + peer.Endpoint, "AWS_REGION=" + testenv.PeerRegion, "AWS_ACCESS_KEY_ID="} {
		if !strings.Contains(env, want) {
			t.Errorf("Env lacks %q:\n%s", want, env)
		}
	}
}

func TestFindDynamoDBLocalMissing(t *testing.T) {
	t.Setenv("STREAMD_DYNAMODB_LOCAL_DIR", t.TempDir())
	_, err := testenv.FindDynamoDBLocal()
	if err == nil || !strings.Contains(err.Error(), "install-peers.sh") {
		t.Fatalf("FindDynamoDBLocal with no jar = %v, want a hint naming install-peers.sh", err)
	}
	t.Setenv("STREAMD_DYNAMODB_LOCAL_DIR", "")
	t.Chdir(t.TempDir())
	if _, err := testenv.FindDynamoDBLocal(); err == nil || !strings.Contains(err.Error(), "install-peers.sh") {
		t.Fatalf("FindDynamoDBLocal outside the repository = %v, want a hint naming install-peers.sh", err)
	}
}

// assertLoopbackOnly checks that the endpoint's port is served on
// 127.0.0.1 and not on another local address.
func assertLoopbackOnly(t *testing.T, endpoint string) {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" {
		t.Fatalf("endpoint %q is not on 127.0.0.1", endpoint)
	}
	c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", u.Host, err)
	}
	c.Close()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ip, _, _ := net.ParseCIDR(a.String())
		if ip == nil || ip.IsLoopback() || ip.To4() == nil {
			continue
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), u.Port()), time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("%s also answers on %s", endpoint, ip)
		}
	}
}
