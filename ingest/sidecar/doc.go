// Package sidecar is the HTTP sidecar source: an application next to
// streamd (the same ECS task or pod) hands events over on localhost and
// forgets them; the source makes them durable in a local write-ahead log
// before it acknowledges, and the pipeline cleans and delivers them
// exactly once like any other source's records.
//
// # APIs
//
// POST /ingest takes NDJSON (one JSON value per line; blank lines are
// skipped) or one JSON array whose elements are the records, optionally
// gzip-compressed (Content-Encoding: gzip). Every record must be valid
// JSON, or the whole request is refused with 400 and nothing is written.
// The answer is {"records":N,"first":POS,"last":POS}.
//
// POST / with X-Amz-Target Firehose_20150804.PutRecord or
// Firehose_20150804.PutRecordBatch speaks the Amazon Data Firehose JSON
// API (application/x-amz-json-1.1, base64 Data), so an AWS SDK Firehose
// client switches to the sidecar by pointing its endpoint at it. The SigV4
// signature is not verified. Each record's Data is one record, kept
// opaque: one trailing newline is stripped, newlines inside stay in the
// record (the decoder then sees one value, or dead-letters it). The answer
// carries a RecordId per record (its log position), FailedPutCount 0 and
// Encrypted false: a request is appended whole or refused whole.
//
// # Acknowledgement and the write-ahead log
//
// A request is answered 200 only after its records are appended to the
// log and fsynced. One writer goroutine appends every request queued
// while the previous fsync ran and syncs them together (group commit), so
// concurrent requests share one fsync. The log lives in Config.Dir
// (<state_dir>/<pipeline>/wal by convention) as numbered segment files;
// a frame is length, CRC-32C, arrival time (µs, becomes Record.Time) and
// data. On start the torn tail of the last segment (written but never
// acknowledged) is truncated and a new segment is begun.
//
// The log is the source's single lane (Config.Lane, default "http"). A
// record's position packs its segment number and the byte offset of its
// frame in one totally ordered int64:
//
//	Position{Offset: segment<<40 | offset}
//
// so a segment holds at most 1 TiB and the log can go through 2^23
// segments (8 million: 512 TiB at the default 64 MiB segment) in its life.
// Positions never repeat: a new segment number is above every existing
// segment and the committed one. Run resumes after the position the
// Resumer returns; a redo re-reads the same bytes at the same positions,
// since segments are immutable once written. The source implements
// ingest.Committer: when the pipeline has durably committed a position,
// every segment whose records all lie at or before it is deleted (an
// idle, wholly committed active segment is sealed first so it can go).
//
// # Limits and backpressure
//
// Bodies over MaxBodyBytes get 413, records over MaxRecordBytes (1,000
// KiB) 413 on /ingest and 400 InvalidArgumentException on the Firehose
// API, as do batches over 500 records or 4 MiB and malformed JSON; every
// error body is Firehose-shaped: {"__type":"...","message":"..."}. None
// of them writes anything. When an append would take the log past
// WALMaxBytes the request gets 503 ServiceUnavailableException with
// Retry-After and nothing is written or dropped: the client retries
// (the AWS SDKs do so by themselves) once the pipeline has caught up.
// With AuthToken set, requests need "Authorization: Bearer TOKEN" or a
// SigV4 header whose access key id is the token; others get 401.
//
// # Delivery
//
// Every acknowledged record reaches the output exactly once. A record is
// written twice only when a client retries a request whose
// acknowledgement it never received (the append happened, the answer was
// lost): the log cannot tell a retry from new data. Use a dedup transform
// on an event id when that matters.
//
// # Stopping
//
// When Run's context is done the HTTP server stops accepting, in-flight
// requests finish (and are acknowledged only if their fsync completed),
// the writer commits what is queued, and Run returns nil.
package sidecar
