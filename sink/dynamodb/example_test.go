package dynamodb_test

import (
	"context"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamd/streamd"
	ddbsink "github.com/streamd/streamd/sink/dynamodb"
)

func ExampleSink() {
	// peer is the DynamoDB Local that TestMain started; in production the
	// client comes from config.LoadDefaultConfig.
	client := peer.Client()
	ctx := context.Background()
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("example-orders"),
		BillingMode:          types.BillingModePayPerRequest,
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("order_id"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("order_id"), AttributeType: types.ScalarAttributeTypeS}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	schema, _ := streamd.NewSchema(
		streamd.Field{Name: "order_id", Type: streamd.Type{Kind: streamd.KindString}},
		streamd.Field{Name: "total", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 12, Scale: 2}},
		streamd.Field{Name: "op", Type: streamd.Type{Kind: streamd.KindString}},
	)
	b := streamd.NewBatch(schema, "orders/shard-0")
	for i, r := range []struct {
		id, op string
		total  int64
	}{{"o1", "insert", 1990}, {"o2", "insert", 500}, {"o1", "modify", 2490}, {"o2", "remove", 0}, {"o3", "insert", 12345678}} {
		pos := streamd.Position{Offset: int64(i)}
		b.NoteRead(pos, 40)
		b.AddRowMeta(pos, 0)
		b.Cols[0].AppendBytes([]byte(r.id))
		b.Cols[1].AppendInt64(r.total)
		b.Cols[2].AppendBytes([]byte(r.op))
	}

	s, err := ddbsink.New(ddbsink.Config{Pipeline: "orders", Client: client, Table: "example-orders", Key: []string{"order_id"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close(ctx)
	if err := s.Write(ctx, streamd.Intent{Pipeline: "orders", Lane: b.Lane, From: b.From, To: b.To}, b); err != nil {
		fmt.Println(err)
		return
	}
	out, err := client.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("example-orders")})
	if err != nil {
		fmt.Println(err)
		return
	}
	var lines []string
	for _, it := range out.Items {
		lines = append(lines, fmt.Sprintf("%s total=%s attributes=%d",
			it["order_id"].(*types.AttributeValueMemberS).Value, it["total"].(*types.AttributeValueMemberN).Value, len(it)))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// o1 total=24.9 attributes=2
	// o3 total=123456.78 attributes=2
}
