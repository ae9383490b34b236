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
// value is not null, else the record's source time.//
// # Steps: cleansing, projections, filters
//
// Spec.Steps (and Chain) run a pipeline's transforms list in order after
// decoding, casting and computed columns; each step sees the schema the
// steps before it produced. SplitSteps cuts the list at its first stateful
// step: the stateless prefix runs inside Process (concurrently on chunks),
// the rest in a Chain, so the configured order is kept exactly. Steps work
// column-wise on whole batches:
//
//   - trim / lower / upper: string columns (Unicode white space and case;
//     ASCII has a fast path).
//   - null_if_empty: empty string, binary or json values become null.
//   - default: nulls become a value, cast by the cast rules.
//   - replace: RE2 regexp replacement in a string column ($1 expands).
//   - rename / drop / select: reshape the schema (select also reorders).
//   - parse_time: a string column parsed with explicit formats (strftime
//     like "%d/%m/%Y %H:%M", Go layouts, rfc3339, epoch_s/ms/us) in a
//     time zone becomes a timestamp or date column; a value no format
//     parses dead-letters its row with `column "NAME": cannot parse time`.
//   - filter: as Spec.Filters, at its place in the list.
//
// Nested JSON: a column's From "a.b" reads field b of object a (any depth),
// so flattening `{"a":{"b":1}}` into a column a_b is `{name: a_b, from:
// a.b}`; streamd infer --nested flatten prints exactly such columns. A
// nested object read whole is a json column.
//
// # Stateful steps and the Chain
//
// Chain implements pipeline.Operator. Per lane it keeps the state of its
// stateful steps, saved by Snapshot as "SDC1", the number of stateful
// steps, then each step's identity (its kind and configuration) and state,
// length-prefixed. Restore matches states by identity, so editing one step
// resets only that step's state. Rows a Chain dead-letters carry the row as
// JSON (streamd.AppendRowJSON) as raw.
//
// dedup {keys, ttl, max_keys}: a row whose key (the typed values of the key
// columns; null is a value) was first seen less than ttl earlier is dropped
// and counted in Batch.Deduplicated. Time is event time: the lane's
// watermark is the largest row event time seen; a row without one takes
// the watermark, and a lane that never has event times forgets keys only
// through max_keys. At most max_keys (default 1M) keys are kept per lane as
// 128-bit FNV-1a hashes; beyond that the oldest is evicted first and counted
// in streamd_dedup_evictions_total{pipeline}. A redo decides the same, since
// decisions depend only on the lane's rows in order and the restored state.
//
// outliers {column, method, min, max, k, window, min_samples, by, action}:
// bounds (fixed, stateless), iqr (outside [Q1−k·IQR, Q3+k·IQR], k default
// 1.5) or zscore (|v−mean| > k·σ, k default 3) over the last window (100)
// inlying values of the row's key (by columns), judged once min_samples
// (10) values are known. Outliers never enter the window. Actions: clip to
// the violated bound (rounded inwards for integers and decimals), drop
// (Filtered), dead_letter (`outliers "COL": value V outside [LO, HI]`), or
// flag: a bool column COL_outlier, appended unless declared. Counted in
// streamd_outliers_detected_total{pipeline,column,action}.
//
// # Data quality (DQDL subset)
//
// quality {rules, action} evaluates every rule on every row; per rule,
// streamd_quality_rule_evaluations_total{pipeline,rule,outcome} counts pass
// and fail (rule is "INDEX: rule text", cut at 60 bytes). A row failing
// any rule is dead-lettered (default; reason `quality: failed rules [0:
// IsComplete "customer_id"; ...]`), dropped (Filtered), kept (warn), or
// kept with the failed rules in a string column dq_failed_rules (flag).
//
// Per-row rules:
//
//	IsComplete "col"                  not null
//	IsUnique "col"                    value not seen before on the lane
//	                                  (within unique_ttl / max_keys, as dedup;
//	                                  null passes); makes the step stateful
//	IsPrimaryKey "col"                IsComplete and IsUnique
//	ColumnValues "col" OP V           OP: = != > >= < <=
//	ColumnValues "col" [not] between A and B     inclusive
//	ColumnValues "col" [not] in [V, ...]
//	ColumnValues "col" [not] matches "regex"     whole value, RE2
//	ColumnLength "col" OP N | between | in       length in characters
//	ColumnDataType "col" = "TYPE"     a string column's text parses as TYPE
//	                                  (STRING INTEGER LONG FLOAT DOUBLE DECIMAL
//	                                  BOOLEAN DATE TIMESTAMP); another column
//	                                  conforms when its declared type does;
//	                                  null passes
//	CustomExpression "expr"           an expr-lang boolean over the row, as
//	                                  a filter (a null operand fails)
//	(rule) and (rule), (rule) or (rule)          and binds tighter
//
// Numbers compare exactly with decimal and integer columns (never through
// float64); dates and timestamps compare with "YYYY-MM-DD" / RFC 3339
// literals. A null fails ColumnValues and ColumnLength.
//
// Not supported, because they judge a whole dataset and a stream has no
// end at which to judge it — each is refused with that reason: RowCount,
// RowCountMatch, Completeness and Uniqueness (ratios; use IsComplete and
// IsUnique), UniqueValueRatio, DistinctValuesCount, Mean, Sum,
// StandardDeviation, Entropy, ColumnCorrelation, DataFreshness,
// ReferentialIntegrity, DatasetMatch, AggregateMatch, SchemaMatch,
// ColumnCount, ColumnExists, ColumnNamesMatchPattern, DetectAnomalies,
// FileMatch, CustomSql (use CustomExpression), and "with threshold".
// Rule errors quote the rule and the byte position.
//
// # Schema inferred at run time
//
// Evolver decodes JSON records when no schema is declared: each lane's
// schema starts from the seed columns and grows with the records (a new
// field → a new nullable column, int64 → float64 on a fractional value, a
// value that fits no type → dead letter). Process decodes optimistically
// with the lane's current schema on any decode worker; Settle, called by
// the pipeline in position order, keeps that result when it was decided
// from the settled schema and decides again otherwise, so the outcome is
// a function of the committed lane state and the records alone. Snapshot
// and Restore carry the lane's schema through the checkpoint.
package transform
