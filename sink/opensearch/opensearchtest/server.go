package opensearchtest

import (
	"bytes"
	"compress/gzip"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultMaxBodyBytes is the request body limit when Options.MaxBodyBytes
// is 0: OpenSearch's default http.max_content_length.
const DefaultMaxBodyBytes = 100 << 20

// Options configure a Server.
type Options struct {
	// Username and Password, when Username is set, are the basic-auth
	// credentials every request must carry (401 security_exception
	// otherwise). Default: no authentication.
	Username, Password string
	// Seed seeds the generator that draws item rejections, so a run can be
	// repeated.
	Seed uint64
	// RejectItems is the probability that a bulk item is answered 429
	// es_rejected_execution_exception without being applied (0 to 1).
	RejectItems float64
	// MaxBodyBytes is the largest accepted (decompressed) request body;
	// larger bodies are answered 413. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// Stats counts what a Server has seen.
type Stats struct {
	Requests      int64 // HTTP requests, all endpoints
	BulkRequests  int64 // _bulk requests answered 200
	BulkBytes     int64 // _bulk request bytes as received (compressed when gzip)
	GzipRequests  int64 // requests with a gzip body
	Items         int64 // bulk items answered
	Rejected      int64 // items answered 429
	Conflicts     int64 // items answered 409
	MappingErrors int64 // items answered 400 mapper_parsing_exception
	RequestFaults int64 // whole requests answered with an injected status
	AuthFailures  int64 // requests answered 401
}

// Server is a fake OpenSearch cluster on 127.0.0.1. It is safe for
// concurrent use.
type Server struct {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL string

	srv *http.Server
	ln  net.Listener

	mu        sync.Mutex
	opts      Options
	rng       *rand.Rand
	indices   map[string]*index
	failNext  []int // statuses of the next whole-request faults, in order
	stats     Stats
	autoIDSeq int64
}

type index struct {
	docs    map[string]*doc
	mapping map[string]kind
	seqNo   int64
}

type doc struct {
	source  json.RawMessage
	version int64
	seqNo   int64
}

// New starts a Server and stops it when the test ends.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := Start(o)
	if err != nil {
		t.Fatalf("start opensearch fake: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a Server listening on 127.0.0.1 with a free port; Close
// stops it.
func Start(o Options) (*Server, error) {
	if o.RejectItems < 0 || o.RejectItems > 1 {
		return nil, fmt.Errorf("start opensearch fake: reject probability %v not in [0,1]", o.RejectItems)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start opensearch fake: %w", err)
	}
	s := &Server{
		URL:     "http://" + ln.Addr().String(),
		ln:      ln,
		opts:    o,
		rng:     rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		indices: map[string]*index{},
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // Serve returns ErrServerClosed on Close
	return s, nil
}

// Close stops the server and closes its connections.
func (s *Server) Close() { s.srv.Close() }

// SetRejectItems changes the per-item 429 probability.
func (s *Server) SetRejectItems(p float64) {
	s.mu.Lock()
	s.opts.RejectItems = p
	s.mu.Unlock()
}

// FailNext answers the next n _bulk requests with status (429 or 503, or
// any error status) without applying them.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	for range n {
		s.failNext = append(s.failNext, status)
	}
	s.mu.Unlock()
}

// Stats returns the counts so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Doc returns the source of document id in index.
func (s *Server) Doc(indexName, id string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix := s.indices[indexName]
	if ix == nil {
		return nil, false
	}
	d := ix.docs[id]
	if d == nil {
		return nil, false
	}
	return slices.Clone(d.source), true
}

// Document is one stored document.
type Document struct {
	Index   string
	ID      string
	Version int64
	Source  json.RawMessage
}

// Documents returns every document of the indices matching pattern (a
// comma list of names with * wildcards; "" or "_all" for all), sorted by
// index then id.
func (s *Server) Documents(pattern string) []Document {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Document
	for _, name := range s.match(pattern) {
		for id, d := range s.indices[name].docs {
			out = append(out, Document{Index: name, ID: id, Version: d.version, Source: slices.Clone(d.source)})
		}
	}
	slices.SortFunc(out, func(a, b Document) int {
		if c := strings.Compare(a.Index, b.Index); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Indices returns the names of the existing indices, sorted.
func (s *Server) Indices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.match("")
}

// match returns the sorted names of existing indices matching pattern.
// Callers hold s.mu.
func (s *Server) match(pattern string) []string {
	var out []string
	for name := range s.indices {
		if pattern == "" || pattern == "_all" || pattern == "*" {
			out = append(out, name)
			continue
		}
		for p := range strings.SplitSeq(pattern, ",") {
			if ok, _ := path.Match(p, name); ok {
				out = append(out, name)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	o := s.opts
	s.mu.Unlock()
	if o.Username != "" {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(o.Username)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(o.Password)) != 1 {
			s.count(func(st *Stats) { st.AuthFailures++ })
			w.Header().Set("WWW-Authenticate", `Basic realm="OpenSearch Security"`)
			writeError(w, http.StatusUnauthorized, "security_exception", "Unauthorized")
			return
		}
	}
	segs, err := splitPath(r.URL.EscapedPath())
	if err != nil {
		writeError(w, http.StatusBadRequest, "illegal_argument_exception", err.Error())
		return
	}
	switch {
	case len(segs) == 0:
		s.serveRoot(w, r)
	case segs[len(segs)-1] == "_bulk" && len(segs) <= 2:
		if !methodIs(w, r, http.MethodPost, http.MethodPut) {
			return
		}
		def := ""
		if len(segs) == 2 {
			def = segs[0]
		}
		s.serveBulk(w, r, def)
	case segs[len(segs)-1] == "_count" && len(segs) <= 2:
		if !methodIs(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		pat := ""
		if len(segs) == 2 {
			pat = segs[0]
		}
		s.serveCount(w, pat)
	case segs[len(segs)-1] == "_refresh" && len(segs) <= 2:
		if !methodIs(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		s.mu.Lock()
		n := len(s.indices)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"_shards": map[string]int{"total": 2 * n, "successful": n, "failed": 0}})
	case len(segs) == 3 && segs[1] == "_doc":
		if !methodIs(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		s.serveGet(w, segs[0], segs[2])
	default:
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no handler found for uri [%s] and method [%s]", r.URL.Path, r.Method))
	}
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

func methodIs(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	if slices.Contains(methods, r.Method) {
		return true
	}
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
		fmt.Sprintf("Incorrect HTTP method for uri [%s] and method [%s], allowed: %v", r.URL.Path, r.Method, methods))
	return false
}

// splitPath splits an escaped URL path into unescaped segments.
func splitPath(p string) ([]string, error) {
	var out []string
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" {
			continue
		}
		u, err := urlUnescape(seg)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

func urlUnescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

func (s *Server) serveRoot(w http.ResponseWriter, r *http.Request) {
	if !methodIs(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(http.StatusOK)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name":         "opensearchtest",
		"cluster_name": "opensearchtest",
		"cluster_uuid": "opensearchtest-0000000000",
		"version": map[string]any{
			"distribution":                        "opensearch",
			"number":                              "2.19.0",
			"build_type":                          "tar",
			"lucene_version":                      "9.12.1",
			"minimum_wire_compatibility_version":  "7.10.0",
			"minimum_index_compatibility_version": "7.0.0",
		},
		"tagline": "The OpenSearch Project: https://opensearch.org/",
	})
}

func (s *Server) serveGet(w http.ResponseWriter, indexName, id string) {
	s.mu.Lock()
	ix := s.indices[indexName]
	var d *doc
	if ix != nil {
		d = ix.docs[id]
	}
	var resp map[string]any
	switch {
	case ix == nil:
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "index_not_found_exception", fmt.Sprintf("no such index [%s]", indexName))
		return
	case d == nil:
		resp = map[string]any{"_index": indexName, "_id": id, "found": false}
	default:
		resp = map[string]any{"_index": indexName, "_id": id, "_version": d.version, "_seq_no": d.seqNo,
			"_primary_term": 1, "found": true, "_source": json.RawMessage(slices.Clone(d.source))}
	}
	s.mu.Unlock()
	status := http.StatusOK
	if d == nil {
		status = http.StatusNotFound
	}
	writeJSON(w, status, resp)
}

func (s *Server) serveCount(w http.ResponseWriter, pattern string) {
	s.mu.Lock()
	for p := range strings.SplitSeq(pattern, ",") {
		if p != "" && p != "_all" && !strings.Contains(p, "*") && s.indices[p] == nil {
			s.mu.Unlock()
			writeError(w, http.StatusNotFound, "index_not_found_exception", fmt.Sprintf("no such index [%s]", p))
			return
		}
	}
	names := s.match(pattern)
	n := 0
	for _, name := range names {
		n += len(s.indices[name].docs)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"count": n,
		"_shards": map[string]int{"total": len(names), "successful": len(names), "skipped": 0, "failed": 0}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body) //nolint:errcheck // the client went away
}

// writeError writes an OpenSearch error body.
func writeError(w http.ResponseWriter, status int, typ, reason string) {
	e := map[string]any{"type": typ, "reason": reason}
	writeJSON(w, status, map[string]any{
		"error":  map[string]any{"root_cause": []any{e}, "type": typ, "reason": reason},
		"status": status,
	})
}

// readBody reads the request body, decompressing gzip, up to max bytes;
// n is the number of bytes received.
func readBody(r *http.Request, max int64) (body []byte, n int64, gz bool, err error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, 0, false, err
	}
	n = int64(len(raw))
	if n > max {
		return nil, n, false, errTooLarge
	}
	if !strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		return raw, n, false, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, n, true, fmt.Errorf("gzip body: %w", err)
	}
	body, err = io.ReadAll(io.LimitReader(zr, max+1))
	if err != nil {
		return nil, n, true, fmt.Errorf("gzip body: %w", err)
	}
	if int64(len(body)) > max {
		return nil, n, true, errTooLarge
	}
	return body, n, true, nil
}

var errTooLarge = errors.New("request body too large")
