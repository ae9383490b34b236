package telemetry

import (
	"os"
	"strings"
)

// HugePages reports what HugePageHeap did.
type HugePages struct {
	// Mode is the kernel's transparent huge page mode ("always",
	// "madvise" or "never"), empty when it cannot be read (no THP support,
	// not Linux).
	Mode string
	// Start and Bytes are the heap address range advised to use huge
	// pages; Bytes is 0 when nothing was advised.
	Start uintptr
	Bytes int64
	// Skipped says why nothing was advised, when nothing was.
	Skipped string
}

// thpEnabledFile holds the kernel's transparent huge page mode, the
// selected one in brackets: "always [madvise] never".
const thpEnabledFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// thpMode reads the kernel's transparent huge page mode; "" when the file
// is missing or unreadable.
func thpMode() string {
	b, err := os.ReadFile(thpEnabledFile)
	if err != nil {
		return ""
	}
	return parseTHPMode(string(b))
}

// parseTHPMode returns the bracketed word of a transparent_hugepage/enabled
// line, or "" if there is none.
func parseTHPMode(s string) string {
	for _, w := range strings.Fields(s) {
		if len(w) > 2 && w[0] == '[' && w[len(w)-1] == ']' {
			return w[1 : len(w)-1]
		}
	}
	return ""
}
