// Package streamd holds the core record types every streamd package shares:
// lanes and positions, the logical schema, and the columnar Batch that flows
// from decoders through operators into sinks.
//
// The package imports only the standard library, so contract packages
// (ingest, sink, checkpoint, window) can depend on it without pulling in any
// SDK. See DESIGN.md in the shared folder for the architecture and the
// intent → deterministic write → commit delivery protocol.
package streamd
