// Package shardset runs the readers of a leased, sharded stream for the
// Kinesis Data Streams and DynamoDB Streams sources: it lists the shards,
// runs lease rounds (checkpoint/lease), starts one reader goroutine per
// shard gained, stops readers of shards lost or handed over, and finishes
// a closed shard's lease once the pipeline has committed its last record,
// so that its children start.
//
// The life cycle of a shard here:
//
//   - gained: Config.Read runs in its own goroutine; it calls
//     Reader.Resumed with the committed position it resumes after and
//     Reader.Sent after every chunk it handed to the pipeline.
//   - lost (another worker took the expired lease): the reader stops and
//     a Revoked chunk tells the pipeline, whose pending commit is fenced.
//   - handed over (another worker asked for it): the reader stops, a
//     Revoked chunk with Released lets the pipeline flush and commit the
//     lane, then the lease is released.
//   - read to its end and committed (Committed): the lease is finished.
//   - shutdown: every reader stops; leases with nothing pending are
//     released at once, the others once the pipeline's drain commits them,
//     or by expiry.
//
// Set.Run's goroutines end before it returns.
package shardset
