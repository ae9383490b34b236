package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultCheckTimeout bounds each readiness check of a /readyz request.
const DefaultCheckTimeout = 2 * time.Second

// ErrServerStarted is returned by Start when the server was started before.
var ErrServerStarted = errors.New("server already started")

// Server is the HTTP listener for operations:
//
//	/metrics  Prometheus text exposition of the injected gatherer
//	/healthz  200 while the process runs (liveness)
//	/readyz   200 when every readiness check passes and the process is not
//	          draining; 503 with a JSON body naming the failing checks
//
// Start binds and serves on one goroutine; Shutdown stops it and waits for
// it. A Server is started at most once.
type Server struct {
	addr         string
	log          *slog.Logger
	redact       *Redactor
	checkTimeout time.Duration
	handler      http.Handler

	mu       sync.Mutex
	checks   map[string]func(context.Context) error
	srv      *http.Server
	ln       net.Listener
	served   chan struct{} // closed when the serve goroutine returned
	draining atomic.Bool
}

// ServerOption configures NewServer.
type ServerOption func(*Server)

// WithRedactor runs readiness check errors through r before they are put
// in /readyz answers or logged (default: none). Use the Redactor built
// from ConfigSecrets, so that an error quoting a connection string cannot
// leak a password.
func WithRedactor(r *Redactor) ServerOption { return func(s *Server) { s.redact = r } }

// WithCheckTimeout bounds each readiness check (default
// DefaultCheckTimeout, 2s). Keep it below the probe's own timeout: a check
// that times out counts as failing.
func WithCheckTimeout(d time.Duration) ServerOption {
	return func(s *Server) {
		if d > 0 {
			s.checkTimeout = d
		}
	}
}

// NewServer returns a server for addr (host:port; port 0 picks a free one)
// that exposes g on /metrics. A nil logger discards. It does no I/O.
func NewServer(addr string, g prometheus.Gatherer, logger *slog.Logger, opts ...ServerOption) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{addr: addr, log: logger, checkTimeout: DefaultCheckTimeout, checks: map[string]func(context.Context) error{}}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      promLogger{s.log},
		ErrorHandling: promhttp.ContinueOnError, // one broken collector must not hide the rest
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	s.handler = mux
	return s
}

// Handler returns the server's routes, for mounting elsewhere or testing.
func (s *Server) Handler() http.Handler { return s.handler }

// AddCheck registers a readiness check; /readyz fails while fn returns an
// error. fn gets a context bounded by the check timeout and is called
// concurrently with other checks and other requests. Adding a check under
// an existing name replaces it.
func (s *Server) AddCheck(name string, fn func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = fn
}

// SetDraining marks the process as draining (on SIGTERM): /readyz answers
// 503 from then on, whatever the checks say, so load balancers and
// orchestrators stop counting on it while it finishes its work. /healthz
// still answers 200.
func (s *Server) SetDraining(draining bool) { s.draining.Store(draining) }

// Start binds addr and serves on a new goroutine until Shutdown. It
// returns the bind error (address in use, permission) instead of serving.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return fmt.Errorf("start http server on %s: %w", s.addr, ErrServerStarted)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("start http server: %w", err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.srv, s.ln, s.served = srv, ln, make(chan struct{})
	go func() {
		defer close(s.served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", slog.String("addr", ln.Addr().String()), slog.String("error", err.Error()))
		}
	}()
	s.log.Info("http server listening", slog.String("addr", ln.Addr().String()))
	return nil
}

// Addr returns the address the server is bound to ("" before Start); with
// port 0 it names the port picked.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting connections, waits for requests in flight until
// ctx is done (then closes them), and waits for the serve goroutine to
// return. It is a no-op before Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, served := s.srv, s.served
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, srv.Close())
	}
	<-served
	if err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	return nil
}

// Readiness is the JSON body of a /readyz answer.
type Readiness struct {
	// Status is "ok", "draining" or "unavailable".
	Status string `json:"status"`
	// Draining reports whether SetDraining(true) was called.
	Draining bool `json:"draining"`
	// Failing names the failing checks, sorted.
	Failing []string `json:"failing,omitempty"`
	// Checks maps every check's name to "ok" or its error.
	Checks map[string]string `json:"checks"`
}

// Ready runs every readiness check, concurrently, each bounded by the
// check timeout, and reports the outcome.
func (s *Server) Ready(ctx context.Context) Readiness {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	fns := make([]func(context.Context) error, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fns = append(fns, s.checks[n])
	}
	s.mu.Unlock()

	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, s.checkTimeout)
			defer cancel()
			errs[i] = runCheck(cctx, fn)
		}()
	}
	wg.Wait()

	r := Readiness{Status: "ok", Draining: s.draining.Load(), Checks: make(map[string]string, len(names))}
	for i, n := range names {
		if errs[i] == nil {
			r.Checks[n] = "ok"
			continue
		}
		r.Checks[n] = s.redact.Redact(errs[i].Error())
		r.Failing = append(r.Failing, n)
	}
	switch {
	case r.Draining:
		r.Status = "draining"
	case len(r.Failing) > 0:
		r.Status = "unavailable"
	}
	return r
}

// runCheck runs fn, returning ctx's error when fn outlives it, so a check
// that ignores its context cannot hold a /readyz answer past the timeout.
func runCheck(ctx context.Context, fn func(context.Context) error) error {
	done := make(chan error, 1) // buffered: a late fn does not block forever
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("check timed out: %w", ctx.Err())
	}
}

func (s *Server) readyz(w http.ResponseWriter, req *http.Request) {
	r := s.Ready(req.Context())
	code := http.StatusOK
	if r.Status != "ok" {
		code = http.StatusServiceUnavailable
		if len(r.Failing) > 0 {
			s.log.Warn("not ready", slog.Any("failing", r.Failing), slog.Bool("draining", r.Draining))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(r)
}

// promLogger routes promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Error("serve metrics", slog.String("error", fmt.Sprint(v...)))
}
