package dynamodb_test

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/config"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint/dynamodb"
)

// ExampleStore records an intent and commits it in a DynamoDB table. The
// client comes from the SDK's default configuration (AWS_REGION,
// credentials, AWS_ENDPOINT_URL_DYNAMODB), as streamd configures it.
func ExampleStore() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		panic(err)
	}
	store := dynamodb.New(ddb.NewFromConfig(cfg), dynamodb.Config{Table: "streamd-example"})
	defer store.Close()
	if err := store.EnsureTable(ctx); err != nil {
		panic(err)
	}
	in := streamd.Intent{Pipeline: "sales", Lane: "shardId-000000000000",
		From: streamd.Position{Seq: "49590338271490256608559692538361571095921575989136588898"},
		To:   streamd.Position{Seq: "49590338271490256608559692538361571095921575989136588999", Sub: 2}}
	if err := store.PutIntent(ctx, in); err != nil {
		panic(err)
	}
	if err := store.Commit(ctx, in, nil); err != nil {
		panic(err)
	}
	st, err := store.Load(ctx, "sales", in.Lane)
	if err != nil {
		panic(err)
	}
	fmt.Println(st.HasCommit, st.Committed, st.Intent == nil)
	// Output: true 49590338271490256608559692538361571095921575989136588999.2 true
}
