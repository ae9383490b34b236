package ddbstreams_test

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/ddbstreams"
)

// ExampleAppendChange shows the JSON record of one MODIFY.
func ExampleAppendChange() {
	at := time.Date(2026, 11, 23, 23, 52, 15, 0, time.UTC)
	rec := types.Record{EventName: types.OperationTypeModify, EventID: aws.String("e1"), Dynamodb: &types.StreamRecord{
		ApproximateCreationDateTime: &at, SequenceNumber: aws.String("000000000000000000042"),
		Keys:     map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "a"}},
		OldImage: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "a"}, "qty": &types.AttributeValueMemberN{Value: "1"}},
		NewImage: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "a"}, "qty": &types.AttributeValueMemberN{Value: "12345678901234567890.123456789"}},
	}}
	b, err := ddbstreams.AppendChange(nil, rec)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
	// Output:
	// {"op":"modify","event_time":"2026-11-23T23:52:15Z","sequence_number":"000000000000000000042","event_id":"e1","keys":{"pk":"a"},"new_image":{"pk":"a","qty":12345678901234567890.123456789},"old_image":{"pk":"a","qty":1},"pk":"a","qty":12345678901234567890.123456789}
}

// startResumer resumes nothing: every shard starts at Config.Start.
type startResumer struct{}

func (startResumer) Resume(context.Context, string) (streamd.Position, bool, error) {
	return streamd.Position{}, false, nil
}

// ExampleSource reads a table's changes (here from DynamoDB Local; in
// production the clients come from ddbstreams.LoadClients).
func ExampleSource() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := peer.Client()
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String("example-orders"), BillingMode: dbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: dbtypes.ScalarAttributeTypeS}},
		KeySchema:            []dbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: dbtypes.KeyTypeHash}},
		StreamSpecification:  &dbtypes.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: dbtypes.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		panic(err)
	}
	item := map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: "order-1"}}
	db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("example-orders"), Item: item})
	db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("example-orders"), Key: item})

	src, err := ddbstreams.New(db, peer.StreamsClient(), ddbstreams.Config{Table: "example-orders", IdleInterval: 50 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	out := make(chan ingest.Chunk)
	done := make(chan error, 1)
	go func() { done <- src.Run(runCtx, startResumer{}, out) }()
	for n := 0; n < 2; {
		c := <-out
		for _, r := range c.Records {
			fmt.Println(string(r.Data[:17]))
			n++
		}
	}
	stop()
	for { // Run returns nil on a stop; drain what was in flight meanwhile
		select {
		case <-out:
		case err := <-done:
			fmt.Println("stopped:", err)
			return
		}
	}
	// Output:
	// {"op":"insert","e
	// {"op":"remove","e
	// stopped: <nil>
}
