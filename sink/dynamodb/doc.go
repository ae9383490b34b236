// Package dynamodb implements the DynamoDB sink: every row of a batch
// becomes an item of one table, written with BatchWriteItem.
//
// # Type mapping
//
// Attribute names are the schema's column names. Values map exactly, never
// through float64:
//
//	string            S
//	int32, int64      N
//	decimal(p,s)      N, the exact decimal text ("19.90"; DynamoDB stores
//	                  numbers normalised, so it reads back as 19.9)
//	float64           N (shortest round-trip text); NaN, ±Inf and values
//	                  outside DynamoDB's range are dead-lettered
//	bool              BOOL
//	binary            B
//	date              S "YYYY-MM-DD"
//	timestamp         S RFC 3339 with microseconds in UTC,
//	                  "2026-03-14T10:11:12.123456Z" (sorts as time)
//	json              the parsed value: object → M, array → L, string → S,
//	                  number → N (its exact text), bool → BOOL, null → NULL;
//	                  a top-level null is omitted. Malformed JSON and numbers
//	                  of more than 38 digits are dead-lettered.
//	null              the attribute is omitted
//
// json is stored as M/L rather than S so that the nested attributes are
// addressable by DynamoDB expressions and look the same as an item written
// by any other DynamoDB client.
//
// # CDC
//
// When a batch has a string column "op" (as DynamoDB Streams rows do), a
// row whose op is "remove" (any case) becomes a DeleteRequest of its key;
// the op column itself is never written. Within a batch the last row of a
// key wins, so a put then a delete of one key deletes it, and
// BatchWriteItem never sees a key twice in one request.
//
// # Delivery
//
// Writes are idempotent by key: a redo of an intent puts the same items and
// deletes the same keys again, so the table converges to the same state.
// Requests carry at most 25 items and 16 MB; they run Config.Concurrency at a
// time. Throttling, server errors and UnprocessedItems are retried with
// exponential backoff and full jitter until Config.RetryTimeout, after which
// Write fails and nothing is committed: the pipeline redoes the intent. The
// SDK's own retries are turned off per call so that every throttle is
// counted and the deadline holds.
//
// A cancelled or failed Write may leave part of its batch written: each
// item whole, never a torn item (DynamoDB applies every item atomically).
// The redo writes the rest and rewrites the same values, so no reader sees a
// value that is not a row of the stream, and the table ends exact.
//
// Rows DynamoDB would reject for good — a null or empty key, an item over
// 400 KB, an unrepresentable number, malformed JSON — are dead-lettered
// (moved into b.Dead with a reason naming the column) before any request,
// because BatchWriteItem fails a whole request for one bad item.
//
// # Metrics
//
// On Config.Registerer, with a constant "pipeline" label:
//
//	streamd_dynamodb_items_written_total{op="put|delete"}
//	streamd_dynamodb_rows_dead_lettered_total
//	streamd_dynamodb_unprocessed_retries_total
//	streamd_dynamodb_throttles_total
//	streamd_dynamodb_batch_write_duration_seconds (histogram)
package dynamodb
