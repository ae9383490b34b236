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
package s3store
