package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/internal/config"
	"github.com/streamd/streamd/internal/telemetry"
)

func TestRedactor(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"none", nil, "password hunter22", "password hunter22"},
		{"every occurrence", []string{"hunter22"}, "a hunter22 b hunter22", "a [REDACTED] b [REDACTED]"},
		{"longest first", []string{"abc", "abcdef"}, "x abcdef y abc", "x [REDACTED] y [REDACTED]"},
		{"short values are not secrets", []string{"ab", ""}, "ab cab", "ab cab"},
		{"inside a URL", []string{"s3cr3t"}, "https://u:s3cr3t@host:9200/_bulk", "https://u:[REDACTED]@host:9200/_bulk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := telemetry.NewRedactor(tt.secrets...).Redact(tt.in); got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	var nilR *telemetry.Redactor
	if got := nilR.Redact("x"); got != "x" {
		t.Errorf("nil Redactor changed text: %q", got)
	}
}

// secretConfig is a config whose secrets come from a password key, a URL
// with user info and a secret-looking environment variable used in an
// ordinary key.
const secretConfig = `state_dir: ./var/state
pipelines:
  - name: search
    source: {type: file, paths: ["data/${API_TOKEN}/*.jsonl"]}
    schema:
      - {name: id, type: string}
    sink:
      type: opensearch
      url: https://admin:Url-Pa55word@search.example.com:9200
      index: sales
      id: [id]
      username: admin
      password: ${OS_PASSWORD}
`

var secretEnv = map[string]string{"OS_PASSWORD": "Key-Pa55word", "API_TOKEN": "tok-8f3a9c"}

func loadSecretConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(secretConfig), "secret.yaml", func(k string) (string, bool) { v, ok := secretEnv[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestConfigSecrets(t *testing.T) {
	cfg := loadSecretConfig(t)
	got := telemetry.ConfigSecrets(cfg)
	for _, want := range []string{"Key-Pa55word", "Url-Pa55word", "tok-8f3a9c"} {
		if !slices.Contains(got, want) {
			t.Errorf("ConfigSecrets = %q, missing %q", got, want)
		}
	}
	// Only the secret parts: the rest of a value stays readable.
	for _, s := range got {
		if strings.Contains(s, "data/") || strings.Contains(s, "search.example.com") {
			t.Errorf("ConfigSecrets returned a whole value %q, want only the secret part", s)
		}
	}
	// What config.Redacted hides, a Redactor from ConfigSecrets hides.
	r := telemetry.NewRedactor(got...)
	if red := r.Redact(fmt.Sprintf("%+v", *cfg)); strings.Contains(red, "Pa55word") || strings.Contains(red, "tok-8f3a9c") {
		t.Errorf("redacted dump still holds a secret: %s", red)
	}
	if telemetry.ConfigSecrets(nil) != nil {
		t.Error("ConfigSecrets(nil) returned secrets")
	}
}

// TestSecretsNeverLeak runs a config with secrets through JSON logging
// (messages, attributes, errors, groups, WithAttrs, the config itself),
// the /metrics output and a failing /readyz answer, and proves no secret
// value appears in any of them.
func TestSecretsNeverLeak(t *testing.T) {
	cfg := loadSecretConfig(t)
	secrets := []string{"Key-Pa55word", "Url-Pa55word", "tok-8f3a9c"}
	red := telemetry.NewRedactor(telemetry.ConfigSecrets(cfg)...)

	var logs bytes.Buffer
	log := slog.New(telemetry.NewRedactingHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}), red))
	sink := cfg.Pipelines[0].Sink
	connErr := fmt.Errorf("write sink: post %s/_bulk: %w", sink.URL, errors.New("connection refused"))

	log.Info("starting with password "+sink.Password, slog.Any("config", cfg), slog.String("url", sink.URL))
	log.With(slog.String("auth", sink.Username+":"+sink.Password)).WithGroup("sink").
		Error("flush failed", slog.Any("error", connErr), slog.Group("req", slog.String("path", cfg.Pipelines[0].Source.Paths[0])),
			slog.Any("headers", map[string][]string{"Authorization": {"Basic " + sink.Password}}),
			slog.Any("raw", []byte("token="+secretEnv["API_TOKEN"])), slog.Duration("took", time.Second))
	log.Debug("config", slog.Any("config", *cfg.Redacted()), slog.String("text", cfg.String()))

	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, telemetry.WithoutRuntimeCollectors())
	if err != nil {
		t.Fatal(err)
	}
	m.AddPipeline(cfg.Pipelines[0].Name)
	m.FlushFailed(cfg.Pipelines[0].Name, cfg.Pipelines[0].Source.Paths[0], connErr)
	srv := telemetry.NewServer("127.0.0.1:0", reg, log, telemetry.WithRedactor(red))
	srv.AddCheck("sink:search", func(context.Context) error { return connErr })
	base := startServer(t, srv)
	_, metrics := get(t, base+"/metrics")
	code, ready := get(t, base+"/readyz")

	outputs := map[string]string{"logs": logs.String(), "metrics": metrics, "readyz": ready}
	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s leak %q:\n%s", name, s, out)
			}
		}
	}
	// Make sure the outputs carry what was redacted, not nothing.
	if n := strings.Count(logs.String(), telemetry.RedactedMark); n < 6 {
		t.Errorf("logs hold %d redaction marks, want at least 6:\n%s", n, logs.String())
	}
	if code != 503 || !strings.Contains(ready, "connection refused") || !strings.Contains(ready, "[REDACTED]") {
		t.Errorf("/readyz = %d %s, want 503 naming the redacted error", code, ready)
	}
	if !strings.Contains(metrics, `streamd_sink_write_failures_total{pipeline="search"} 1`) {
		t.Errorf("/metrics lacks the failure count:\n%s", metrics)
	}
	// Values without secrets keep their types; records stay valid JSON.
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		if sink, ok := rec["sink"].(map[string]any); ok {
			if took, ok := sink["took"].(float64); !ok || took != float64(time.Second) {
				t.Errorf("duration attribute changed: %v", sink["took"])
			}
			if _, ok := sink["headers"].(map[string]any); !ok {
				t.Errorf("a redacted map lost its structure: %v", sink["headers"])
			}
		}
		if c, ok := rec["config"].(map[string]any); ok && rec["msg"] != "config" {
			if c["StateDir"] != "./var/state" {
				t.Errorf("redacted config lost its other fields: %v", c)
			}
		}
	}
}

func TestRedactingHandlerWithoutSecrets(t *testing.T) {
	var a, b bytes.Buffer
	fixed := time.Unix(0, 0)
	opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, at slog.Attr) slog.Attr {
		if at.Key == slog.TimeKey {
			return slog.Time(slog.TimeKey, fixed)
		}
		return at
	}}
	plain := slog.New(slog.NewJSONHandler(&a, opts))
	wrapped := slog.New(telemetry.NewRedactingHandler(slog.NewJSONHandler(&b, opts), telemetry.NewRedactor()))
	for _, l := range []*slog.Logger{plain, wrapped} {
		l.With("k", 1).WithGroup("g").Info("m", slog.Any("err", errors.New("e")), slog.Int("n", 3))
	}
	if a.String() != b.String() {
		t.Errorf("with no secrets the output changed:\n%s\n%s", a.String(), b.String())
	}
	if !wrapped.Enabled(context.Background(), slog.LevelInfo) || wrapped.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("Enabled does not follow the wrapped handler")
	}
}
