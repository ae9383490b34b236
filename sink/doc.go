// Package sink defines the sink contract and the object-store contract the
// file-writing sinks share.
//
// A Sink writes one batch under its intent; every name it creates is derived
// from the intent and the content is a pure function of the batch, so a redo
// of the same intent rewrites the same output byte for byte (or, for
// key-value sinks, the same keys). Adapters live in subpackages
// (sink/parquet, sink/objstore, sink/deadletter, ...). This package imports
// only the standard library and the core record types.
package sink
