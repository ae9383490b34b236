// Package e2e holds the Kinesis source's end-to-end test: it builds the
// streamd binary, runs two processes sharing a stream's shards through
// leases in DynamoDB Local while a producer writes to kinesalite and the
// stream is resharded, SIGKILLs and restarts one of them, and checks the
// Parquet output for exactly-once delivery in per-key order. It needs the
// kinesis source and the dynamodb checkpoint store wired in cmd/streamd
// (see ingest/kinesis/README.md); until then it fails saying so. The
// package has no code of its own.
package e2e
