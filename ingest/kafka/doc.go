// Package kafka is the Kafka and Amazon MSK source: it consumes topics (by
// list or regular expression) with franz-go as a member of a consumer
// group, and hands each assigned topic-partition to the pipeline as its
// own lane, named "topic/partition", whose positions are offsets
// (streamd.Position{Offset}).
//
// # Where a partition starts
//
// Positions come from the checkpoint store, never from the group: when
// partitions are assigned, franz-go first fetches the group's committed
// offsets, then calls the source's AdjustFetchOffsetsFn, which asks the
// pipeline's Resumer for every new partition and, where the store has a
// position, replaces the offset with position+1 before any fetch starts.
// A partition without a checkpoint keeps the group's committed offset, and
// one without either starts at Config.Start (earliest or latest). Group
// offsets are committed only after the store committed (Committer), so
// they never run ahead of it and standard lag tools tell the truth.
//
// # Rebalances
//
// The group uses the cooperative-sticky balancer. The source polls with
// BlockRebalanceOnPoll, so a rebalance never interleaves with handing a
// poll's records to the pipeline: once the records of a poll are sent, it
// allows rebalances. When partitions are revoked, the revoke callback sends
// a Revoked chunk per partition and waits (at most RevokeTimeout) until the
// pipeline has finished or abandoned their open batches and closed each
// Released channel; it then commits their final group offsets
// synchronously and lets the rebalance proceed, so the next owner resumes
// exactly after the last durable batch. Lost partitions (an expired
// session) are released the same way with a short wait and no commit. At
// shutdown (ctx done) Run releases every owned partition the same way
// before leaving the group, so a stop hands partitions over cleanly.
//
// # Memory and poison records
//
// A fetcher goroutine polls the client into a queue bounded by an eighth
// of MaxBufferedBytes, so the next fetch is under way while the pipeline
// takes the records of the last (franz-go fetches from a broker again only
// once its buffered fetch was polled); a sender goroutine hands the queue
// on as chunks. Records polled before a revoke are tagged with the lane's
// assignment epoch and dropped, never sent after the Revoked chunk.
// Fetches are small (at most 2MiB, two at a time) and the pipeline's
// channels block, so memory stays flat whatever the backlog. Record slabs
// come from a pool (kgo.WithPools) and return to it when the pipeline
// released the chunk holding them. Record values are handed on untouched: nothing in
// a record's content can fail the source, and the pipeline dead-letters
// what it cannot decode.
//
// # Security and metrics
//
// TLS (custom CA, client certificates), SASL PLAIN, SCRAM-SHA-256/512 and
// AWS_MSK_IAM (signed with credentials from the AWS SDK default chain) are
// supported; passwords never appear in logs, metrics or errors. With a
// Registerer, franz-go's kprom metrics (streamd_kafka_*) and the lag gauge
// streamd_kafka_partition_lag_records are registered on it.
//
// The metadata columns _kafka_key, _kafka_topic, _kafka_partition,
// _kafka_offset, _kafka_timestamp and _kafka_headers are defined here
// (Meta); README.md describes them and the core change that carries them.
package kafka
