package telemetry_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/streamd/streamd/internal/telemetry"
)

// writeFiles creates files (path relative to dir → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMemoryProbe(t *testing.T) {
	const gib = int64(1) << 30
	tests := []struct {
		name       string
		configured int64
		env        map[string]string
		proc       string            // /proc/self/cgroup content; "" = file missing
		cgroup     map[string]string // files under the cgroup root
		want       int64
		source     string
		cgroupWant int64
	}{
		{"nothing anywhere", 0, nil, "", nil, 0, "", 0},
		{"config wins over everything", 3 * gib, map[string]string{"GOMEMLIMIT": "1GiB"}, "0::/\n",
			map[string]string{"memory.max": "1073741824\n"}, 3 * gib, telemetry.SourceConfig, gib},
		{"GOMEMLIMIT wins over the cgroup", 0, map[string]string{"GOMEMLIMIT": "768MiB"}, "0::/\n",
			map[string]string{"memory.max": "1073741824\n"}, 768 << 20, telemetry.SourceGOMEMLIMIT, gib},
		{"GOMEMLIMIT off falls through", 0, map[string]string{"GOMEMLIMIT": "off"}, "0::/\n",
			map[string]string{"memory.max": "1073741824\n"}, gib, telemetry.SourceCgroupV2, gib},
		{"malformed GOMEMLIMIT falls through", 0, map[string]string{"GOMEMLIMIT": "lots"}, "0::/\n",
			map[string]string{"memory.max": "1073741824\n"}, gib, telemetry.SourceCgroupV2, gib},
		{"v2 container (own namespace)", 0, nil, "0::/\n",
			map[string]string{"memory.max": "536870912\n"}, 512 << 20, telemetry.SourceCgroupV2, 512 << 20},
		{"v2 unlimited", 0, nil, "0::/\n", map[string]string{"memory.max": "max\n"}, 0, "", 0},
		{"v2 nested: smallest ancestor wins", 0, nil, "0::/a/b\n", map[string]string{
			"a/b/memory.max": "max\n", "a/memory.max": "536870912\n", "memory.max": "1073741824\n",
		}, 512 << 20, telemetry.SourceCgroupV2, 512 << 20},
		{"v2 path not mounted (no namespace): falls back to the root", 0, nil, "0::/system.slice/docker-abc.scope\n",
			map[string]string{"memory.max": "268435456\n"}, 256 << 20, telemetry.SourceCgroupV2, 256 << 20},
		{"no /proc/self/cgroup: the root's limit", 0, nil, "",
			map[string]string{"memory.max": "268435456\n"}, 256 << 20, telemetry.SourceCgroupV2, 256 << 20},
		{"v1 memory controller", 0, nil, "12:cpu,cpuacct:/docker/abc\n5:memory:/docker/abc\n0::/\n", map[string]string{
			"memory/docker/abc/memory.limit_in_bytes": "2147483648\n",
		}, 2 * gib, telemetry.SourceCgroupV1, 2 * gib},
		{"v1 unlimited", 0, nil, "5:memory:/\n", map[string]string{
			"memory/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0, "", 0},
		{"v1 mounted at the root", 0, nil, "", map[string]string{
			"memory.limit_in_bytes": "1073741824\n",
		}, gib, telemetry.SourceCgroupV1, gib},
		{"garbage limit file", 0, nil, "0::/\n", map[string]string{"memory.max": "a lot\n"}, 0, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "cgroup")
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, root, tt.cgroup)
			proc := filepath.Join(dir, "proc-self-cgroup")
			if tt.proc != "" {
				writeFiles(t, dir, map[string]string{"proc-self-cgroup": tt.proc})
			}
			p := telemetry.MemoryProbe{
				CgroupRoot: root, ProcCgroup: proc,
				LookupEnv: func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok },
			}
			got := p.Detect(tt.configured)
			if got.Bytes != tt.want || got.Source != tt.source || got.Cgroup != tt.cgroupWant {
				t.Errorf("Detect(%d) = %+v, want {Bytes:%d Source:%q Cgroup:%d}", tt.configured, got, tt.want, tt.source, tt.cgroupWant)
			}
		})
	}
}

func TestParseGoMemLimit(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1073741824", 1 << 30, true},
		{"512B", 512, true},
		{"64KiB", 64 << 10, true},
		{"768MiB", 768 << 20, true},
		{"2GiB", 2 << 30, true},
		{"1TiB", 1 << 40, true},
		{"off", math.MaxInt64, true},
		{"", 0, false},
		{"1GB", 0, false},
		{"-1", 0, false},
		{"99999999999TiB", 0, false},
	}
	for _, tt := range tests {
		got, err := telemetry.ParseGoMemLimit(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("ParseGoMemLimit(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, telemetry.ErrBadMemLimit) {
			t.Errorf("ParseGoMemLimit(%q) error %v is not ErrBadMemLimit", tt.in, err)
		}
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	orig := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(orig) })

	t.Setenv("GOMEMLIMIT", "") // restored at cleanup
	os.Unsetenv("GOMEMLIMIT")

	if got := telemetry.ApplyMemoryLimit(1000 << 20); got != 900<<20 {
		t.Errorf("ApplyMemoryLimit(1000MiB) = %d, want 90%% = %d", got, 900<<20)
	}
	if got := debug.SetMemoryLimit(-1); got != 900<<20 {
		t.Errorf("runtime limit = %d after ApplyMemoryLimit, want %d", got, 900<<20)
	}
	// No budget: the runtime is left as it is.
	if got := telemetry.ApplyMemoryLimit(0); got != 900<<20 {
		t.Errorf("ApplyMemoryLimit(0) = %d, want the unchanged %d", got, 900<<20)
	}
	// An explicit GOMEMLIMIT is the operator's choice: left alone.
	t.Setenv("GOMEMLIMIT", "2GiB")
	if got := telemetry.ApplyMemoryLimit(1000 << 20); got != 900<<20 {
		t.Errorf("ApplyMemoryLimit with GOMEMLIMIT set = %d, want the unchanged %d", got, 900<<20)
	}
}
