package window

import (
	"fmt"
	"time"
)

// Reason says why a batch closed; it is a bounded metric label.
type Reason string

// The reasons a batch closes.
const (
	ReasonRecords  Reason = "records"  // max_records reached
	ReasonBytes    Reason = "bytes"    // max_bytes reached
	ReasonAge      Reason = "age"      // max_age elapsed since the batch's first record
	ReasonEnd      Reason = "end"      // the lane ended (file read to the end)
	ReasonRedo     Reason = "redo"     // the batch redoes an open intent exactly
	ReasonShutdown Reason = "shutdown" // the process is draining
	ReasonMemory   Reason = "memory"   // the process-wide memory budget is near
)

// Policy closes a lane's micro-batch at whichever limit comes first.
type Policy struct {
	// MaxRecords closes a batch at this many records read (default 100000).
	MaxRecords int
	// MaxBytes closes a batch at this many raw input bytes (default 64 MiB).
	MaxBytes int
	// MaxAge closes a batch this long after its first record (default 30s);
	// it bounds how stale output can be when input is slow.
	MaxAge time.Duration
}

// Defaults for a zero Policy field.
const (
	DefaultMaxRecords = 100000
	DefaultMaxBytes   = 64 << 20
	DefaultMaxAge     = 30 * time.Second
)

// WithDefaults returns p with zero fields set to the defaults.
func (p Policy) WithDefaults() Policy {
	if p.MaxRecords == 0 {
		p.MaxRecords = DefaultMaxRecords
	}
	if p.MaxBytes == 0 {
		p.MaxBytes = DefaultMaxBytes
	}
	if p.MaxAge == 0 {
		p.MaxAge = DefaultMaxAge
	}
	return p
}

// Validate reports a policy with negative limits.
func (p Policy) Validate() error {
	if p.MaxRecords < 0 || p.MaxBytes < 0 || p.MaxAge < 0 {
		return fmt.Errorf("validate window: limits must not be negative (max_records %d, max_bytes %d, max_age %s)", p.MaxRecords, p.MaxBytes, p.MaxAge)
	}
	return nil
}

// Open tracks the batch a lane is filling.
type Open struct {
	policy  Policy
	records int
	bytes   int
	first   time.Time
}

// NewOpen returns an empty open batch under policy p (defaults applied).
func NewOpen(p Policy) *Open { return &Open{policy: p.WithDefaults()} }

// Room returns how many more records the batch takes before max_records,
// at least 1 (so a caller always makes progress).
func (o *Open) Room() int {
	if n := o.policy.MaxRecords - o.records; n > 0 {
		return n
	}
	return 1
}

// Add counts one record of n raw bytes arriving at now and reports whether
// the batch must close after it, and why.
func (o *Open) Add(n int, now time.Time) (Reason, bool) {
	if o.records == 0 {
		o.first = now
	}
	o.records++
	o.bytes += n
	switch {
	case o.records >= o.policy.MaxRecords:
		return ReasonRecords, true
	case o.bytes >= o.policy.MaxBytes:
		return ReasonBytes, true
	case now.Sub(o.first) >= o.policy.MaxAge:
		return ReasonAge, true
	}
	return "", false
}

// Empty reports whether no record was added since the last Reset.
func (o *Open) Empty() bool { return o.records == 0 }

// Deadline returns when the batch must close by age; ok is false when the
// batch is empty.
func (o *Open) Deadline() (t time.Time, ok bool) {
	if o.records == 0 {
		return time.Time{}, false
	}
	return o.first.Add(o.policy.MaxAge), true
}

// Reset starts a new, empty batch.
func (o *Open) Reset() { o.records, o.bytes = 0, 0 }
