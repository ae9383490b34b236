// Package ddbstreams is the DynamoDB Streams change-data-capture source
// (source type dynamodb_streams).
//
// It reads a table's stream, one lane per shard (the lane is the shard id,
// which is unique across a table's streams and is the key of the shard's
// checkpoint and lease), and delivers every change as one JSON record that
// the jsonl decoder of package transform types by the declared schema:
//
//	{"op":"insert|modify|remove","event_time":"2026-11-23T23:52:15Z",
//	 "sequence_number":"000000000000000000042","event_id":"…",
//	 "keys":{…},"new_image":{…}|null,"old_image":{…}|null,
//	 "pk":"…","quantity":12345678901234567890.123456789, …}
//
// Attribute values become JSON as AppendAttributeValue describes (N stays
// the exact number text, so decimal columns get every digit). The current
// image (NewImage for insert and modify, OldImage — or Keys — for remove)
// is also flattened to the top level, except attributes named like a
// change field (IsReserved), which stay reachable through
// new_image.NAME / old_image.NAME. Record.Time is ApproximateCreationDateTime
// and Record.Pos is Position{Seq: sequence number}.
//
// Rows carry the column op: a sink that keeps a materialised copy (the
// DynamoDB and OpenSearch sinks) upserts insert and modify rows and deletes
// on remove.
//
// Shards are handed out by a checkpoint/lease Manager, the one shared with
// the Kinesis source: a child shard (after a rollover) starts only once its
// parent was read to its end and committed, and when the table's stream is
// disabled and enabled again (a new stream ARN) the new stream starts only
// once the old one is finished (see Lineage); the gap between them is
// reported (streamd_ddbstreams_stream_switches_total and an error log
// naming both ARNs). Records trimmed before they were read (a checkpoint
// behind the 24 h retention) are reported as loss
// (streamd_ddbstreams_loss_events_total and an error log), never skipped
// silently; reading goes on at the shard's trim horizon.
package ddbstreams
