// Package objstore implements sink.ObjectStore over a local directory.
//
// Local makes every object visible whole or not at all: Put writes a
// temporary file in the object's directory (its name starts with a dot and
// never ends in ".parquet" or ".jsonl"), fsyncs it, renames it over the final
// name and fsyncs the directory. A failed or cancelled Put removes its
// temporary file. List never reports temporary files.
//
// The S3 implementation lives in the subpackage s3store, and the acceptance
// suite that every implementation passes in objstoretest.
package objstore
