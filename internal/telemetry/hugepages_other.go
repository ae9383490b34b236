//go:build !linux

package telemetry

// HugePageHeap does nothing outside Linux: transparent huge pages are a
// Linux feature. See the Linux build for what it does there.
func HugePageHeap(n int64) (HugePages, error) { return HugePages{}, nil }
