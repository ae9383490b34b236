// Package parquet encodes streamd batches as Parquet files and implements the
// Parquet sink.
//
// # Type mapping
//
// Every column is OPTIONAL, so nulls round-trip in every type. The mapping is
// chosen so that Athena, Spark, DuckDB and Arrow read the files without
// options:
//
//	string          BYTE_ARRAY  STRING (UTF8), dictionary encoded unless high-cardinality
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
// default); column chunks carry min/max statistics, page statistics and page
// indexes. Wide decimals get min/max in signed order (parquet-go alone would
// order them as unsigned bytes and mislead predicate pushdown).
//
// A string column is dictionary encoded (RLE_DICTIONARY with a dictionary
// page) when at most half of a fixed sample of up to 2048 of its values are
// distinct; otherwise it is written PLAIN, which is where parquet-mr ends up
// after its dictionary overflows, without paying for the dictionary first.
// Dictionaries that still outgrow [DictionaryMaxBytes] fall back to plain
// encoding for the rest of the column chunk. The choice depends only on the
// rows, so output stays deterministic. Snappy uses the standard Snappy block
// encoder (not the slower "better" mode parquet-go picks by default).
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
// so a redo of the same intent rewrites the same objects byte for byte. At
// most GOMAXPROCS files are encoded at once, whatever the number of lanes
// flushing together: each encoder holds its column buffers and output, and
// more than GOMAXPROCS cannot run at once anyway.
//
// # File size
//
// A partition whose estimated size exceeds Options.TargetFileBytes (128 MiB
// by default) is split into contiguous runs of rows of about equal estimated
// size, one file each, named
//
//	<partition path>/<pipeline>-<lane token>-<from>-<to>-p0001.parquet
//
// and -p0002 and so on; a partition that fits keeps the plain name. The
// estimate is computed from the column vectors (value widths, byte lengths,
// one byte per definition level), never from timing, so a split is a pure
// function of the batch and the options. Row groups are closed at
// Options.RowGroupRows rows or Options.RowGroupBytes estimated bytes (64 MiB
// by default), whichever comes first. Since the estimate is of uncompressed
// values, compressible data gives files smaller than the target.
//
// Files estimated at 16 MiB or more are encoded straight into the object
// store's Put through a pipe (the S3 store turns that into a multipart
// upload), so the sink's memory is bounded by the row group being built and
// the store's part buffers, not by the file. An encoding error closes the
// pipe with the error, which fails the Put, and the store shows no object.
package parquet
