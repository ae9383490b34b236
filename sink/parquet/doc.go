// Package parquet encodes streamd batches as Parquet files and implements the
// Parquet sink.
//
// # Type mapping
//
// Every column is OPTIONAL, so nulls round-trip in every type. The mapping is
// chosen so that Athena, Spark, DuckDB and Arrow read the files without
// options:
//
//	string          BYTE_ARRAY  STRING (UTF8), RLE_DICTIONARY encoded
//	json            BYTE_ARRAY  STRING (UTF8), plain: the JSON logical type is
//	                            not read as text by every engine, STRING is
//	binary          BYTE_ARRAY  (no annotation)
//	bool            BOOLEAN
//	int32           INT32
//	int64           INT64
//	float64         DOUBLE
//	decimal(p≤9,s)  INT32                    DECIMAL(p,s)
//	decimal(p≤18,s) INT64                    DECIMAL(p,s)
//	decimal(p>18,s) FIXED_LEN_BYTE_ARRAY(16) DECIMAL(p,s), big-endian two's complement
//	date            INT32 DATE
//	timestamp       INT64 TIMESTAMP(MICROS, isAdjustedToUTC=true)
//
// Decimals of precision 9 or less use INT32, as the Parquet format recommends
// and as Athena (Trino), Spark and DuckDB read. Columns keep the schema's
// order. Data pages are version 1 (what parquet-mr, Spark and pyarrow write by
// default); column chunks carry min/max statistics and page indexes.
// Dictionaries that outgrow [DictionaryMaxBytes] fall back to plain encoding,
// as parquet-mr does, so high-cardinality strings do not carry a huge
// dictionary.
//
// # Determinism
//
// An [Encoder] writes a pure function of the rows it is given: the same rows
// give the same bytes. Files carry no timestamps, host names or random ids.
//
// # Sink
//
// [Sink] partitions a batch Hive style (col=value/, values escaped like Hive
// and Spark, null or empty as __HIVE_DEFAULT_PARTITION__; the partition
// columns are not stored in the files), encodes each partition in parallel and
// puts it into a [sink.ObjectStore] under a name derived only from the intent:
//
//	<partition path>/<pipeline>-<lane token>-<from>-<to>.parquet
//
// so a redo of the same intent rewrites the same objects byte for byte.
package parquet
