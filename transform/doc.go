// Package transform turns raw records into typed, columnar batches: it
// decodes JSON lines or CSV lines, casts every value to its declared column
// type, computes expression columns, applies filters, and dead-letters what
// fails — one Program compiled from a Spec, run by Process on chunks of a
// lane's records (concurrently, one call per CPU).
//
// # Decoding
//
// jsonl: each record is one JSON object. A hand-written scanner validates
// the whole line and picks out the fields the schema needs (matching a
// column's Name, or its From; "a.b" addresses field b of object a) without
// allocating. A record that is not exactly one JSON object is dead-lettered
// as "malformed JSON at byte N: ...". A repeated key takes its last value.
//
// csv: each record is one line, split per RFC 4180 (quoted fields may hold
// commas and doubled quotes, not line breaks; a trailing CR is dropped).
// The lane's header line names the fields; columns are matched by name and
// extra fields are ignored. A line with another field count than the header
// is malformed.
//
// # Nulls
//
// A missing field, a JSON null and an empty CSV field are null. A quoted
// empty CSV field ("") is the empty string in a string column and null in
// any other.
//
// # Cast rules
//
// A value that cannot be cast dead-letters its record with
// `column "NAME": cannot cast VALUE to TYPE: why`.
//
//   - string: a JSON string (unescaped); a number, boolean, object or array
//     keeps its JSON text.
//   - int32, int64: a number or numeric string; "3.0" and 1e3 are accepted
//     when integral; a fraction or an out-of-range value is an error.
//   - float64: a number or numeric string; NaN and infinities are errors.
//   - decimal(p,s): a number or numeric string ("12.3", "-0.5", "1e3"),
//     converted exactly (never through float64), rounded half-up to s
//     digits; a value needing more than p digits is an error.
//   - bool: true/false, "true"/"false" (any case), 0/1, "0"/"1".
//   - date: "YYYY-MM-DD", or an RFC 3339 timestamp whose UTC date is taken.
//     Numbers are errors.
//   - timestamp: RFC 3339 text ("2026-03-14T10:11:12.123Z", offsets
//     ±HH:MM; 'T', 't' or a space between date and time; a missing offset
//     means UTC; fraction digits beyond µs are truncated; a bare date is its
//     midnight UTC), or an epoch number, as a JSON number or numeric string:
//     |n| < 1e11 is seconds, |n| < 1e14 milliseconds, otherwise
//     microseconds (fractions allowed, rounded half-up to µs). Stored as µs
//     since the epoch, UTC.
//   - json: the value's raw JSON text (a string keeps its quotes); a CSV
//     field must be valid JSON.
//   - binary: a standard base64 string.
//
// # Computed columns and filters
//
// A column with Expr is computed, in column order, with
// github.com/expr-lang/expr over the row's columns: every input column and
// every computed column before it. Filters run after all computed columns,
// in order; a row is kept only if each is true.
//
// In expressions, decimal columns are exact decimals: + - * / % and the
// comparisons between decimals, integers and float literals never go
// through float64 ("/" keeps 24 fractional digits, and also makes integer
// division exact: 3 / 2 is 1.5). Integer + - * overflowing int64 is an
// error. A computed value is cast to its column by the cast rules above;
// decimals are rounded half-up to the column's scale. Common expressions
// (column references, literals, + - *, comparisons, and/or/not) run
// vectorised over whole columns with scaled-int64 arithmetic; a row that
// would overflow there is recomputed by the expr VM with arbitrary
// precision, so the result never depends on the path.
//
// Null handling: if a column an expression reads is null in a row, a
// computed column is null and a filter is false (the row is filtered) —
// unless the expression mentions nil or ?? (as in `quantity ?? 0`), in
// which case it sees nulls as nil.
//
// An expression that fails for a row (division by zero, overflow, a result
// that does not fit the column) dead-letters the row with
// `column "NAME": why` or `filter "EXPR": why`; the dead letter's raw is the
// original record.
//
// # Batches
//
// Process notes every record read (b.NoteRead), so that b.Accounted()
// holds: Read = rows + Filtered + dead letters. Each row's event time is
// the value of a timestamp column named event_time when it has one and the
// value is not null, else the record's source time.
package transform
