package telemetry

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestHugePageHeapSkips(t *testing.T) {
	tests := []struct {
		name       string
		n          int64
		mode       string
		overcommit string
		want       string
	}{
		{"no size", 0, "madvise", "0", "no heap size"},
		{"negative size", -1, "madvise", "0", "no heap size"},
		{"mode never", 1 << 20, "never", "0", "mode never"},
		{"strict overcommit", 1 << 20, "madvise", "2", "overcommit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			hp, err := hugePageHeap(tt.n, tt.mode, tt.overcommit, func([]byte) error { called = true; return nil })
			if err != nil {
				t.Fatal(err)
			}
			if called || hp.Bytes != 0 || !strings.Contains(hp.Skipped, tt.want) {
				t.Errorf("advised=%v, %+v; want nothing advised, Skipped mentioning %q", called, hp, tt.want)
			}
		})
	}
}

func TestHugePageHeapRefused(t *testing.T) {
	hp, err := hugePageHeap(4<<20, "madvise", "0", func([]byte) error { return unix.EINVAL })
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "advise huge pages") {
		t.Fatalf("err = %v, want the refusal wrapped", err)
	}
	if hp.Bytes != 0 || hp.Mode != "madvise" {
		t.Errorf("%+v, want the mode and nothing advised", hp)
	}
}

// TestHugePageHeapAdvisesWhereTheHeapGrows runs checkHugePageHeap in a
// child test process, whose heap, like streamd's at start-up, has not yet
// used the addresses the range will take.
func TestHugePageHeapAdvisesWhereTheHeapGrows(t *testing.T) {
	if os.Getenv("STREAMD_HUGE_PAGES_CHILD") == "1" {
		checkHugePageHeap(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHugePageHeapAdvisesWhereTheHeapGrows$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "STREAMD_HUGE_PAGES_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

// checkHugePageHeap checks, against this process's own mappings, that the
// range was not resident when it was advised (the allocation behind it
// must be fresh address space the runtime does not clear, or advising a
// memory limit's worth of heap would fault all of it in at start-up), that
// it carries the huge page flag, and that a later large allocation is
// placed inside it: the point of advising memory the program no longer
// holds.
func checkHugePageHeap(t *testing.T) {
	const n = 256 << 20
	mode := thpMode()
	var rss string
	hp, err := hugePageHeap(n, mode, "0", func(b []byte) error {
		m, err := mapping(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
		if err != nil {
			return err
		}
		rss = m["Rss"]
		return unix.Madvise(b, unix.MADV_HUGEPAGE)
	})
	if mode == "" || mode == "never" {
		// No THP on this kernel: nothing may have been advised.
		if err != nil || hp.Bytes != 0 || hp.Skipped == "" {
			t.Fatalf("THP mode %q: got %+v, %v; want nothing advised and a reason", mode, hp, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var kb int64
	if _, err := fmt.Sscanf(rss, "%d kB", &kb); err != nil {
		t.Fatalf("Rss %q: %v", rss, err)
	}
	// The mapping also holds the heap allocated so far (a few MiB).
	if kb<<10 > n/8 {
		t.Errorf("%d MiB of the mapping holding the %d MiB range were resident when it was advised", kb>>10, n>>20)
	}
	m, err := mapping(hp.Start)
	if err != nil {
		t.Fatal(err)
	}
	if flags := m["VmFlags"]; !strings.Contains(" "+flags+" ", " hg ") {
		t.Errorf("VmFlags of the range at %#x = %q, want hg (MADV_HUGEPAGE)", hp.Start, flags)
	}
	// The allocation may start a few free pages below the range (free
	// runs merge), so all but the first 2MiB of it must lie inside.
	b := make([]byte, 32<<20)
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	hi := lo + uintptr(len(b))
	inside := int64(min(hi, hp.Start+uintptr(hp.Bytes))) - int64(max(lo, hp.Start))
	if inside < int64(len(b))-2<<20 {
		t.Errorf("a 32MiB allocation at [%#x, %#x) has only %d bytes inside the advised range [%#x, %#x)", lo, hi, max(inside, 0), hp.Start, hp.Start+uintptr(hp.Bytes))
	}
}

// mapping returns the /proc/self/smaps fields ("Rss", "VmFlags", ...) of
// the mapping holding addr.
func mapping(addr uintptr) (map[string]string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var m map[string]string
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if _, err := fmt.Sscanf(line, "%x-%x ", &lo, &hi); err == nil && strings.Contains(strings.Fields(line)[0], "-") {
			if m != nil {
				return m, nil
			}
			if lo <= addr && addr < hi {
				m = map[string]string{}
			}
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok && m != nil {
			m[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("no mapping holds %#x", addr)
	}
	return m, nil
}
