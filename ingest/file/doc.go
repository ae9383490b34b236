// Package file is the file source: it replays JSON-lines or CSV files,
// local or in S3, plain or gzip-compressed, each file being one lane whose
// positions are byte offsets of line starts (in the uncompressed stream), so
// a restart resumes mid-file.
//
// Records are lines. Blank lines are skipped. A line longer than the
// record size limit is handed on with Record.Err set (its first
// MaxRecordSize bytes as raw), so the pipeline dead-letters it; a read error
// in the middle of a file (a corrupt gzip stream, say) ends that lane with a
// dead-letter record naming the error and the offset, and is logged. CSV
// files must start with a header line, which every chunk of the lane
// carries; quoted CSV fields must not contain line breaks.
//
// Resuming in the middle of a plain JSON-lines file (after a restart, or
// when an S3 transfer broke) starts reading at the last record handed on:
// a seek for a local file, a ranged GET for a store that implements
// RangeReader (s3store does). Gzip streams and CSV files (for the header)
// are read from the start and skipped to the position.
//
// With Config.Follow the source tails literal local JSON-lines files as
// they grow, through rotation by rename-and-create and by copytruncate:
// positions carry a per-file generation (Position.Seq) plus the byte
// offset, and a small state file maps generations to file identities. The
// design and its limits are described at the top of follow.go.
package file
