// Package checkpointtest is the conformance suite every checkpoint.Store
// implementation must pass (the embedded file store, DynamoDB, ...).
package checkpointtest
