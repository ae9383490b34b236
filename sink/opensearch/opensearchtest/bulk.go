package opensearchtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// item is one parsed bulk item.
type item struct {
	action string // index | create | update | delete
	index  string
	id     string
	source []byte // the source line (nil for delete)
}

// itemResult is one entry of the response's items.
type itemResult struct {
	Index       string     `json:"_index"`
	ID          string     `json:"_id"`
	Version     int64      `json:"_version,omitempty"`
	Result      string     `json:"result,omitempty"`
	Shards      *shards    `json:"_shards,omitempty"`
	SeqNo       *int64     `json:"_seq_no,omitempty"`
	PrimaryTerm int64      `json:"_primary_term,omitempty"`
	Status      int        `json:"status"`
	Error       *itemError `json:"error,omitempty"`
}

type shards struct {
	Total      int `json:"total"`
	Successful int `json:"successful"`
	Failed     int `json:"failed"`
}

type itemError struct {
	Type      string     `json:"type"`
	Reason    string     `json:"reason"`
	IndexUUID string     `json:"index_uuid,omitempty"`
	Shard     string     `json:"shard,omitempty"`
	Index     string     `json:"index,omitempty"`
	CausedBy  *itemError `json:"caused_by,omitempty"`
}

func (s *Server) serveBulk(w http.ResponseWriter, r *http.Request, defIndex string) {
	start := time.Now()
	s.mu.Lock()
	max := s.opts.MaxBodyBytes
	var fault int
	if len(s.failNext) > 0 {
		fault, s.failNext = s.failNext[0], s.failNext[1:]
		s.stats.RequestFaults++
	}
	s.mu.Unlock()
	body, n, gz, err := readBody(r, max)
	if gz {
		s.count(func(st *Stats) { st.GzipRequests++ })
	}
	switch {
	case errors.Is(err, errTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "content_too_long_exception",
			fmt.Sprintf("request body is too large (limit %d bytes)", max))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "parse_exception", err.Error())
		return
	}
	if fault != 0 {
		typ := "unavailable_shards_exception"
		if fault == http.StatusTooManyRequests {
			typ = "es_rejected_execution_exception"
		}
		writeError(w, fault, typ, "injected fault")
		return
	}
	items, err := parseBulk(body, defIndex)
	if err != nil {
		writeError(w, http.StatusBadRequest, "illegal_argument_exception", err.Error())
		return
	}

	s.mu.Lock()
	results := make([]map[string]*itemResult, len(items))
	anyErr := false
	for i, it := range items {
		res := s.apply(it)
		if res.Error != nil {
			anyErr = true
		}
		results[i] = map[string]*itemResult{it.action: res}
	}
	s.stats.BulkRequests++
	s.stats.BulkBytes += n
	s.stats.Items += int64(len(items))
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"took":   time.Since(start).Milliseconds(),
		"errors": anyErr,
		"items":  results,
	})
}

// parseBulk splits an NDJSON bulk body into items.
func parseBulk(body []byte, defIndex string) ([]item, error) {
	if len(body) == 0 {
		return nil, reasonError("request body is required")
	}
	if body[len(body)-1] != '\n' {
		return nil, reasonError("The bulk request must be terminated by a newline [\\n]")
	}
	var items []item
	line := 0
	next := func() ([]byte, bool) {
		for len(body) > 0 {
			i := bytes.IndexByte(body, '\n')
			l := body[:i]
			body = body[i+1:]
			line++
			l = bytes.TrimRight(l, "\r")
			if len(bytes.TrimSpace(l)) > 0 {
				return l, true
			}
		}
		return nil, false
	}
	for {
		l, ok := next()
		if !ok {
			break
		}
		var meta map[string]map[string]json.RawMessage
		if err := json.Unmarshal(l, &meta); err != nil || len(meta) != 1 {
			return nil, reasonErrorf("Malformed action/metadata line [%d], expected START_OBJECT with one action", line)
		}
		var it item
		var md map[string]json.RawMessage
		for a, m := range meta {
			it.action, md = a, m
		}
		switch it.action {
		case "index", "create", "update", "delete":
		default:
			return nil, reasonErrorf("Malformed action/metadata line [%d], expected one of [create, delete, index, update] but found [%s]", line, it.action)
		}
		for k, v := range md {
			var str string
			switch k {
			case "_index", "_id":
				if err := json.Unmarshal(v, &str); err != nil {
					return nil, reasonErrorf("Malformed action/metadata line [%d]: %s must be a string", line, k)
				}
				if k == "_index" {
					it.index = str
				} else {
					it.id = str
				}
			case "routing", "pipeline", "require_alias", "retry_on_conflict", "version", "version_type", "if_seq_no", "if_primary_term":
			default:
				return nil, reasonErrorf("Action/metadata line [%d] contains an unknown parameter [%s]", line, k)
			}
		}
		if it.index == "" {
			it.index = defIndex
		}
		if it.index == "" {
			return nil, reasonErrorf("Validation Failed: 1: index is missing for item at line [%d]", line)
		}
		if it.action != "delete" {
			src, ok := next()
			if !ok {
				return nil, reasonErrorf("action at line [%d] has no source line", line)
			}
			it.source = src
		} else if it.id == "" {
			return nil, reasonErrorf("Validation Failed: 1: id is missing for delete at line [%d]", line)
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, reasonError("Validation Failed: 1: no requests added")
	}
	return items, nil
}

// reasonError is an OpenSearch error reason, worded (and capitalised) as
// the real cluster words it.
type reasonError string

func (e reasonError) Error() string { return string(e) }

func reasonErrorf(format string, args ...any) error { return reasonError(fmt.Sprintf(format, args...)) }

// apply executes one item. Callers hold s.mu.
func (s *Server) apply(it item) *itemResult {
	res := &itemResult{Index: it.index, ID: it.id}
	fail := func(status int, typ, reason string, cause *itemError) *itemResult {
		res.Status = status
		res.Error = &itemError{Type: typ, Reason: reason, Index: it.index, CausedBy: cause}
		return res
	}
	if s.opts.RejectItems > 0 && s.rng.Float64() < s.opts.RejectItems {
		s.stats.Rejected++
		return fail(http.StatusTooManyRequests, "es_rejected_execution_exception",
			"rejected execution of coordinating operation [shard_detail=[write], primary_and_replica_bytes=[0b]]", nil)
	}
	if msg := badIndexName(it.index); msg != "" {
		return fail(http.StatusBadRequest, "invalid_index_name_exception", fmt.Sprintf("Invalid index name [%s], %s", it.index, msg), nil)
	}
	if it.id == "" && (it.action == "index" || it.action == "create") {
		s.autoIDSeq++
		it.id = fmt.Sprintf("auto-%016x", s.autoIDSeq)
		res.ID = it.id
	}
	if len(it.id) > 512 {
		return fail(http.StatusBadRequest, "illegal_argument_exception",
			fmt.Sprintf("id [%s] is too long, must be no longer than 512 bytes but was: %d", it.id, len(it.id)), nil)
	}
	ix := s.indices[it.index]
	var existing *doc
	if ix != nil {
		existing = ix.docs[it.id]
	}

	var source []byte
	switch it.action {
	case "delete":
		if existing == nil {
			res.Status, res.Result = http.StatusNotFound, "not_found"
			if ix != nil {
				ix.seqNo++
			}
			res.Version = 1
			res.Shards = &shards{Total: 2, Successful: 1}
			return res
		}
		delete(ix.docs, it.id)
		ix.seqNo++
		res.Status, res.Result, res.Version = http.StatusOK, "deleted", existing.version+1
		res.Shards = &shards{Total: 2, Successful: 1}
		seq := ix.seqNo
		res.SeqNo, res.PrimaryTerm = &seq, 1
		return res
	case "create":
		if existing != nil {
			s.stats.Conflicts++
			return fail(http.StatusConflict, "version_conflict_engine_exception",
				fmt.Sprintf("[%s]: version conflict, document already exists (current version [%d])", it.id, existing.version), nil)
		}
		source = it.source
	case "index":
		source = it.source
	case "update":
		var u struct {
			Doc         json.RawMessage `json:"doc"`
			DocAsUpsert bool            `json:"doc_as_upsert"`
			Upsert      json.RawMessage `json:"upsert"`
		}
		if err := json.Unmarshal(it.source, &u); err != nil {
			return fail(http.StatusBadRequest, "x_content_parse_exception", "failed to parse update request: "+err.Error(), nil)
		}
		switch {
		case existing != nil && u.Doc != nil:
			merged, err := mergeDoc(existing.source, u.Doc)
			if err != nil {
				return fail(http.StatusBadRequest, "mapper_parsing_exception", "failed to parse: "+err.Error(), nil)
			}
			if bytes.Equal(merged, existing.source) {
				res.Status, res.Result, res.Version = http.StatusOK, "noop", existing.version
				res.Shards = &shards{}
				return res
			}
			source = merged
		case existing != nil:
			return fail(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: script or doc is missing;", nil)
		case u.DocAsUpsert && u.Doc != nil:
			source = u.Doc
		case u.Upsert != nil:
			source = u.Upsert
		default:
			return fail(http.StatusNotFound, "document_missing_exception", fmt.Sprintf("[%s]: document missing", it.id), nil)
		}
	}

	var obj map[string]any
	if err := decodeObject(source, &obj); err != nil {
		s.stats.MappingErrors++
		return fail(http.StatusBadRequest, "mapper_parsing_exception", "failed to parse",
			&itemError{Type: "not_x_content_exception", Reason: err.Error()})
	}
	var mapping map[string]kind
	if ix != nil {
		mapping = ix.mapping
	}
	added, perr := checkMapping(mapping, obj, it.id)
	if perr != nil {
		s.stats.MappingErrors++
		return fail(http.StatusBadRequest, "mapper_parsing_exception", perr.reason, perr.cause)
	}
	if ix == nil {
		ix = &index{docs: map[string]*doc{}, mapping: map[string]kind{}}
		s.indices[it.index] = ix
	}
	for f, k := range added {
		ix.mapping[f] = k
	}
	ix.seqNo++
	d := &doc{source: bytes.Clone(source), version: 1, seqNo: ix.seqNo}
	res.Status, res.Result = http.StatusCreated, "created"
	if existing != nil {
		d.version = existing.version + 1
		res.Status, res.Result = http.StatusOK, "updated"
	}
	ix.docs[it.id] = d
	res.Version = d.version
	res.Shards = &shards{Total: 2, Successful: 1}
	seq := d.seqNo
	res.SeqNo, res.PrimaryTerm = &seq, 1
	return res
}

// badIndexName returns why name is not a valid index name, or "".
func badIndexName(name string) string {
	switch {
	case name == "." || name == "..":
		return "must not be '.' or '..'"
	case name != strings.ToLower(name):
		return "must be lowercase"
	case strings.ContainsAny(name, `\/*?"<>| ,#:`):
		return `must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?, :, #]`
	case strings.HasPrefix(name, "-") || strings.HasPrefix(name, "_") || strings.HasPrefix(name, "+"):
		return "must not start with '_', '-', or '+'"
	case len(name) > 255:
		return "index name is too long"
	}
	return ""
}

func decodeObject(src []byte, obj *map[string]any) error {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("malformed source: %w", err)
	}
	if dec.More() {
		return errors.New("malformed source: trailing data after the document")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return errors.New("compressor detection can only be called on some xcontent bytes or compressed xcontent bytes")
	}
	*obj = m
	return nil
}

// mergeDoc applies a partial update: doc's fields replace or extend
// base's, objects merging recursively.
func mergeDoc(base, partial json.RawMessage) ([]byte, error) {
	var b, p map[string]any
	if err := decodeObject(base, &b); err != nil {
		return nil, err
	}
	if err := decodeObject(partial, &p); err != nil {
		return nil, err
	}
	var merge func(dst, src map[string]any)
	merge = func(dst, src map[string]any) {
		for k, v := range src {
			if sm, ok := v.(map[string]any); ok {
				if dm, ok := dst[k].(map[string]any); ok {
					merge(dm, sm)
					continue
				}
			}
			dst[k] = v
		}
	}
	merge(b, p)
	return json.Marshal(b)
}

// kind is a dynamically mapped field type.
type kind uint8

const (
	kindNone kind = iota
	kindObject
	kindText
	kindLong
	kindFloat
	kindBool
)

var kindNames = [...]string{kindNone: "none", kindObject: "object", kindText: "text", kindLong: "long", kindFloat: "float", kindBool: "boolean"}

func (k kind) String() string { return kindNames[k] }

type parseError struct {
	reason string
	cause  *itemError
}

// checkMapping checks obj against mapping and returns the fields obj would
// add, or why it does not fit.
func checkMapping(mapping map[string]kind, obj map[string]any, id string) (map[string]kind, *parseError) {
	added := map[string]kind{}
	lookup := func(f string) kind {
		if k, ok := added[f]; ok {
			return k
		}
		return mapping[f]
	}
	var walk func(prefix string, v any) *parseError
	walk = func(field string, v any) *parseError {
		if arr, ok := v.([]any); ok {
			for _, e := range arr {
				if err := walk(field, e); err != nil {
					return err
				}
			}
			return nil
		}
		if v == nil {
			return nil
		}
		got := kindOf(v)
		have := lookup(field)
		if have == kindNone {
			added[field] = got
		} else if err := compatible(field, have, v, id); err != nil {
			return err
		}
		if m, ok := v.(map[string]any); ok {
			for k, sub := range m {
				if err := walk(field+"."+k, sub); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for k, v := range obj {
		if err := walk(k, v); err != nil {
			return nil, err
		}
	}
	return added, nil
}

func kindOf(v any) kind {
	switch x := v.(type) {
	case map[string]any:
		return kindObject
	case string:
		return kindText
	case bool:
		return kindBool
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return kindFloat
		}
		return kindLong
	}
	return kindNone
}

// compatible reports whether value v can be indexed into a field mapped as
// have, with OpenSearch's coercions.
func compatible(field string, have kind, v any, id string) *parseError {
	preview := func() string {
		b, _ := json.Marshal(v)
		return strings.Trim(string(b), `"`)
	}
	bad := func(causeType, cause string) *parseError {
		return &parseError{
			reason: fmt.Sprintf("failed to parse field [%s] of type [%s] in document with id '%s'. Preview of field's value: '%s'", field, have, id, preview()),
			cause:  &itemError{Type: causeType, Reason: cause},
		}
	}
	got := kindOf(v)
	switch have {
	case kindObject:
		if got != kindObject {
			return &parseError{reason: fmt.Sprintf("object mapping for [%s] tried to parse field [%s] as object, but found a concrete value", field, field)}
		}
	case kindText:
		if got == kindObject {
			return bad("illegal_state_exception", "Can't get text on a START_OBJECT")
		}
	case kindLong, kindFloat:
		switch got {
		case kindObject:
			return bad("illegal_state_exception", "Can't get text on a START_OBJECT")
		case kindBool:
			return bad("illegal_state_exception", "Can't get text on a VALUE_BOOLEAN")
		case kindText:
			if _, err := strconv.ParseFloat(strings.TrimSpace(v.(string)), 64); err != nil {
				return bad("number_format_exception", fmt.Sprintf("For input string: \"%s\"", v))
			}
		}
	case kindBool:
		switch got {
		case kindText:
			if s := v.(string); s != "true" && s != "false" && s != "" {
				return bad("illegal_argument_exception",
					fmt.Sprintf("Failed to parse value [%s] as only [true] or [false] are allowed.", s))
			}
		case kindBool:
		default:
			return bad("illegal_argument_exception", "Failed to parse value as only [true] or [false] are allowed.")
		}
	}
	return nil
}
