package ddbstreams_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/ddbstreams"
)

var (
	benchOnce  sync.Once
	benchTable string
)

const benchChanges = 5000

// benchSetup writes benchChanges items once (BatchWriteItem, 25 a call).
func benchSetup(b *testing.B) string {
	benchOnce.Do(func() {
		db := peer.Client()
		benchTable = createTable(b, db)
		for i := 0; i < benchChanges; i += 25 {
			var reqs []dbtypes.WriteRequest
			for j := i; j < i+25 && j < benchChanges; j++ {
				reqs = append(reqs, dbtypes.WriteRequest{PutRequest: &dbtypes.PutRequest{Item: map[string]dbtypes.AttributeValue{
					"pk": &dbtypes.AttributeValueMemberS{Value: fmt.Sprintf("item-%06d", j)}, "ver": &dbtypes.AttributeValueMemberN{Value: "1"},
					"quantity": &dbtypes.AttributeValueMemberN{Value: "12345678901234567890.123456789"},
					"region":   &dbtypes.AttributeValueMemberS{Value: "EU-WEST"}, "tags": &dbtypes.AttributeValueMemberSS{Value: []string{"a", "b"}},
				}}})
			}
			out, err := db.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dbtypes.WriteRequest{benchTable: reqs}})
			if err != nil || len(out.UnprocessedItems) > 0 {
				b.Fatalf("batch write: %v (unprocessed %d)", err, len(out.UnprocessedItems))
			}
		}
	})
	return benchTable
}

// BenchmarkSource reads benchChanges changes from DynamoDB Local per
// iteration (a fresh source from the trim horizon each time) and reports
// changes/s.
func BenchmarkSource(b *testing.B) {
	table := benchSetup(b)
	var total int
	start := time.Now()
	for b.Loop() {
		src, err := ddbstreams.New(peer.Client(), peer.StreamsClient(), ddbstreams.Config{Table: table, PollInterval: time.Millisecond, IdleInterval: 10 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		out := make(chan ingest.Chunk, 16)
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx, &memResumer{}, out) }()
		n := 0
		for n < benchChanges {
			c := <-out
			n += len(c.Records)
		}
		total += n
		cancel()
	drain:
		for {
			select {
			case <-out:
			case err := <-done:
				if err != nil {
					b.Fatal(err)
				}
				break drain
			}
		}
	}
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "changes/s")
}
