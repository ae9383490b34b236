package telemetry

import (
	"bufio"
	"errors"
	"fmt"
	"os"
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

// TestHugePageHeapAdvisesWhereTheHeapGrows checks, against this process's
// own mappings, that the advised range carries the huge page flag and
// that a later large allocation is placed inside it: the point of
// advising memory the program no longer holds.
func TestHugePageHeapAdvisesWhereTheHeapGrows(t *testing.T) {
	const n = 256 << 20
	hp, err := HugePageHeap(n)
	if err != nil {
		t.Fatal(err)
	}
	if hp.Mode == "" || hp.Mode == "never" {
		// No THP on this kernel: nothing may have been advised.
		if hp.Bytes != 0 || hp.Skipped == "" {
			t.Fatalf("THP mode %q: got %+v, want nothing advised and a reason", hp.Mode, hp)
		}
		return
	}
	if hp.Bytes == 0 || hp.Start == 0 {
		t.Fatalf("THP mode %q: nothing advised: %+v", hp.Mode, hp)
	}
	flags, err := vmFlags(hp.Start)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Errorf("VmFlags of the range at %#x = %q, want hg (MADV_HUGEPAGE)", hp.Start, flags)
	}
	b := make([]byte, 32<<20)
	at := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if at < hp.Start || at+uintptr(len(b)) > hp.Start+uintptr(hp.Bytes) {
		t.Errorf("a 32MiB allocation at %#x lies outside the advised range [%#x, %#x)", at, hp.Start, hp.Start+uintptr(hp.Bytes))
	}
}

// vmFlags returns the VmFlags line of the mapping holding addr, from
// /proc/self/smaps.
func vmFlags(addr uintptr) (string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if _, err := fmt.Sscanf(line, "%x-%x ", &lo, &hi); err == nil && strings.Contains(strings.Fields(line)[0], "-") {
			in = lo <= addr && addr < hi
			continue
		}
		if in {
			if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok {
				return strings.TrimSpace(rest), nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no mapping holds %#x", addr)
}
