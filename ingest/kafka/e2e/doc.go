// Package e2e holds the Kafka source's end-to-end tests and benchmark:
// they build the streamd binary, run several processes in one consumer
// group against an in-process kfake broker (which outlives them), kill,
// restart, add and remove members while a producer keeps writing, and
// check the Parquet output for exactly-once delivery. The package has no
// code of its own.
package e2e
