// Package lease shares the shards of a Kinesis or DynamoDB Streams stream
// between the streamd processes reading it, with one lease per shard.
//
// Table keeps the leases in the DynamoDB table of the checkpoint store
// (checkpoint/dynamodb), on the same item as the shard's checkpoint, so a
// lease's "checkpoint reference" is the item's committed position. Per
// (pipeline, shard) item it writes
//
//	lease_owner   S    worker id, absent when the lease is free
//	lease_counter N    bumped on every take, renewal, release and finish
//	parents       SS   parent shard ids (split: one, merge: two)
//	finished      BOOL the closed shard was read to its end and committed
//	steal_by      S    a worker asking the owner to hand the lease over
//
// Every change is a conditional UpdateItem on lease_owner and
// lease_counter:
//
//   - acquire: a free lease (no owner) or an expired one (its counter did
//     not change for FailoverTime, as observed by this worker's own clock,
//     so hosts need no synchronised clocks);
//   - renew: every RenewInterval, bumping the counter; a failed condition
//     means the lease was lost;
//   - balance: each worker aims at ceil(eligible shards / live workers).
//     Below it with nothing free, a worker sets steal_by on a lease of the
//     most loaded worker; the owner sees it at its next renewal, lets the
//     pipeline finish the lane (no fenced commit is lost), and releases it;
//     the asking worker takes it. A worker that does not answer loses the
//     lease by expiry instead;
//   - release on shutdown, and finish when a closed shard is fully
//     committed: a child shard is eligible only when every parent still
//     listed is finished, so records of one partition key are read in
//     order across splits and merges.
//
// The checkpoint store's writes are fenced by the lease (Table implements
// dynamodb.Fence): a worker whose lease was taken gets checkpoint.ErrFenced
// from PutIntent and Commit.
//
// Local is the Manager for one process with the embedded file store: it
// holds every eligible shard, needs no table, and keeps lineage in memory.
//
// IAM actions on the table: dynamodb:Query, dynamodb:UpdateItem (plus those
// of the checkpoint store).
package lease
