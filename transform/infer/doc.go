// Package infer is the crawler behind `streamd infer`: it infers a schema
// from sampled JSON-lines or CSV records and renders it as the config's
// `schema:` list and as Athena CREATE EXTERNAL TABLE DDL for the Parquet
// sink's layout (Hive partitions, STORED AS PARQUET, compression in
// TBLPROPERTIES).
//
// Types widen int32 → int64 → decimal(p,s) → float64; strings holding
// numbers count as numbers (except integers with a leading zero, such as
// zip codes), "YYYY-MM-DD" strings are dates and RFC 3339 strings
// timestamps; conflicting families become string. Nested objects become
// one json column, or with NestedFlatten one column per leaf named a_b and
// read with from: a.b (see transform.ColumnSpec.From).
//
// Not done: schema evolution at run time (one writer per schema
// fingerprint); inference is a one-off command whose output the user
// pastes into the config.
package infer
