// Package sinktest is a reusable conformance suite for sink.Sink
// implementations, in the spirit of Benthos' integration test templates:
// every sink runs the same checks against its real destination.
//
// A sink package calls [Run] from a test with a constructor that returns a
// fresh sink over a fresh (empty) destination and a [Reader] that reads
// back what that destination durably holds:
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, func(t *testing.T) (sink.Sink, sinktest.Reader) {
//			dir := t.TempDir()
//			s, _ := parquet.New(objstore.NewLocal(dir), sinktest.Pipeline, parquet.Options{}, nil)
//			return s, parquetDir(dir) // see parquet_test.go
//		}, sinktest.Atomic())
//	}
//
// Every batch the suite writes has the schema [Schema] (one column of every
// logical type), intents of pipeline [Pipeline], and rows built from
// [Record]s. The checks:
//
//   - empty: a batch without rows (nothing read, or everything filtered)
//     writes nothing and keeps its counters.
//   - roundtrip: every row reads back exactly (decimals by value, dates,
//     microsecond timestamps, JSON, binary, nulls), nothing is
//     dead-lettered, and the batch still reconciles
//     (Read == Len + Filtered + Deduplicated + len(Dead)).
//   - redo: writing the same intent again, with the same rows, leaves the
//     same final state (no duplicate, no loss), also after a later intent.
//   - partial failure (with [WithPoison]): rows the destination rejects
//     for good end up in b.Dead with their position, a non-empty reason
//     and raw = streamd.AppendRowJSON of the row; the other rows are
//     written; counters reconcile; a redo converges to the same state.
//   - cancel: a Write whose context is cancelled before it starts writes
//     nothing; one cancelled mid-way either succeeds or fails with an
//     error matching context.Canceled, and leaves no partial output: with
//     [Atomic] nothing of the batch is visible, otherwise every visible
//     row is a whole, exact row of the batch (the key-value guarantee:
//     items are atomic, a redo converges). A redo then yields exactly the
//     batch.
//
// Rows are compared as JSON values: a [Reader] returns each record as a
// [Row] (JSON decoded with UseNumber), absent and null attributes are the
// same, and numbers compare by exact value ("19.90" equals "19.9").
package sinktest
