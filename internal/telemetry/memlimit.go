package telemetry

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// GoMemoryLimitRatio is the share of the memory budget that ApplyMemoryLimit
// gives the Go runtime as its soft limit (debug.SetMemoryLimit). The rest
// is headroom for what the runtime limit does not govern or cannot hold
// exactly: memory outside the Go heap's accounting (cgo, mmap'd files), the
// kernel's page cache charged to the container, and overshoot while the
// collector catches up. A higher ratio uses more of the container before
// the GC works harder; a lower one makes an out-of-memory kill less likely
// at the cost of more frequent collections near the limit.
const GoMemoryLimitRatio = 0.9

// unlimited is the threshold above which a cgroup v1 limit means "none"
// (the kernel reports a page-aligned LONG_MAX).
const unlimited = int64(1) << 62

// Memory budget sources, as reported in MemoryBudget.Source.
const (
	SourceConfig     = "config"     // memory_limit in the config file
	SourceGOMEMLIMIT = "GOMEMLIMIT" // the Go runtime's environment variable
	SourceCgroupV2   = "cgroup v2"  // memory.max of the process's cgroup
	SourceCgroupV1   = "cgroup v1"  // memory.limit_in_bytes of the memory controller
)

// MemoryBudget is the memory budget MemoryProbe.Detect found.
type MemoryBudget struct {
	// Bytes is the budget; 0 when none was configured or found.
	Bytes int64
	// Source says where Bytes came from: one of the Source* constants, or
	// "" when Bytes is 0.
	Source string
	// Cgroup is the container's memory limit, 0 when there is none; a
	// caller can warn when a configured budget exceeds it.
	Cgroup int64
}

// MemoryProbe finds the memory budget of the process. The zero value reads
// the real system; tests point it at fake files.
type MemoryProbe struct {
	// CgroupRoot is where the cgroup file system is mounted (default
	// /sys/fs/cgroup).
	CgroupRoot string
	// ProcCgroup is the file that names the process's cgroups (default
	// /proc/self/cgroup); when it is missing, the limits at CgroupRoot
	// itself are used, which is what a container with its own cgroup
	// namespace sees.
	ProcCgroup string
	// LookupEnv reads environment variables (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
}

// MemoryLimit returns the process memory budget in bytes: configured when
// it is positive, else the GOMEMLIMIT environment variable, else the
// container's cgroup memory limit (v2 memory.max, v1
// memory.limit_in_bytes), else 0 (unknown: no budget).
func MemoryLimit(configured int64) int64 {
	return MemoryProbe{}.Detect(configured).Bytes
}

// Detect returns the budget as MemoryLimit does, with where it came from.
func (p MemoryProbe) Detect(configured int64) MemoryBudget {
	cg, cgSource := p.CgroupLimit()
	b := MemoryBudget{Cgroup: cg}
	switch {
	case configured > 0:
		b.Bytes, b.Source = configured, SourceConfig
	case p.gomemlimit() > 0:
		b.Bytes, b.Source = p.gomemlimit(), SourceGOMEMLIMIT
	case cg > 0:
		b.Bytes, b.Source = cg, cgSource
	}
	return b
}

func (p MemoryProbe) lookupEnv(k string) (string, bool) {
	if p.LookupEnv != nil {
		return p.LookupEnv(k)
	}
	return os.LookupEnv(k)
}

// gomemlimit returns GOMEMLIMIT in bytes, 0 when unset, "off" or malformed.
func (p MemoryProbe) gomemlimit() int64 {
	v, ok := p.lookupEnv("GOMEMLIMIT")
	if !ok {
		return 0
	}
	n, err := ParseGoMemLimit(v)
	if err != nil || n == math.MaxInt64 {
		return 0
	}
	return n
}

// ErrBadMemLimit is returned by ParseGoMemLimit for text the Go runtime
// would not accept.
var ErrBadMemLimit = errors.New("malformed memory limit")

// ParseGoMemLimit parses a GOMEMLIMIT value as the Go runtime does: a
// byte count with an optional unit suffix B, KiB, MiB, GiB or TiB, or
// "off" (math.MaxInt64).
func ParseGoMemLimit(s string) (int64, error) {
	if s == "off" {
		return math.MaxInt64, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("parse memory limit %q: %w", s, ErrBadMemLimit)
	}
	return n * mult, nil
}

// CgroupLimit returns the memory limit of the process's cgroup and which
// cgroup version it came from; 0 and "" when there is no limit or no
// cgroup file system. Nested limits are honoured: the smallest limit on
// the path from the process's cgroup up to the root wins.
func (p MemoryProbe) CgroupLimit() (int64, string) {
	root := p.CgroupRoot
	if root == "" {
		root = "/sys/fs/cgroup"
	}
	procFile := p.ProcCgroup
	if procFile == "" {
		procFile = "/proc/self/cgroup"
	}
	v2Path, v1Path := "/", "/"
	if data, err := os.ReadFile(procFile); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			// hierarchy-id:controller-list:cgroup-path
			parts := strings.SplitN(sc.Text(), ":", 3)
			if len(parts) != 3 {
				continue
			}
			if parts[0] == "0" && parts[1] == "" {
				v2Path = parts[2]
			}
			for _, c := range strings.Split(parts[1], ",") {
				if c == "memory" {
					v1Path = parts[2]
				}
			}
		}
	}
	if n := minUpwards(root, v2Path, "memory.max"); n > 0 {
		return n, SourceCgroupV2
	}
	if n := minUpwards(filepath.Join(root, "memory"), v1Path, "memory.limit_in_bytes"); n > 0 {
		return n, SourceCgroupV1
	}
	// Some hosts mount the v1 memory controller at the root itself.
	if n := readLimit(filepath.Join(root, "memory.limit_in_bytes")); n > 0 {
		return n, SourceCgroupV1
	}
	return 0, ""
}

// minUpwards returns the smallest limit in file found in base+cgPath and
// each of its parents up to base; 0 when none is set.
func minUpwards(base, cgPath, file string) int64 {
	var best int64
	dir := filepath.Clean("/" + cgPath)
	for {
		if n := readLimit(filepath.Join(base, dir, file)); n > 0 && (best == 0 || n < best) {
			best = n
		}
		if dir == "/" {
			return best
		}
		dir = filepath.Dir(dir)
	}
}

// readLimit reads a cgroup limit file: a byte count, or "max" / a huge
// value for none (0).
func readLimit(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	s := strings.TrimSpace(string(data))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= unlimited {
		return 0 // "max", or no limit
	}
	return n
}

// ApplyMemoryLimit sets the Go runtime's soft memory limit to
// GoMemoryLimitRatio (90%) of budget and returns the limit now in force.
// It leaves the runtime alone, and returns its current limit, when budget
// is not positive or when GOMEMLIMIT is set in the environment (the
// operator's explicit choice wins; the runtime has already applied it).
func ApplyMemoryLimit(budget int64) int64 {
	return applyMemoryLimit(budget, os.LookupEnv)
}

func applyMemoryLimit(budget int64, lookupEnv func(string) (string, bool)) int64 {
	if _, set := lookupEnv("GOMEMLIMIT"); set || budget <= 0 {
		return debug.SetMemoryLimit(-1)
	}
	limit := int64(float64(budget) * GoMemoryLimitRatio)
	debug.SetMemoryLimit(limit)
	return limit
}
