// Package opensearchtest is a protocol-level fake of an OpenSearch cluster
// for tests: an HTTP server on 127.0.0.1 that speaks the parts of the REST
// API a bulk writer and its tests use, faithfully enough that the official
// opensearch-go client works against it.
//
// # Endpoints
//
//	HEAD /  GET /                      cluster info (distribution "opensearch")
//	POST|PUT /_bulk  /{index}/_bulk    NDJSON bulk: index, create, update, delete
//	GET /{index}/_doc/{id}             one document
//	GET|POST /_count  /{index}/_count  document count; comma lists and * wildcards
//	GET|POST /_refresh  /{index}/_refresh
//
// The bulk endpoint follows the real one: an action/metadata line, then a
// source line (none for delete); the body must end with a newline; request
// bodies may be gzip-compressed (Content-Encoding: gzip); items are answered
// in order, each with its own status and, when it failed, error{type,
// reason}; "errors" is true when any item failed; "took" is the time spent.
// index answers 201 created or 200 updated, create answers 409
// version_conflict_engine_exception for an existing id, update needs the
// document (or doc_as_upsert / upsert) and otherwise answers 404
// document_missing_exception, delete of a missing document answers 404
// not_found without an error. Documents are visible at once (every write
// refreshes), so _refresh is accepted and does nothing.
//
// # Dynamic mapping
//
// Each index maps a field (a dotted path into nested objects) to the kind
// of the first non-null value it sees: object, text, long, float or
// boolean. A later value of an incompatible kind fails its item with 400
// mapper_parsing_exception and leaves the document and the mapping
// unchanged. Coercions follow OpenSearch: numbers and booleans into a text
// field, numeric strings into numeric fields, "true"/"false" into boolean
// fields are accepted; an object into a concrete field or a concrete value
// into an object field are not. Date detection is not simulated: strings
// always map to text.
//
// # Faults
//
// [Options] and the Server's setters inject what a loaded cluster does: a
// per-item 429 es_rejected_execution_exception with a probability drawn from
// a seeded generator, whole-request 429 or 503 answers, a 413 for a body
// over the size limit, and 401 without the configured basic-auth
// credentials.
package opensearchtest
