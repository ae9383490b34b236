// Package dynamodb is a checkpoint.Store backed by one DynamoDB table,
// shared by every streamd process of a deployment (an ECS service):
//
//	checkpoint: {store: dynamodb, table: streamd-state}
//
// # Table schema
//
// EnsureTable creates the table when it is missing: PAY_PER_REQUEST,
// partition key "pipeline" (S) and sort key "lane" (S). One item per
// (pipeline, lane) holds
//
//	committed     S    last committed position (streamd.Position.String)
//	intent_from   S    open intent, absent when none
//	intent_to     S
//	op_state      B    operator state saved with the commit
//	ver           N    bumped by every checkpoint write (optimistic locking)
//
// and, for sharded sources (Kinesis, DynamoDB Streams), the lease of the
// shard the lane reads, written by package checkpoint/lease:
//
//	lease_owner   S    worker holding the lease, absent when free
//	lease_counter N    bumped on every take, renewal and release
//	parents       SS   parent shard ids
//	finished      BOOL shard fully consumed and committed
//	steal_by      S    a worker asking the owner to hand the lease over
//
// # Writes
//
// Load reads with strong consistency. PutIntent reads the item, checks the
// intent against the committed position in Go (positions are not
// comparable in a condition expression) and writes conditionally on the
// version it read, retrying a bounded number of times when another writer
// got in between. Commit sets the committed position and operator state
// and removes the intent in one UpdateItem, so it never touches lease
// attributes.
//
// # Fencing
//
// With SetFence (the lease manager of checkpoint/lease), PutIntent and
// Commit are additionally conditional on lease_owner and lease_counter
// being the values this process holds; otherwise they fail with an error
// wrapping checkpoint.ErrFenced, and nothing is written.
//
// # IAM
//
// dynamodb:DescribeTable, dynamodb:CreateTable (only when the table is to
// be created), dynamodb:GetItem, dynamodb:UpdateItem, dynamodb:Query on the
// table.
package dynamodb
