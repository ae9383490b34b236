package telemetry

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// HugePageHeap asks the kernel to back the first n bytes of heap the Go
// runtime will use with transparent huge pages, as the JVM's
// -XX:+UseTransparentHugePages does for its heap. Call it once, early,
// before the heap has grown; n is normally the Go memory limit.
//
// The Go runtime maps its heap with small pages and never advises huge
// ones, so on a host whose THP mode is "madvise" every 4 KiB of heap costs
// a page fault the first time it is touched. A batch pipeline touches its
// whole peak heap within seconds of starting; on virtual machines a fault
// costs several microseconds (~13 µs on the project's VM), and the
// Kafka → Parquet benchmark spent about a third of its CPU on them. With
// huge pages the same heap takes about 1/500 of the faults.
//
// How: it allocates an n-byte slice, which makes the runtime map n bytes
// of fresh heap address space without touching it; advises that range
// MADV_HUGEPAGE; drops the slice and returns the memory to the OS
// (debug.FreeOSMemory, a GC of a still tiny heap). The mapping keeps the
// advice, and the runtime's allocator reuses the lowest free addresses
// first, so later allocations land in the advised range. Nothing becomes
// resident until used.
//
// Trade-offs: memory the runtime hands back inside the range may be
// collapsed into huge pages again by the kernel's khugepaged, so the
// resident heap can stay closer to its peak than with small pages; it
// stays within the range, that is within n. And a fault that finds no free
// 2 MiB page may stall while the kernel compacts memory (THP defrag
// "madvise"). Under THP mode "never" it does nothing; under "always" the
// heap already gets huge pages and the advice changes nothing.
//
// n is capped at half the machine's RAM. It does nothing (and says why in
// Skipped) for n <= 0, under THP mode "never", and under strict overcommit
// (vm.overcommit_memory=2), where mapping n bytes up front could fail and
// the runtime cannot survive a failed heap mapping. An error means the
// kernel refused the advice (THP not built in); the process runs as
// before.
func HugePageHeap(n int64) (HugePages, error) {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil && si.Totalram > 0 {
		n = min(n, int64(si.Totalram)*int64(si.Unit)/2)
	}
	overcommit, _ := os.ReadFile("/proc/sys/vm/overcommit_memory")
	return hugePageHeap(n, thpMode(), strings.TrimSpace(string(overcommit)), func(b []byte) error {
		return unix.Madvise(b, unix.MADV_HUGEPAGE)
	})
}

func hugePageHeap(n int64, mode, overcommit string, advise func([]byte) error) (HugePages, error) {
	hp := HugePages{Mode: mode}
	switch {
	case n <= 0 || int64(int(n)) != n:
		hp.Skipped = "no heap size to advise"
	case mode == "never":
		hp.Skipped = "transparent huge pages are disabled (mode never)"
	case overcommit == "2":
		hp.Skipped = "strict overcommit (vm.overcommit_memory=2)"
	}
	if hp.Skipped != "" {
		return hp, nil
	}
	start, err := adviseFresh(int(n), advise)
	// The slice is garbage now: collect it and release its (untouched)
	// pages, so the runtime counts the range as free and unbacked.
	debug.FreeOSMemory()
	if err != nil {
		return hp, fmt.Errorf("advise huge pages for %d bytes of heap: %w", n, err)
	}
	hp.Start, hp.Bytes = start, n
	return hp, nil
}

// adviseFresh allocates n bytes of heap, which the runtime maps fresh and
// does not touch, and passes them to advise; the slice is dropped on return.
func adviseFresh(n int, advise func([]byte) error) (uintptr, error) {
	b := make([]byte, n)
	return uintptr(unsafe.Pointer(unsafe.SliceData(b))), advise(b)
}
