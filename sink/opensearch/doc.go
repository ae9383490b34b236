// Package opensearch implements the OpenSearch sink: every row of a batch
// becomes a document, indexed with the _bulk API.
//
// # Documents
//
// A document's source is the row as streamd.AppendRowJSON renders it — the
// same text the dead letter keeps as raw: fields are the schema's column
// names; decimals are JSON numbers with exactly their scale's digits
// ("19.90"); dates "YYYY-MM-DD"; timestamps RFC 3339 with microseconds in
// UTC; json columns inline; binary standard base64; nulls null. Dynamic
// mapping turns a decimal into a float field: give the index a template
// mapping it as scaled_float or keyword when aggregates must be exact.
//
// # Addressing
//
// The index may be templated from columns ("sales-{transaction_date}",
// "logs-{event_time:2006.01}"). The _id is deterministic: the id columns'
// values (joined by '|' and escaped when there are several), or without id
// columns the lane token and the row's position. A redo of an intent
// therefore addresses the same documents, and within a batch the last row of
// an (index, _id) wins: only that row is sent, which also keeps a retried
// item from overwriting a later one.
//
// # Outcomes
//
// _bulk requests are sized by bytes (5 MiB of NDJSON by default), gzip
// compressed, and answered per item:
//
//	2xx              indexed
//	409              success: the _id is a pure function of the record, so
//	                 the existing document is this row, written by an earlier
//	                 attempt of the same intent (action create) or a
//	                 concurrent write of the same key (action index sends no
//	                 version preconditions)
//	429, 5xx         retried alone, with exponential backoff and full jitter,
//	                 until Config.RetryTimeout; then Write fails
//	400              dead-lettered with the error type and reason (a
//	                 mapper_parsing_exception names the field)
//	anything else    Write fails (401, 403, 404 index_not_found with
//	                 auto-creation off: configuration, not data)
//
// A whole request answered 429/5xx or lost to the network is retried the
// same way; one answered 413 is split in halves, and a single document over
// the cluster's limit is dead-lettered.
//
// A cancelled or failed Write may leave part of its batch indexed: each
// document whole. The redo indexes the same documents under the same _ids,
// so the index converges to exactly the batch.
//
// # Authentication
//
// Basic auth (Config.Username/Password) or AWS SigV4 (Config.SigV4, service
// "es" for Amazon OpenSearch Service or "aoss" for Serverless), signed with
// the SDK's v4 signer over the compressed body.
//
// # Metrics
//
// On Config.Registerer, with a constant "pipeline" label:
//
//	streamd_opensearch_documents_total{outcome="indexed|dead_lettered"}
//	streamd_opensearch_item_retries_total{status="429|5xx"}
//	streamd_opensearch_bulk_requests_total{code="2xx|4xx|5xx|error"}
//	streamd_opensearch_bulk_request_duration_seconds (histogram)
//	streamd_opensearch_bulk_sent_bytes_total
//
// The package opensearchtest holds a protocol-level fake of the cluster for
// tests.
package opensearch
