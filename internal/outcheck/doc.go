// Package outcheck reads what streamd wrote — Parquet files through an
// independent reader (Apache Arrow's pqarrow) and dead-letter JSON lines —
// so tests can check output record by record. It is for tests only.
package outcheck
