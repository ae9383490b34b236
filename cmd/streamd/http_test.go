package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/salesgen"
)

// TestHTTPEndpointsDuringRun scrapes /metrics, /healthz and /readyz of a
// running streamd and checks that the record counters reconcile.
func TestHTTPEndpointsDuringRun(t *testing.T) {
	dir := t.TempDir()
	writeSales(t, dir, 2, 200000, salesgen.Options{FilteredEvery: 40, MalformedEvery: 500})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := salesConfig(t, dir, "{max_records: 5000}")
	data, _ := os.ReadFile(cfg)
	data = []byte(strings.Replace(string(data), "shutdown_timeout: 20s\n", fmt.Sprintf("shutdown_timeout: 20s\nhttp: {listen: %q}\n", addr), 1))
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(streamdBin, "run", "--config", cfg)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := get("/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready; output:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	var read float64
	for read == 0 && time.Now().Before(deadline) {
		code, body := get("/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d", code)
		}
		v := func(name string) float64 {
			m := regexp.MustCompile(`(?m)^` + name + `\{pipeline="sales"\} (\S+)$`).FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("metric %s missing", name)
			}
			f, _ := strconv.ParseFloat(m[1], 64)
			return f
		}
		read = v("streamd_pipeline_records_read_total")
		sum := v("streamd_pipeline_records_written_total") + v("streamd_pipeline_records_filtered_total") +
			v("streamd_pipeline_records_deduplicated_total") + v("streamd_pipeline_records_dead_lettered_total")
		if read != sum {
			t.Fatalf("read %v != written + filtered + deduplicated + dead-lettered %v", read, sum)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if read == 0 {
		t.Fatal("no batch was committed while the run was scraped")
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), `"level":"ERROR"`) {
		t.Fatalf("errors logged:\n%s", out.String())
	}
}
