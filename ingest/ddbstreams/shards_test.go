package ddbstreams

import (
	"context"
	"reflect"
	"sort"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint/lease"
)

func sh(id, parent string) types.Shard {
	s := types.Shard{ShardId: aws.String(id)}
	if parent != "" {
		s.ParentShardId = aws.String(parent)
	}
	return s
}

func TestLineage(t *testing.T) {
	tests := []struct {
		name    string
		streams []Stream
		want    map[string][]string
	}{
		{"one shard", []Stream{{ARN: "a", Shards: []types.Shard{sh("s1", "")}}}, map[string][]string{"s1": nil}},
		{"rollover chain", []Stream{{ARN: "a", Shards: []types.Shard{sh("s1", ""), sh("s2", "s1"), sh("s3", "s2")}}},
			map[string][]string{"s1": nil, "s2": {"s1"}, "s3": {"s2"}}},
		{"parent past retention", []Stream{{ARN: "a", Shards: []types.Shard{sh("s2", "s1"), sh("s3", "s2")}}},
			map[string][]string{"s2": {"s1"}, "s3": {"s2"}}},
		{"split", []Stream{{ARN: "a", Shards: []types.Shard{sh("s1", ""), sh("s2", "s1"), sh("s3", "s1")}}},
			map[string][]string{"s1": nil, "s2": {"s1"}, "s3": {"s1"}}},
		{"re-enabled stream waits for every leaf of the old one (two parents)", []Stream{
			{ARN: "old", Shards: []types.Shard{sh("a1", ""), sh("a2", "a1"), sh("a3", "a1")}},
			{ARN: "new", Shards: []types.Shard{sh("b1", ""), sh("b2", "b1")}},
		}, map[string][]string{"a1": nil, "a2": {"a1"}, "a3": {"a1"}, "b1": {"a2", "a3"}, "b2": {"b1"}}},
		{"three streams, middle one empty", []Stream{
			{ARN: "s1", Shards: []types.Shard{sh("a1", "")}},
			{ARN: "s2"},
			{ARN: "s3", Shards: []types.Shard{sh("c1", "gone")}},
		}, map[string][]string{"a1": nil, "c1": {"gone", "a1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string][]string{}
			for _, s := range Lineage(tt.streams) {
				got[s.ID] = s.Parents
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("lineage = %v, want %v", got, tt.want)
			}
		})
	}
}

// readOrder drives the lease manager the way the source does (every
// gained shard is read to its end and finished) and returns the rounds in
// which shards were gained.
func readOrder(t *testing.T, shards []lease.Shard) [][]string {
	t.Helper()
	ctx := context.Background()
	m := lease.NewLocal()
	if err := m.Sync(ctx, shards); err != nil {
		t.Fatal(err)
	}
	var rounds [][]string
	for i := 0; i < len(shards)+1; i++ {
		ch, err := m.Tick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ch.Gained) == 0 {
			break
		}
		sort.Strings(ch.Gained)
		rounds = append(rounds, ch.Gained)
		for _, id := range ch.Gained {
			if err := m.Finish(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	return rounds
}

func TestShardTreeOrder(t *testing.T) {
	tests := []struct {
		name    string
		streams []Stream
		want    [][]string
	}{
		{"rollovers read parent before child", []Stream{{ARN: "a", Shards: []types.Shard{sh("s3", "s2"), sh("s1", ""), sh("s2", "s1")}}},
			[][]string{{"s1"}, {"s2"}, {"s3"}}},
		{"siblings in parallel", []Stream{{ARN: "a", Shards: []types.Shard{sh("p", ""), sh("q", ""), sh("p1", "p"), sh("q1", "q")}}},
			[][]string{{"p", "q"}, {"p1", "q1"}}},
		{"a child whose parent expired starts at once", []Stream{{ARN: "a", Shards: []types.Shard{sh("s2", "s1"), sh("s3", "s2")}}},
			[][]string{{"s2"}, {"s3"}}},
		{"new stream after every shard of the old (merge of two parents)", []Stream{
			{ARN: "old", Shards: []types.Shard{sh("a1", ""), sh("a2", "a1"), sh("x1", ""), sh("x2", "x1"), sh("x3", "x2")}},
			{ARN: "new", Shards: []types.Shard{sh("b1", ""), sh("b2", "b1")}},
		}, [][]string{{"a1", "x1"}, {"a2", "x2"}, {"x3"}, {"b1"}, {"b2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readOrder(t, Lineage(tt.streams)); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("read order = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSequenceNumbersCompare checks that DynamoDB Streams sequence numbers
// (decimal strings: 21 zero-padded digits from DynamoDB Local, 20 to 40
// digits without padding from the service) order as numbers, and survive
// Position's string form.
func TestSequenceNumbersCompare(t *testing.T) {
	ordered := [][]string{
		{"000000000000000000001", "000000000000000000002", "000000000000000000010", "000000000000000000100", "100000000000000000000"},
		{"4421584500000000017450439091", "4421584500000000017450439092", "4421584600000000000000000001", "14421584500000000017450439091"},
	}
	for _, seqs := range ordered {
		for i := range seqs {
			for j := range seqs {
				a, b := streamd.Position{Seq: seqs[i]}, streamd.Position{Seq: seqs[j]}
				want := 0
				if i < j {
					want = -1
				} else if i > j {
					want = 1
				}
				if got := a.Compare(b); got != want {
					t.Errorf("Compare(%s, %s) = %d, want %d", seqs[i], seqs[j], got, want)
				}
			}
			p, err := streamd.ParsePosition(streamd.Position{Seq: seqs[i]}.String())
			if err != nil || p.Seq != seqs[i] || p.Offset != 0 {
				t.Errorf("ParsePosition(String(%s)) = %+v, %v", seqs[i], p, err)
			}
		}
	}
}

func TestARNParts(t *testing.T) {
	arn := "arn:aws:dynamodb:us-east-1:123456789012:table/orders.v2/stream/2026-11-23T23:52:15.738"
	if got := tableOfARN(arn); got != "orders.v2" {
		t.Errorf("tableOfARN = %q", got)
	}
	if got := labelOfARN(arn); got != "2026-11-23T23:52:15.738" {
		t.Errorf("labelOfARN = %q", got)
	}
	if got := tableOfARN("not-an-arn"); got != "not-an-arn" {
		t.Errorf("tableOfARN(not-an-arn) = %q", got)
	}
}
