// Package testenv starts real peers for tests: a MinIO server standing in
// for S3; AWS DynamoDB Local (with Streams, bound to loopback by a small
// Java launcher that also forces shard rollovers and ages stream records);
// kinesalite for Kinesis; franz-go's kfake for Kafka (plus kcat as an
// outside client); and a FaultProxy that sits in front of any HTTP peer and
// injects 500s, 503 SlowDown, slow responses and dropped connections.
//
// The peer binaries are installed by install-peers.sh in this directory
// (into the repository's .cache); a test whose peer is missing fails with a
// message naming that script, it is never skipped. Every server listens on
// 127.0.0.1 only and is killed by PID when the test ends.
package testenv
