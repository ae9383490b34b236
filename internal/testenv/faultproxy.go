package testenv

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Faults configures what a FaultProxy injects. Each request draws one fault
// (or none) from the probabilities, which must add up to at most 1.
type Faults struct {
	// Seed seeds the proxy's random generator, so a run can be repeated.
	Seed uint64
	// InternalError answers 500 InternalError without forwarding.
	InternalError float64
	// SlowDown answers 503 SlowDown without forwarding.
	SlowDown float64
	// Slow delays the request by SlowDelay, then forwards it.
	Slow float64
	// SlowDelay is the delay of a slow request (default 200ms).
	SlowDelay time.Duration
	// DropRequest reads part of the request body, then closes the
	// connection without forwarding.
	DropRequest float64
	// DropResponse forwards the request, then writes only part of the
	// peer's response and closes the connection: the peer did the work, the
	// client never learns it.
	DropResponse float64
	// MaxFaults bounds the number of faults injected (0: no bound); after
	// it every request is forwarded untouched.
	MaxFaults int64
	// Match, when set, limits injection to the requests it accepts.
	Match func(r *http.Request) bool
}

// FaultCounts is what a FaultProxy has seen and injected so far.
type FaultCounts struct {
	Requests      int64 // requests received
	Forwarded     int64 // requests passed to the peer (including DropResponse and Slow)
	InternalError int64
	SlowDown      int64
	Slow          int64
	DropRequest   int64
	DropResponse  int64
}

// Injected returns the number of faults injected.
func (c FaultCounts) Injected() int64 {
	return c.InternalError + c.SlowDown + c.Slow + c.DropRequest + c.DropResponse
}

// String renders the counts for test logs.
func (c FaultCounts) String() string {
	return fmt.Sprintf("requests=%d forwarded=%d 500=%d 503=%d slow=%d drop-request=%d drop-response=%d",
		c.Requests, c.Forwarded, c.InternalError, c.SlowDown, c.Slow, c.DropRequest, c.DropResponse)
}

// FaultProxy is an HTTP reverse proxy on 127.0.0.1 in front of one peer
// that injects faults. The Host header is passed through unchanged, so
// request signatures made for the proxy's address stay valid.
type FaultProxy struct {
	// URL is the proxy's base URL, http://127.0.0.1:PORT.
	URL string

	target *url.URL
	faults Faults
	srv    *http.Server
	ln     net.Listener
	tr     *http.Transport

	mu  sync.Mutex
	rng *rand.Rand

	enabled                                                        atomic.Bool
	requests, forwarded, e500, e503, slow, dropReq, dropResp, used atomic.Int64
}

type fault int

const (
	faultNone fault = iota
	fault500
	fault503
	faultSlow
	faultDropRequest
	faultDropResponse
)

// NewFaultProxy starts a proxy in front of target (a base URL such as an
// S3Peer's Endpoint) and stops it when the test ends. Injection starts
// enabled; SetEnabled turns it off and on.
func NewFaultProxy(t testing.TB, target string, f Faults) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("parse proxy target %q: %v", target, err)
	}
	if sum := f.InternalError + f.SlowDown + f.Slow + f.DropRequest + f.DropResponse; sum > 1 {
		t.Fatalf("fault probabilities add up to %v > 1", sum)
	}
	if f.SlowDelay <= 0 {
		f.SlowDelay = 200 * time.Millisecond
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for fault proxy: %v", err)
	}
	p := &FaultProxy{
		URL:    "http://" + ln.Addr().String(),
		target: u,
		faults: f,
		ln:     ln,
		rng:    rand.New(rand.NewPCG(f.Seed, f.Seed+1)),
		tr: &http.Transport{
			Proxy:               nil,
			DisableCompression:  true,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	p.enabled.Store(true)
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(ln)
	t.Cleanup(func() {
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

// SetEnabled turns fault injection on or off; requests are forwarded
// either way.
func (p *FaultProxy) SetEnabled(on bool) { p.enabled.Store(on) }

// Counts returns what the proxy has seen and injected so far.
func (p *FaultProxy) Counts() FaultCounts {
	return FaultCounts{
		Requests:      p.requests.Load(),
		Forwarded:     p.forwarded.Load(),
		InternalError: p.e500.Load(),
		SlowDown:      p.e503.Load(),
		Slow:          p.slow.Load(),
		DropRequest:   p.dropReq.Load(),
		DropResponse:  p.dropResp.Load(),
	}
}

// draw picks the fault for one request and a fraction used to cut bodies.
func (p *FaultProxy) draw(r *http.Request) (fault, float64) {
	if !p.enabled.Load() || (p.faults.Match != nil && !p.faults.Match(r)) {
		return faultNone, 0
	}
	p.mu.Lock()
	x, frac := p.rng.Float64(), p.rng.Float64()
	p.mu.Unlock()
	f := p.faults
	pick := faultNone
	for _, c := range []struct {
		p float64
		f fault
	}{{f.InternalError, fault500}, {f.SlowDown, fault503}, {f.Slow, faultSlow}, {f.DropRequest, faultDropRequest}, {f.DropResponse, faultDropResponse}} {
		if x < c.p {
			pick = c.f
			break
		}
		x -= c.p
	}
	if pick != faultNone && f.MaxFaults > 0 && p.used.Add(1) > f.MaxFaults {
		return faultNone, 0
	}
	return pick, frac
}

// ServeHTTP implements http.Handler.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	f, frac := p.draw(r)
	switch f {
	case fault500:
		p.e500.Add(1)
		io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		s3Error(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
		return
	case fault503:
		p.e503.Add(1)
		io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		s3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		return
	case faultSlow:
		p.slow.Add(1)
		select {
		case <-time.After(p.faults.SlowDelay):
		case <-r.Context().Done():
			return
		}
	case faultDropRequest:
		p.dropReq.Add(1)
		// Read a part of the body (at most what was announced), then cut.
		n := int64(0)
		if r.ContentLength > 0 {
			n = int64(frac * float64(r.ContentLength))
		}
		io.CopyN(io.Discard, r.Body, n)
		hijackClose(w, nil)
		return
	}
	resp, err := p.forward(r)
	if err != nil {
		http.Error(w, "fault proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	p.forwarded.Add(1)
	if f == faultDropResponse {
		p.dropResp.Add(1)
		var buf bytes.Buffer
		resp.Write(&buf) // reads the whole (S3-sized) response
		cut := int(frac * float64(buf.Len()))
		hijackClose(w, buf.Bytes()[:cut])
		return
	}
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (p *FaultProxy) forward(r *http.Request) (*http.Response, error) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = p.target.Scheme
	out.URL.Host = p.target.Host
	out.Host = r.Host // keep the signed Host header
	out.Close = false
	for _, h := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Upgrade"} {
		out.Header.Del(h)
	}
	if r.ContentLength == 0 {
		out.Body = nil
	}
	return p.tr.RoundTrip(out)
}

// hijackClose takes the connection over, writes partial (if any) and
// closes it: the client sees a reset or an unexpected EOF.
func hijackClose(w http.ResponseWriter, partial []byte) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("fault proxy: response writer cannot be hijacked")
	}
	conn, bufrw, err := hj.Hijack()
	if err != nil {
		return
	}
	if len(partial) > 0 {
		bufrw.Write(partial)
		bufrw.Flush()
	}
	if tc, ok := conn.(*net.TCPConn); ok && len(partial) == 0 {
		tc.SetLinger(0) // send RST: a reset mid-request
	}
	conn.Close()
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>%s</Code><Message>%s</Message><RequestId>faultproxy</RequestId></Error>`, code, msg)
}
