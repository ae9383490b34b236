package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
)

func TestHealth(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"draining"}`))
	})
	mux.HandleFunc("/slow", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux) // binds 127.0.0.1
	defer srv.Close()

	// A port nothing listens on: bind one, then free it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/healthz"
	ln.Close()

	tests := []struct {
		name   string
		args   []string
		env    string // STREAMD_HTTP_LISTEN
		code   int
		stdout string
		stderr string
	}{
		{"200", []string{"--url", srv.URL + "/healthz"}, "", 0, `200 OK`, `^$`},
		{"503", []string{"--url", srv.URL + "/readyz"}, "", 1, `^$`, `503 Service Unavailable: \{"status":"draining"\}`},
		{"404", []string{"--url", srv.URL + "/nope"}, "", 1, `^$`, `404 Not Found`},
		{"connection refused", []string{"--url", refused}, "", 1, `^$`, `connection refused`},
		{"timeout", []string{"--url", srv.URL + "/slow", "--timeout", "100ms"}, "", 1, `^$`, `deadline exceeded`},
		{"default from STREAMD_HTTP_LISTEN", nil, ":" + port(t, srv.URL), 0, `http://127\.0\.0\.1:\d+/healthz: 200 OK`, `^$`},
		{"bad URL", []string{"--url", "http://[::1"}, "", 2, `^$`, `streamd health:`},
		{"bad timeout", []string{"--timeout", "0s"}, "", 2, `^$`, `--timeout must be positive`},
		{"stray argument", []string{"now"}, "", 2, `^$`, `unexpected argument "now"`},
		{"unknown flag", []string{"--uri", "x"}, "", 2, `^$`, `flag provided but not defined`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("STREAMD_HTTP_LISTEN", tt.env)
			var out, errb bytes.Buffer
			if code := runHealth(tt.args, &out, &errb); code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			if !regexp.MustCompile(tt.stdout).MatchString(out.String()) {
				t.Errorf("stdout %q, want /%s/", out.String(), tt.stdout)
			}
			if !regexp.MustCompile(tt.stderr).MatchString(errb.String()) {
				t.Errorf("stderr %q, want /%s/", errb.String(), tt.stderr)
			}
		})
	}
}

func port(t *testing.T, url string) string {
	t.Helper()
	m := regexp.MustCompile(`:(\d+)$`).FindStringSubmatch(url)
	if m == nil {
		t.Fatalf("no port in %s", url)
	}
	return m[1]
}

func TestDefaultHealthURL(t *testing.T) {
	tests := []struct{ listen, want string }{
		{"", "http://127.0.0.1:9464/healthz"},
		{":9464", "http://127.0.0.1:9464/healthz"},
		{"0.0.0.0:9000", "http://127.0.0.1:9000/healthz"},
		{"[::]:9000", "http://127.0.0.1:9000/healthz"},
		{"127.0.0.1:8080", "http://127.0.0.1:8080/healthz"},
		{"[::1]:8080", "http://[::1]:8080/healthz"},
		{"localhost", "http://localhost/healthz"},
	}
	for _, tt := range tests {
		if got := defaultHealthURL(tt.listen); got != tt.want {
			t.Errorf("defaultHealthURL(%q) = %q, want %q", tt.listen, got, tt.want)
		}
	}
}
