package sidecar

import (
	"bytes"
	"compress/gzip"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/streamd/streamd"
)

// Firehose JSON API targets.
const (
	targetPrefix         = "Firehose_20150804."
	targetPutRecord      = targetPrefix + "PutRecord"
	targetPutRecordBatch = targetPrefix + "PutRecordBatch"
)

// handler serves POST /ingest, the Firehose PutRecord / PutRecordBatch
// JSON API on POST /, and GET /healthz.
type handler struct {
	s *Source
	w *wal
}

// apiError is an error answer: an HTTP status and a Firehose-shaped body.
type apiError struct {
	status  int
	typ     string // __type
	outcome string
	msg     string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "InvalidArgumentException", outcome: outcomeBadRequest, msg: fmt.Sprintf(format, args...)}
}

func tooLarge(status int, format string, args ...any) *apiError {
	return &apiError{status: status, typ: "InvalidArgumentException", outcome: outcomeTooLarge, msg: fmt.Sprintf(format, args...)}
}

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" && r.Method == http.MethodGet {
		rw.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(rw, "ok\n")
		return
	}
	api := apiOther
	target := r.Header.Get("X-Amz-Target")
	switch {
	case r.URL.Path == "/ingest":
		api = apiIngest
	case target == targetPutRecord:
		api = apiPutRecord
	case target == targetPutRecordBatch:
		api = apiPutRecordBatch
	}
	var err error
	switch {
	case !h.authorized(r):
		err = &apiError{status: http.StatusUnauthorized, typ: "UnrecognizedClientException", outcome: outcomeUnauthorized, msg: "missing or wrong token"}
	case r.Method != http.MethodPost:
		rw.Header().Set("Allow", http.MethodPost)
		err = &apiError{status: http.StatusMethodNotAllowed, typ: "InvalidArgumentException", outcome: outcomeBadRequest, msg: "use POST"}
	case api == apiIngest:
		err = h.ingest(rw, r)
	case api == apiPutRecord, api == apiPutRecordBatch:
		err = h.firehose(rw, r, api)
	case target != "":
		err = &apiError{status: http.StatusBadRequest, typ: "UnknownOperationException", outcome: outcomeBadRequest, msg: fmt.Sprintf("operation %q is not supported (only PutRecord and PutRecordBatch)", target)}
	default:
		err = &apiError{status: http.StatusNotFound, typ: "UnknownOperationException", outcome: outcomeBadRequest, msg: "POST /ingest or the Firehose API on / with X-Amz-Target"}
	}
	if err == nil {
		h.s.m.request(api, outcomeOK)
		return
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		switch {
		case errors.Is(err, ErrLogFull):
			ae = &apiError{status: http.StatusServiceUnavailable, typ: "ServiceUnavailableException", outcome: outcomeUnavailable,
				msg: "the sidecar's write-ahead log is over its disk budget; retry after the pipeline has caught up"}
		case errors.Is(err, ErrClosed):
			ae = &apiError{status: http.StatusServiceUnavailable, typ: "ServiceUnavailableException", outcome: outcomeUnavailable, msg: "the sidecar is shutting down"}
		default:
			ae = &apiError{status: http.StatusInternalServerError, typ: "ServiceUnavailableException", outcome: outcomeError, msg: err.Error()}
		}
	}
	if ae.status == http.StatusServiceUnavailable {
		rw.Header().Set("Retry-After", strconv.Itoa(max(1, int(h.s.cfg.RetryAfter.Seconds()+0.5))))
	}
	h.s.m.request(api, ae.outcome)
	rw.Header().Set("Content-Type", "application/x-amz-json-1.1")
	rw.Header().Set("X-Amzn-ErrorType", ae.typ)
	rw.WriteHeader(ae.status)
	_ = json.NewEncoder(rw).Encode(map[string]string{"__type": ae.typ, "message": ae.msg})
}

// authorized checks the bearer token or the SigV4 access key id.
func (h *handler) authorized(r *http.Request) bool {
	tok := h.s.cfg.AuthToken
	if tok == "" {
		return true
	}
	a := r.Header.Get("Authorization")
	var got string
	if t, ok := strings.CutPrefix(a, "Bearer "); ok {
		got = t
	} else if rest, ok := strings.CutPrefix(a, "AWS4-HMAC-SHA256 "); ok {
		if i := strings.Index(rest, "Credential="); i >= 0 {
			cred := rest[i+len("Credential="):]
			if j := strings.IndexByte(cred, '/'); j >= 0 {
				got = cred[:j]
			}
		}
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(tok)) == 1
}

// body reads the request body within MaxBodyBytes, gunzipping it when
// Content-Encoding says gzip.
func (h *handler) body(r *http.Request) ([]byte, error) {
	limit := h.s.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, tooLarge(http.StatusRequestEntityTooLarge, "request body of %d bytes exceeds %d bytes", r.ContentLength, limit)
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, badRequest("read request body: %v", err)
	}
	if int64(len(raw)) > limit {
		return nil, tooLarge(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", limit)
	}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return raw, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, badRequest("gzip body: %v", err)
		}
		b, err := io.ReadAll(io.LimitReader(zr, limit+1))
		if err != nil {
			return nil, badRequest("gzip body: %v", err)
		}
		if int64(len(b)) > limit {
			return nil, tooLarge(http.StatusRequestEntityTooLarge, "decompressed request body exceeds %d bytes", limit)
		}
		return b, nil
	default:
		return nil, &apiError{status: http.StatusUnsupportedMediaType, typ: "InvalidArgumentException", outcome: outcomeBadRequest, msg: fmt.Sprintf("content encoding %q (want gzip or none)", enc)}
	}
}

// ingestResponse is the answer to POST /ingest.
type ingestResponse struct {
	Records int `json:"records"`
	// First and Last are the WAL positions of the first and last record.
	First string `json:"first,omitempty"`
	Last  string `json:"last,omitempty"`
}

// ingest serves POST /ingest: NDJSON (one JSON value per line, blank lines
// skipped) or one JSON array whose elements are the records.
func (h *handler) ingest(rw http.ResponseWriter, r *http.Request) error {
	body, err := h.body(r)
	if err != nil {
		return err
	}
	recs, err := splitRecords(body, h.s.cfg.MaxRecordBytes)
	if err != nil {
		return err
	}
	var resp ingestResponse
	if len(recs) > 0 {
		pos, err := h.w.append(recs)
		if err != nil {
			return err
		}
		resp = ingestResponse{Records: len(recs), First: pos[0].String(), Last: pos[len(pos)-1].String()}
	}
	rw.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(rw).Encode(resp)
}

// splitRecords splits an NDJSON body or a JSON array into records and
// checks each is valid JSON within max bytes.
func splitRecords(body []byte, max int) ([][]byte, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	var recs [][]byte
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var arr []json.RawMessage
		if err := json.Unmarshal(trimmed, &arr); err != nil {
			return nil, badRequest("malformed JSON array: %v", err)
		}
		for i, e := range arr {
			var c bytes.Buffer
			if err := json.Compact(&c, e); err != nil {
				return nil, badRequest("record %d: %v", i, err)
			}
			if c.Len() > max {
				return nil, tooLarge(http.StatusRequestEntityTooLarge, "record %d is %d bytes, over the %d-byte record limit", i, c.Len(), max)
			}
			recs = append(recs, c.Bytes())
		}
		return recs, nil
	}
	for line := 1; len(body) > 0; line++ {
		var l []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			l, body = body[:i], body[i+1:]
		} else {
			l, body = body, nil
		}
		l = bytes.TrimRight(l, "\r")
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		if len(l) > max {
			return nil, tooLarge(http.StatusRequestEntityTooLarge, "line %d is %d bytes, over the %d-byte record limit", line, len(l), max)
		}
		if !json.Valid(l) {
			return nil, badRequest("line %d is not valid JSON", line)
		}
		recs = append(recs, l)
	}
	return recs, nil
}

// Firehose request and response shapes.
type fhRecord struct {
	Data []byte `json:"Data"` // base64 in JSON
}

type fhPutRecord struct {
	DeliveryStreamName string    `json:"DeliveryStreamName"`
	Record             *fhRecord `json:"Record"`
}

type fhPutRecordBatch struct {
	DeliveryStreamName string     `json:"DeliveryStreamName"`
	Records            []fhRecord `json:"Records"`
}

type fhPutRecordOutput struct {
	RecordID  string `json:"RecordId"`
	Encrypted bool   `json:"Encrypted"`
}

type fhBatchEntry struct {
	RecordID string `json:"RecordId"`
}

type fhPutRecordBatchOutput struct {
	FailedPutCount   int            `json:"FailedPutCount"`
	Encrypted        bool           `json:"Encrypted"`
	RequestResponses []fhBatchEntry `json:"RequestResponses"`
}

// firehose serves PutRecord and PutRecordBatch. Each record's Data is one
// record; one trailing newline (\n or \r\n) is stripped, other newlines
// stay inside the record.
func (h *handler) firehose(rw http.ResponseWriter, r *http.Request, api string) error {
	body, err := h.body(r)
	if err != nil {
		return err
	}
	var recs [][]byte
	if api == apiPutRecord {
		var in fhPutRecord
		if err := json.Unmarshal(body, &in); err != nil {
			return badRequest("malformed request: %v", err)
		}
		if in.Record == nil {
			return badRequest("Record is required")
		}
		d, err := h.checkRecord(in.Record.Data, 0)
		if err != nil {
			return err
		}
		recs = [][]byte{d}
	} else {
		var in fhPutRecordBatch
		if err := json.Unmarshal(body, &in); err != nil {
			return badRequest("malformed request: %v", err)
		}
		switch n := len(in.Records); {
		case n == 0:
			return badRequest("Records must hold at least 1 record")
		case n > h.s.cfg.MaxBatchRecords:
			return badRequest("Records holds %d records, over the limit of %d", n, h.s.cfg.MaxBatchRecords)
		}
		var total int64
		recs = make([][]byte, len(in.Records))
		for i, rec := range in.Records {
			total += int64(len(rec.Data))
			if total > h.s.cfg.MaxBatchBytes {
				return badRequest("Records hold over %d bytes of data, the PutRecordBatch limit", h.s.cfg.MaxBatchBytes)
			}
			d, err := h.checkRecord(rec.Data, i)
			if err != nil {
				return err
			}
			recs[i] = d
		}
	}
	pos, err := h.w.append(recs)
	if err != nil {
		return err
	}
	rw.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if api == apiPutRecord {
		return json.NewEncoder(rw).Encode(fhPutRecordOutput{RecordID: recordID(pos[0])})
	}
	out := fhPutRecordBatchOutput{RequestResponses: make([]fhBatchEntry, len(pos))}
	for i, p := range pos {
		out.RequestResponses[i].RecordID = recordID(p)
	}
	return json.NewEncoder(rw).Encode(out)
}

func (h *handler) checkRecord(d []byte, i int) ([]byte, error) {
	if len(d) == 0 {
		return nil, badRequest("record %d: Data must not be empty", i)
	}
	if len(d) > h.s.cfg.MaxRecordBytes {
		return nil, badRequest("record %d: Data is %d bytes, over the %d-byte record limit", i, len(d), h.s.cfg.MaxRecordBytes)
	}
	d = bytes.TrimSuffix(d, []byte{'\n'})
	d = bytes.TrimSuffix(d, []byte{'\r'})
	return d, nil
}

// recordID renders a WAL position as a Firehose RecordId.
func recordID(p streamd.Position) string {
	return p.String()
}
