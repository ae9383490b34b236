package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/internal/telemetry"
)

// startServer starts s on a free loopback port and shuts it down at cleanup.
func startServer(t *testing.T, s *telemetry.Server) string {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return "http://" + s.Addr()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestReadinessTransitions(t *testing.T) {
	s := telemetry.NewServer("127.0.0.1:0", prometheus.NewRegistry(), nil)
	base := startServer(t, s)
	var storeDown, sourceDown atomic.Bool
	type step struct {
		name              string
		do                func()
		code              int
		status            string
		failing           []string
		checksInBodyCount int
	}
	steps := []step{
		{name: "no checks", do: func() {}, code: 200, status: "ok", checksInBodyCount: 0},
		{name: "checks pass", do: func() {
			s.AddCheck("checkpoint_store", func(context.Context) error {
				if storeDown.Load() {
					return errors.New("stat state_dir: permission denied")
				}
				return nil
			})
			s.AddCheck("source:sales", func(context.Context) error {
				if sourceDown.Load() {
					return errors.New("dial tcp 127.0.0.1:9092: connection refused")
				}
				return nil
			})
		}, code: 200, status: "ok", checksInBodyCount: 2},
		{name: "store fails", do: func() { storeDown.Store(true) }, code: 503, status: "unavailable", failing: []string{"checkpoint_store"}, checksInBodyCount: 2},
		{name: "both fail", do: func() { sourceDown.Store(true) }, code: 503, status: "unavailable", failing: []string{"checkpoint_store", "source:sales"}, checksInBodyCount: 2},
		{name: "recovered", do: func() { storeDown.Store(false); sourceDown.Store(false) }, code: 200, status: "ok", checksInBodyCount: 2},
		{name: "draining", do: func() { s.SetDraining(true) }, code: 503, status: "draining", checksInBodyCount: 2},
		{name: "draining and failing", do: func() { storeDown.Store(true) }, code: 503, status: "draining", failing: []string{"checkpoint_store"}, checksInBodyCount: 2},
		{name: "back", do: func() { s.SetDraining(false); storeDown.Store(false) }, code: 200, status: "ok", checksInBodyCount: 2},
	}
	for _, st := range steps {
		st.do()
		code, body := get(t, base+"/readyz")
		if code != st.code {
			t.Errorf("%s: /readyz = %d, want %d (%s)", st.name, code, st.code, body)
		}
		var r telemetry.Readiness
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("%s: /readyz body %q is not JSON: %v", st.name, body, err)
		}
		if r.Status != st.status || strings.Join(r.Failing, ",") != strings.Join(st.failing, ",") || len(r.Checks) != st.checksInBodyCount {
			t.Errorf("%s: /readyz body = %+v, want status %q failing %v and %d checks", st.name, r, st.status, st.failing, st.checksInBodyCount)
		}
		for _, f := range r.Failing {
			if r.Checks[f] == "ok" || r.Checks[f] == "" {
				t.Errorf("%s: failing check %s has no error in the body: %+v", st.name, f, r)
			}
		}
		// Liveness is independent of readiness.
		if code, _ := get(t, base+"/healthz"); code != 200 {
			t.Errorf("%s: /healthz = %d, want 200", st.name, code)
		}
	}
}

func TestReadinessCheckTimeout(t *testing.T) {
	s := telemetry.NewServer("127.0.0.1:0", prometheus.NewRegistry(), nil, telemetry.WithCheckTimeout(50*time.Millisecond))
	release := make(chan struct{})
	defer close(release)
	s.AddCheck("stuck", func(context.Context) error { <-release; return nil }) // ignores its context
	s.AddCheck("honest", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	base := startServer(t, s)
	code, body := get(t, base+"/readyz")
	if code != 503 {
		t.Fatalf("/readyz with hanging checks = %d, want 503 (%s)", code, body)
	}
	var r telemetry.Readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Checks["stuck"], "timed out") || !strings.Contains(r.Checks["honest"], "deadline") {
		t.Errorf("checks = %+v, want the stuck one timed out and the honest one past its deadline", r.Checks)
	}
}

func TestServerRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, telemetry.WithoutRuntimeCollectors())
	if err != nil {
		t.Fatal(err)
	}
	m.AddPipeline("sales")
	base := startServer(t, telemetry.NewServer("127.0.0.1:0", reg, nil))
	tests := []struct {
		method, path string
		code         int
		contains     string
	}{
		{"GET", "/metrics", 200, `streamd_pipeline_records_read_total{pipeline="sales"} 0`},
		{"GET", "/healthz", 200, "ok"},
		{"HEAD", "/healthz", 200, ""},
		{"POST", "/metrics", 405, ""},
		{"GET", "/nope", 404, ""},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, base+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.contains) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, resp.StatusCode, body, tt.code, tt.contains)
		}
	}
}

func TestServerBindError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tests := []struct{ name, addr string }{
		{"address in use", ln.Addr().String()},
		{"bad address", "127.0.0.1:notaport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := telemetry.NewServer(tt.addr, prometheus.NewRegistry(), nil)
			err := s.Start(context.Background())
			if err == nil {
				_ = s.Shutdown(context.Background())
				t.Fatalf("Start(%s) succeeded", tt.addr)
			}
			if !strings.Contains(err.Error(), "start http server") {
				t.Errorf("error %q does not say what failed", err)
			}
			if s.Addr() != "" {
				t.Errorf("Addr() = %q after a failed start", s.Addr())
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown after a failed start: %v", err)
			}
		})
	}
}

func TestServerLifecycle(t *testing.T) {
	s := telemetry.NewServer("127.0.0.1:0", prometheus.NewRegistry(), nil)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown before Start: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if err := s.Start(context.Background()); !errors.Is(err, telemetry.ErrServerStarted) {
		t.Errorf("second Start: %v, want ErrServerStarted", err)
	}
	if code, _ := get(t, "http://"+addr+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("server still answers after Shutdown")
	}
}
