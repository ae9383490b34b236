package testenv_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/streamd/streamd/internal/testenv"
)

func TestKinesalite(t *testing.T) {
	peer := testenv.Kinesis(t)
	assertLoopbackOnly(t, peer.Endpoint)
	peer.CreateStream(t, "s", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := peer.Client()
	put, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: put.ShardId,
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != 1 || string(got.Records[0].Data) != "hello" || aws.ToString(got.Records[0].SequenceNumber) != aws.ToString(put.SequenceNumber) {
		t.Fatalf("got %+v", got.Records)
	}
	// A stream that was not created does not exist: the peer is real.
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("nope"), PartitionKey: aws.String("k"), Data: []byte("x")})
	var rnf *types.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Fatalf("put into a missing stream = %v, want ResourceNotFoundException", err)
	}
	if env := strings.Join(peer.Env(), "\n"); !strings.Contains(env, "AWS_ENDPOINT_URL_KINESIS="+peer.Endpoint) {
		t.Fatalf("Env lacks the Kinesis endpoint:\n%s", env)
	}
}

func TestFindKinesaliteMissing(t *testing.T) {
	t.Setenv("STREAMD_NODE_MODULES", t.TempDir())
	if _, _, err := testenv.FindKinesalite(); err == nil || !strings.Contains(err.Error(), "install-peers.sh") {
		t.Fatalf("FindKinesalite with no kinesalite = %v, want a hint naming install-peers.sh", err)
	}
}
