// Package e2e holds the DynamoDB Streams source's end-to-end tests: they
// build the streamd binary, run it against DynamoDB Local (with Streams)
// while a writer puts, updates and deletes items, SIGKILL and restart it
// across a shard rollover, disable and re-enable the stream, and check the
// Parquet change log (exactly once, per-key order, replay equals a Scan,
// exact decimals). The package has no code of its own.
package e2e
