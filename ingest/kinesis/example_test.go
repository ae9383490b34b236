package kinesis_test

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/kinesis"
	"github.com/streamd/streamd/internal/testenv"
)

// startHere resumes nothing: every shard starts at the configured start.
type startHere struct{}

func (startHere) Resume(context.Context, string) (streamd.Position, bool, error) {
	return streamd.Position{}, false, nil
}

// ExampleSource reads a stream's records as chunks, one lane per shard.
// The client comes from the SDK's default configuration (AWS_REGION,
// credentials, AWS_ENDPOINT_URL_KINESIS), as streamd configures it.
func ExampleSource() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		panic(err)
	}
	client := awskinesis.NewFromConfig(cfg)
	client.CreateStream(ctx, &awskinesis.CreateStreamInput{StreamName: aws.String("example"), ShardCount: aws.Int32(1)})
	if err := testenv.WaitStreamActive(ctx, client, "example"); err != nil {
		panic(err)
	}
	client.PutRecord(ctx, &awskinesis.PutRecordInput{StreamName: aws.String("example"), PartitionKey: aws.String("k"), Data: []byte(`{"id":1}`)})

	src, err := kinesis.New(client, kinesis.Config{Stream: "example", Start: kinesis.StartTrimHorizon, IdleInterval: 50 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	out := make(chan ingest.Chunk, 1)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Run(runCtx, startHere{}, out) }()
	c := <-out
	fmt.Println(c.Lane, len(c.Records), string(c.Records[0].Data))
	stop()
	for {
		select {
		case <-out:
			continue
		case err := <-done:
			fmt.Println("stopped:", err)
		}
		break
	}
	// Output:
	// shardId-000000000000 1 {"id":1}
	// stopped: <nil>
}
