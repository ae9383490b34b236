package opensearch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/klauspost/compress/gzip"

	"github.com/streamd/streamd"
)

// encoded is the NDJSON of every document of a Write: item k is
// buf[offs[k]:offs[k+1]] (action line and source line) for row rows[k].
type encoded struct {
	buf  []byte
	offs []int
	rows []int
}

// prepare addresses every row of b, de-duplicates by (index, _id) keeping
// the last row, and encodes the bulk items. Rows that cannot be addressed
// are returned as dead.
func (s *Sink) prepare(p *plan, b *streamd.Batch) (*encoded, []deadRow) {
	var dead []deadRow
	type ref struct{ row, index, id int } // index/id: offsets into names
	var names []byte
	var refs []ref
	byKey := make(map[string]int, b.Len())
	laneToken := ""
	if len(p.idCols) == 0 {
		laneToken = streamd.LaneToken(b.Lane)
	}
	var key []byte
	for i := range b.Len() {
		start := len(names)
		var col string
		var ok bool
		names, col, ok = p.indexName(names, b, i)
		if !ok {
			names = names[:start]
			dead = append(dead, deadRow{i, fmt.Sprintf("opensearch: index template column %q is null", col)})
			continue
		}
		mid := len(names)
		names, col, ok = p.docID(names, b, i, laneToken)
		if !ok {
			names = names[:start]
			dead = append(dead, deadRow{i, fmt.Sprintf("opensearch: id column %q is null", col)})
			continue
		}
		key = append(append(append(key[:0], names[start:mid]...), 0), names[mid:]...)
		if k, ok := byKey[string(key)]; ok {
			refs[k].row = i // the last row of an (index, _id) wins
			names = names[:start]
			continue
		}
		byKey[string(key)] = len(refs)
		refs = append(refs, ref{row: i, index: start, id: mid})
	}
	enc := &encoded{offs: make([]int, 1, len(refs)+1), rows: make([]int, 0, len(refs))}
	ends := func(k int) (int, int) { // end of index and id of ref k
		if k+1 < len(refs) {
			return refs[k].id, refs[k+1].index
		}
		return refs[k].id, len(names)
	}
	for k, r := range refs {
		ie, de := ends(k)
		enc.buf = append(enc.buf, `{"`...)
		enc.buf = append(enc.buf, s.cfg.Action...)
		enc.buf = append(enc.buf, `":{"_index":`...)
		enc.buf = streamd.AppendJSONString(enc.buf, string(names[r.index:ie]))
		enc.buf = append(enc.buf, `,"_id":`...)
		enc.buf = streamd.AppendJSONString(enc.buf, string(names[r.id:de]))
		enc.buf = append(enc.buf, "}}\n"...)
		enc.buf = streamd.AppendRowJSON(enc.buf, b, r.row)
		enc.buf = append(enc.buf, '\n')
		enc.offs = append(enc.offs, len(enc.buf))
		enc.rows = append(enc.rows, r.row)
	}
	return enc, dead
}

// split groups the items into requests of at most BulkBytes each.
func (s *Sink) split(enc *encoded) [][]int {
	var reqs [][]int
	var cur []int
	size := 0
	for k := range enc.rows {
		n := enc.offs[k+1] - enc.offs[k]
		if len(cur) > 0 && size+n > s.cfg.BulkBytes {
			reqs = append(reqs, cur)
			cur, size = nil, 0
		}
		cur = append(cur, k)
		size += n
	}
	if len(cur) > 0 {
		reqs = append(reqs, cur)
	}
	return reqs
}

// send runs the requests, Concurrency at a time, until every item is
// indexed or dead, or one request fails for good.
func (s *Sink) send(ctx context.Context, deadline time.Time, enc *encoded, reqs [][]int) ([]deadRow, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		dead     []deadRow
		firstErr error
		wg       sync.WaitGroup
	)
	jobs := make(chan []int)
	for range min(s.cfg.Concurrency, len(reqs)) {
		wg.Go(func() {
			for items := range jobs {
				d, err := s.sendItems(ctx, deadline, enc, items)
				mu.Lock()
				dead = append(dead, d...)
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
feed:
	for _, r := range reqs {
		select {
		case jobs <- r:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return dead, firstErr
}

// bulkResponse is the part of a _bulk answer the sink reads.
type bulkResponse struct {
	Errors bool                         `json:"errors"`
	Items  []map[string]bulkItemOutcome `json:"items"`
}

type bulkItemOutcome struct {
	Status int `json:"status"`
	Error  *struct {
		Type     string `json:"type"`
		Reason   string `json:"reason"`
		CausedBy *struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"caused_by"`
	} `json:"error"`
}

func (o *bulkItemOutcome) reason() string {
	if o.Error == nil {
		return "status " + strconv.Itoa(o.Status)
	}
	r := o.Error.Type + ": " + o.Error.Reason
	if c := o.Error.CausedBy; c != nil && c.Type != "" {
		r += " (caused by " + c.Type + ": " + c.Reason + ")"
	}
	return r
}

// retryable reports whether a status is worth retrying: the cluster is
// overloaded (429) or failed on its side (5xx).
func retryable(status int) bool { return status == http.StatusTooManyRequests || status >= 500 }

// sendItems sends one request's items, retrying what is retryable, and
// returns the items dead-lettered.
func (s *Sink) sendItems(ctx context.Context, deadline time.Time, enc *encoded, items []int) ([]deadRow, error) {
	var dead []deadRow
	queue := [][]int{items}
	attempt := 0
	var body []byte
	for len(queue) > 0 {
		pending := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		body = body[:0]
		for _, k := range pending {
			body = append(body, enc.buf[enc.offs[k]:enc.offs[k+1]]...)
		}
		status, resp, err := s.post(ctx, body)
		var next []int
		switch {
		case err != nil && ctx.Err() != nil:
			return dead, ctx.Err()
		case err != nil || retryable(status):
			if err == nil {
				err = fmt.Errorf("status %d: %s", status, snippet(resp))
			}
			next = pending
		case status == http.StatusRequestEntityTooLarge && len(pending) > 1:
			h := len(pending) / 2
			queue = append(queue, pending[h:], pending[:h])
			continue
		case status == http.StatusRequestEntityTooLarge:
			dead = append(dead, deadRow{enc.rows[pending[0]], fmt.Sprintf("opensearch: document of %d bytes exceeds the cluster's request size limit (413)", len(body))})
			continue
		case status != http.StatusOK:
			return dead, fmt.Errorf("bulk request: status %d: %s: %w", status, snippet(resp), ErrRejected)
		default:
			var br bulkResponse
			if err := json.Unmarshal(resp, &br); err != nil {
				return dead, fmt.Errorf("bulk response: %v: %w", err, ErrRejected)
			}
			if len(br.Items) != len(pending) {
				return dead, fmt.Errorf("bulk response has %d items for %d sent: %w", len(br.Items), len(pending), ErrRejected)
			}
			if !br.Errors {
				continue
			}
			for j, m := range br.Items {
				for _, o := range m {
					switch {
					case o.Status < 300 || o.Status == http.StatusConflict:
					case retryable(o.Status):
						next = append(next, pending[j])
						s.m.itemRetries.WithLabelValues(statusClass(o.Status)).Inc()
						err = fmt.Errorf("item status %d: %s", o.Status, o.reason())
					case o.Status == http.StatusBadRequest:
						dead = append(dead, deadRow{enc.rows[pending[j]], "opensearch: " + o.reason()})
					default:
						return dead, fmt.Errorf("bulk item %d: status %d: %s: %w", j, o.Status, o.reason(), ErrRejected)
					}
				}
			}
		}
		if len(next) == 0 {
			continue
		}
		wait := backoff(s.cfg.BackoffBase, s.cfg.BackoffMax, attempt)
		attempt++
		if time.Now().Add(wait).After(deadline) {
			return dead, fmt.Errorf("%d items still failing after %d attempts, last: %v: %w", len(next), attempt, err, ErrRetriesExhausted)
		}
		s.log.DebugContext(ctx, "opensearch bulk retry", "items", len(next), "attempt", attempt, "wait", wait, "error", err)
		if !sleep(ctx, wait) {
			return dead, ctx.Err()
		}
		queue = append(queue, next)
	}
	return dead, nil
}

// backoff returns a full-jitter exponential backoff: uniform in
// [0, min(max, base·2^attempt)).
func backoff(base, max time.Duration, attempt int) time.Duration {
	d := max
	if attempt < 30 && base<<attempt < max {
		d = base << attempt
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func statusClass(status int) string {
	if status == http.StatusTooManyRequests {
		return "429"
	}
	return "5xx"
}

func snippet(b []byte) string {
	if len(b) > 512 {
		return string(b[:512]) + "…"
	}
	return string(b)
}

var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

// maxResponseBytes bounds how much of a response is read.
const maxResponseBytes = 256 << 20

// post sends one _bulk body and returns the status and response body.
func (s *Sink) post(ctx context.Context, ndjson []byte) (int, []byte, error) {
	body := ndjson
	if !s.cfg.DisableGzip {
		var buf bytes.Buffer
		buf.Grow(len(ndjson) / 4)
		zw := gzipWriters.Get().(*gzip.Writer)
		zw.Reset(&buf)
		zw.Write(ndjson) //nolint:errcheck // a bytes.Buffer does not fail
		zw.Close()       //nolint:errcheck // same
		gzipWriters.Put(zw)
		body = buf.Bytes()
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.bulk, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("build bulk request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if !s.cfg.DisableGzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	switch {
	case s.cfg.SigV4 != nil:
		if err := s.sign(ctx, req, body); err != nil {
			return 0, nil, err
		}
	case s.cfg.Username != "":
		req.SetBasicAuth(s.cfg.Username, s.cfg.Password)
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		s.m.requests.WithLabelValues("error").Inc()
		return 0, nil, fmt.Errorf("post bulk: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	s.m.latency.Observe(time.Since(start).Seconds())
	s.m.bytes.Add(float64(len(body)))
	if err != nil {
		s.m.requests.WithLabelValues("error").Inc()
		return 0, nil, fmt.Errorf("read bulk response: %w", err)
	}
	s.m.requests.WithLabelValues(strconv.Itoa(resp.StatusCode/100) + "xx").Inc()
	return resp.StatusCode, out, nil
}

// sign adds AWS SigV4 headers to req whose body is body.
func (s *Sink) sign(ctx context.Context, req *http.Request, body []byte) error {
	v := s.cfg.SigV4
	creds, err := v.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("retrieve aws credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	// OpenSearch Serverless requires the payload hash header; the managed
	// service accepts it.
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, v.Service, v.Region, time.Now()); err != nil {
		return fmt.Errorf("sign bulk request: %w", err)
	}
	return nil
}
