// Package deadletter is the sink for records a pipeline could not write.
//
// For each intent with dead letters it writes one object of JSON lines,
//
//	{"pipeline":"sales","lane":"data/a.jsonl","position":"120","error":"cast amount: ...","raw":"{...}"}
//
// named "<pipeline>-<lane token>-<from>-<to>.jsonl" from the intent alone,
// through any sink.ObjectStore (a local directory or an S3 prefix). The raw
// record is a JSON string; a record that is not valid UTF-8 also carries its
// exact bytes in "raw_base64". The bytes are a pure function of the intent
// and the batch's dead letters, so a redo rewrites the same object.
package deadletter
