// Package e2e holds the end-to-end tests of the HTTP sidecar source: they
// build the streamd binary, run it with `source: {type: http}`, drive it
// with the AWS SDK Firehose client and SIGKILL it mid-stream, then check
// the Parquet output against every acknowledged record.
package e2e
