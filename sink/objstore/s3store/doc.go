// Package s3store implements sink.ObjectStore over an S3 bucket prefix with
// aws-sdk-go-v2.
//
// Put streams through the SDK's upload manager: one PutObject for small
// objects, a multipart upload for large ones. S3 makes an object visible
// only when PutObject or CompleteMultipartUpload succeeds, so a failed or
// cancelled Put never exposes a partial object. A failed multipart upload is
// aborted (with a context detached from the caller's, so a cancelled Put is
// cleaned up too), and uploads orphaned by a lost CreateMultipartUpload
// response are found and aborted, so no parts are left behind.
//
// Configuration follows the SDK's default chain (environment, shared files,
// ECS task role); a custom endpoint comes from the standard
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL variables, and Open switches to
// path-style addressing when one is set (as MinIO needs). Requests are
// retried by the SDK's standard retryer with more attempts, on 5xx,
// throttling (503 SlowDown) and connection errors.
//
// WithSSE requests SSE-S3 or SSE-KMS (with an optional key and S3 Bucket
// Key) on every PutObject and CreateMultipartUpload. WithIfNoneMatch makes
// every Put conditional on the key not existing (If-None-Match: *): an
// object is never overwritten, and on 412 the existing object is compared
// (by SHA-256, the input hashed while it streamed) with what was to be
// written: the same bytes are a redo and succeed, other bytes fail with
// ErrObjectDiffers.
package s3store
