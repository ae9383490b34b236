// Package window holds the micro-batch policy: when a lane's open batch
// closes (max records, max bytes, max age, the end of a finite lane, a redo
// boundary, shutdown). It imports only the standard library.
package window
