// Package ingest defines the source contract: a Source reads lanes (files,
// Kafka partitions, Kinesis or DynamoDB Streams shards) and sends their raw
// records to the pipeline in lane order, resuming each lane after the
// position the checkpoint store last committed for it.
//
// Adapters live in subpackages (ingest/file, ...). This package imports only
// the standard library and the core record types.
package ingest
