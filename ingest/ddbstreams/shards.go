package ddbstreams

import (
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/streamd/streamd/checkpoint/lease"
)

// Stream is one stream of a table as listed: its ARN, its label (the
// creation time stamp that ends the ARN; labels of one table sort in
// creation order) and its shards.
type Stream struct {
	ARN    string
	Label  string
	Shards []types.Shard
}

// Lineage returns the lease shards of a table's streams, given in creation
// order (oldest first), with the parents each must wait for:
//
//   - a shard's own ParentShardId (a rollover: the parent is closed and the
//     child continues its keys);
//   - for a shard that begins a later stream (no parent in its own
//     stream, after the stream was disabled and enabled again), every leaf
//     shard of the previous stream (a shard of it that no other shard of it
//     names as parent), so the old stream is read to its end before the new
//     one starts and each key's changes stay in order across the switch.
//
// The second rule can give a shard several parents (like a merge); the
// lease manager starts it only when all of them that are still listed are
// finished.
func Lineage(streams []Stream) []lease.Shard {
	var out []lease.Shard
	var prevLeaves []string
	for _, st := range streams {
		ids := make(map[string]bool, len(st.Shards))
		hasChild := map[string]bool{}
		for _, sh := range st.Shards {
			ids[aws.ToString(sh.ShardId)] = true
		}
		for _, sh := range st.Shards {
			id := aws.ToString(sh.ShardId)
			parent := aws.ToString(sh.ParentShardId)
			ls := lease.Shard{ID: id}
			if parent != "" {
				ls.Parents = append(ls.Parents, parent)
				hasChild[parent] = true
			}
			if !ids[parent] {
				ls.Parents = append(ls.Parents, prevLeaves...)
			}
			out = append(out, ls)
		}
		var leaves []string
		for _, sh := range st.Shards {
			if id := aws.ToString(sh.ShardId); !hasChild[id] {
				leaves = append(leaves, id)
			}
		}
		sort.Strings(leaves)
		if len(leaves) > 0 {
			prevLeaves = leaves
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// tableOfARN returns the table name inside a stream ARN
// (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL), or the ARN
// itself when it does not have that form.
func tableOfARN(arn string) string {
	_, rest, ok := strings.Cut(arn, ":table/")
	if !ok {
		return arn
	}
	name, _, _ := strings.Cut(rest, "/stream/")
	return name
}

// labelOfARN returns the label that ends a stream ARN.
func labelOfARN(arn string) string {
	_, label, _ := strings.Cut(arn, "/stream/")
	return label
}
