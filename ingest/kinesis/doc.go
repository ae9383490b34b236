// Package kinesis is the Kinesis Data Streams source: one lane per shard,
// named by the shard id, positions Position{Seq: sequence number, Sub: KPL
// sub-sequence}.
//
// # Shards and leases
//
// Shards are listed with ListShards (paged with NextToken; endpoints that
// return every shard at once, like kinesalite, work too) at start, every
// ListInterval, and after a shard finished. The lineage (ParentShardId,
// AdjacentParentShardId) goes to a lease.Manager: lease.Local when one
// process reads the stream (embedded checkpoint store), lease.Table when
// several share it through the DynamoDB checkpoint table. A child shard is
// read only after every parent is finished, that is read to its end
// (GetRecords returned no NextShardIterator, Chunk.End was sent) and
// committed (seen through ingest.Committer), so each partition key's
// records are delivered in production order across splits and merges.
// Children start at their trim horizon whatever Start says.
//
// When another worker asks for a shard (balancing), the source stops
// reading it, sends a Revoked chunk and releases the lease only after the
// pipeline let the lane go (flushed and committed). A lease lost by expiry
// stops the shard at once; the pipeline's pending commit is then fenced.
// At shutdown, leases are released as soon as everything read from them is
// committed (during the pipeline's drain).
//
// # Reading
//
// GetRecords is called at most once per PollInterval per shard (Kinesis
// allows five per second per shard, shared by all consumers) and after
// IdleInterval when nothing came back. ProvisionedThroughputExceeded,
// LimitExceeded and KMSThrottling back off exponentially with jitter up to
// MaxBackoff; an expired iterator is re-opened AFTER_SEQUENCE_NUMBER of the
// last record read.
//
// A shard resumes AT_SEQUENCE_NUMBER of its committed record, so a
// checkpoint inside a KPL aggregate re-reads the aggregate and drops the
// sub-records already committed: a redo starts exactly inside the
// aggregate. If the committed record is no longer there (the checkpoint is
// older than the stream's retention), or the iterator is refused, records
// were trimmed before they were read: this is counted in
// streamd_kinesis_loss_events_total and logged as an error, and reading
// continues from what is left; it is never skipped silently.
//
// # KPL aggregation
//
// Records starting with the KPL magic 0xF3899AC2 are decoded as a protobuf
// AggregatedRecord (a small hand-written reader) after checking the MD5
// trailer; each sub-record becomes a record with Sub = its index. A
// corrupted aggregate becomes one record with Err set and the raw bytes,
// which the pipeline dead-letters.
//
// # Metrics
//
//	streamd_kinesis_millis_behind_latest_milliseconds{stream,shard}  gauge
//	streamd_kinesis_max_millis_behind_latest_milliseconds{stream}    gauge
//	streamd_kinesis_records_read_total{stream}                       counter
//	streamd_kinesis_throttled_requests_total{stream}                 counter
//	streamd_kinesis_loss_events_total{stream}                        counter
//	streamd_kinesis_corrupt_aggregates_total{stream}                 counter
//	streamd_kinesis_shards_held{stream}                              gauge
//	streamd_kinesis_subscriptions_total{stream}                      counter
//
// The shard label is bounded by the leases this process holds: a shard's
// series is deleted when it stops reading it.
//
// With Config.EnhancedFanOut each shard is read by SubscribeToShard
// subscriptions (renewed when they end or fail) instead of GetRecords
// polling; the lease, resume and End semantics are the same. It was tested
// only against a protocol-level fake of the event stream (kinesalite has
// no enhanced fan-out).
package kinesis
