package dynamodb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamd/streamd"
)

// plan is what Write derives once per schema.
type plan struct {
	key   []int // key column indices
	op    int   // the CDC column, -1 when absent
	attrs []int // columns written as attributes (all but op)
	names []string
}

func (s *Sink) plan(sc *streamd.Schema) (*plan, error) {
	if sc == nil {
		return nil, fmt.Errorf("batch has no schema: %w", ErrBadConfig)
	}
	fp := sc.Fingerprint()
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.plans[fp]; ok {
		return p, nil
	}
	p := &plan{op: -1}
	for _, k := range s.cfg.Key {
		ci := sc.Index(k)
		if ci < 0 {
			return nil, fmt.Errorf("key column %q is not in the schema: %w", k, ErrBadConfig)
		}
		switch kind := sc.Fields[ci].Type.Kind; kind {
		case streamd.KindString, streamd.KindInt32, streamd.KindInt64, streamd.KindDecimal,
			streamd.KindDate, streamd.KindTimestamp, streamd.KindBinary:
		default:
			return nil, fmt.Errorf("key column %q of type %s cannot be a DynamoDB key (S, N or B): %w", k, kind, ErrBadConfig)
		}
		p.key = append(p.key, ci)
	}
	for i, f := range sc.Fields {
		if f.Name == OpColumn && f.Type.Kind == streamd.KindString {
			p.op = i
			continue
		}
		p.attrs = append(p.attrs, i)
	}
	for _, f := range sc.Fields {
		p.names = append(p.names, f.Name)
	}
	s.plans[fp] = p
	return p, nil
}

// requests turns b's rows into write requests, the last row of each key
// winning, and returns the rows to dead-letter (ascending).
func (p *plan) requests(b *streamd.Batch) ([]writeReq, []deadRow) {
	var dead []deadRow
	byKey := make(map[string]int, b.Len())
	var order []int // winning row per key, in first-seen order of keys
	var kb, scratch []byte
rows:
	for i := range b.Len() {
		kb = kb[:0]
		for _, ci := range p.key {
			c := &b.Cols[ci]
			if !c.Valid[i] {
				dead = append(dead, deadRow{i, fmt.Sprintf("dynamodb: key column %q is null", p.names[ci])})
				continue rows
			}
			scratch = appendKeyText(scratch[:0], c, i)
			if len(scratch) == 0 {
				dead = append(dead, deadRow{i, fmt.Sprintf("dynamodb: key column %q is empty", p.names[ci])})
				continue rows
			}
			// Length-prefixed, so composite keys cannot run into each other.
			kb = strconv.AppendInt(kb, int64(len(scratch)), 10)
			kb = append(append(kb, ':'), scratch...)
		}
		if k, ok := byKey[string(kb)]; ok {
			order[k] = i
			continue
		}
		byKey[string(kb)] = len(order)
		order = append(order, i)
	}
	reqs := make([]writeReq, 0, len(order))
	for _, i := range order {
		if p.op >= 0 && b.Cols[p.op].Valid[i] && strings.EqualFold(string(b.Cols[p.op].Bytes.At(i)), "remove") {
			key := make(map[string]types.AttributeValue, len(p.key))
			size := 0
			for _, ci := range p.key {
				av, n, _ := marshal(&b.Cols[ci], i) // key types always marshal
				key[p.names[ci]] = av
				size += len(p.names[ci]) + n
			}
			reqs = append(reqs, writeReq{req: types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key}}, size: size})
			continue
		}
		item := make(map[string]types.AttributeValue, len(p.attrs))
		size := 0
		var bad string
		for _, ci := range p.attrs {
			c := &b.Cols[ci]
			if !c.Valid[i] {
				continue // null: the attribute is omitted
			}
			av, n, err := marshal(c, i)
			if err != nil {
				bad = fmt.Sprintf("dynamodb: column %q: %v", p.names[ci], err)
				break
			}
			if av == nil {
				continue
			}
			item[p.names[ci]] = av
			size += len(p.names[ci]) + n
		}
		if bad == "" && size > MaxItemBytes {
			bad = fmt.Sprintf("dynamodb: item of about %d bytes exceeds the 400 KB item limit", size)
		}
		if bad != "" {
			dead = append(dead, deadRow{i, bad})
			continue
		}
		reqs = append(reqs, writeReq{req: types.WriteRequest{PutRequest: &types.PutRequest{Item: item}}, size: size})
	}
	sortDead(dead)
	return reqs, dead
}

func sortDead(d []deadRow) {
	for i := 1; i < len(d); i++ { // nearly sorted: insertion sort
		for j := i; j > 0 && d[j].row < d[j-1].row; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

// appendKeyText appends a text form of key value i that is distinct per
// DynamoDB key value (numbers are canonical already: integers and
// fixed-scale decimals).
func appendKeyText(dst []byte, c *streamd.Column, i int) []byte {
	switch c.Type.Kind {
	case streamd.KindString, streamd.KindBinary:
		return append(dst, c.Bytes.At(i)...)
	default:
		return appendNumberOrText(dst, c, i)
	}
}

func appendNumberOrText(dst []byte, c *streamd.Column, i int) []byte {
	switch c.Type.Kind {
	case streamd.KindInt32:
		return strconv.AppendInt(dst, int64(c.Int32[i]), 10)
	case streamd.KindInt64:
		return strconv.AppendInt(dst, c.Int64[i], 10)
	case streamd.KindDecimal:
		if c.Type.Wide() {
			return streamd.AppendDecimalWide(dst, c.Bytes.At(i), int(c.Type.Scale))
		}
		return streamd.AppendDecimal(dst, c.Int64[i], int(c.Type.Scale))
	case streamd.KindDate:
		return time.Unix(int64(c.Int32[i])*86400, 0).UTC().AppendFormat(dst, time.DateOnly)
	case streamd.KindTimestamp:
		return time.UnixMicro(c.Int64[i]).UTC().AppendFormat(dst, timestampLayout)
	}
	return dst
}

// timestampLayout is RFC 3339 with microseconds, in UTC ("Z").
const timestampLayout = "2006-01-02T15:04:05.000000Z07:00"

// DynamoDB's number range: 38 significant digits, magnitudes from 1E-130
// to below 1E126.
const (
	maxNumber = 9.9999999999999999999999999999999999999e125
	minNumber = 1e-130
)

// marshal converts value i of c (not null) into an attribute value and its
// approximate size in bytes; a nil value with no error means "omit".
func marshal(c *streamd.Column, i int) (types.AttributeValue, int, error) {
	switch c.Type.Kind {
	case streamd.KindString:
		v := string(c.Bytes.At(i))
		return &types.AttributeValueMemberS{Value: v}, len(v), nil
	case streamd.KindBool:
		return &types.AttributeValueMemberBOOL{Value: c.Bool[i]}, 1, nil
	case streamd.KindInt32, streamd.KindInt64, streamd.KindDecimal:
		v := string(appendNumberOrText(nil, c, i))
		return &types.AttributeValueMemberN{Value: v}, len(v), nil
	case streamd.KindFloat64:
		f := c.Float64[i]
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, 0, fmt.Errorf("float64 %v is not a DynamoDB number", f)
		}
		if a := math.Abs(f); a != 0 && (a > maxNumber || a < minNumber) {
			return nil, 0, fmt.Errorf("float64 %v is outside DynamoDB's number range", f)
		}
		v := strconv.FormatFloat(f, 'g', -1, 64)
		return &types.AttributeValueMemberN{Value: v}, len(v), nil
	case streamd.KindDate, streamd.KindTimestamp:
		v := string(appendNumberOrText(nil, c, i))
		return &types.AttributeValueMemberS{Value: v}, len(v), nil
	case streamd.KindBinary:
		v := bytes.Clone(c.Bytes.At(i))
		return &types.AttributeValueMemberB{Value: v}, len(v), nil
	case streamd.KindJSON:
		raw := c.Bytes.At(i)
		if len(bytes.TrimSpace(raw)) == 0 {
			return nil, 0, nil
		}
		return marshalJSON(raw)
	}
	return nil, 0, fmt.Errorf("type %s has no DynamoDB mapping", c.Type)
}

// marshalJSON converts JSON text into M/L/S/N/BOOL attribute values,
// numbers kept as their exact text. A top-level null is omitted.
func marshalJSON(raw []byte) (types.AttributeValue, int, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, 0, fmt.Errorf("malformed json: %w", err)
	}
	if dec.More() {
		return nil, 0, errors.New("malformed json: trailing data")
	}
	if v == nil {
		return nil, 0, nil
	}
	return jsonAV(v)
}

func jsonAV(v any) (types.AttributeValue, int, error) {
	switch x := v.(type) {
	case nil:
		return &types.AttributeValueMemberNULL{Value: true}, 1, nil
	case bool:
		return &types.AttributeValueMemberBOOL{Value: x}, 1, nil
	case string:
		return &types.AttributeValueMemberS{Value: x}, len(x), nil
	case json.Number:
		if err := checkNumber(string(x)); err != nil {
			return nil, 0, err
		}
		return &types.AttributeValueMemberN{Value: string(x)}, len(x), nil
	case []any:
		l := make([]types.AttributeValue, len(x))
		size := 3
		for i, e := range x {
			av, n, err := jsonAV(e)
			if err != nil {
				return nil, 0, err
			}
			l[i] = av
			size += n + 1
		}
		return &types.AttributeValueMemberL{Value: l}, size, nil
	case map[string]any:
		m := make(map[string]types.AttributeValue, len(x))
		size := 3
		for k, e := range x {
			av, n, err := jsonAV(e)
			if err != nil {
				return nil, 0, err
			}
			m[k] = av
			size += len(k) + n + 1
		}
		return &types.AttributeValueMemberM{Value: m}, size, nil
	}
	return nil, 0, fmt.Errorf("unexpected json value %T", v)
}

// checkNumber rejects JSON numbers DynamoDB cannot hold: more than 38
// significant digits or a magnitude outside [1E-130, 1E126).
func checkNumber(s string) error {
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil {
			return fmt.Errorf("json number %s: bad exponent", s)
		}
		mant, exp = s[:i], e
	}
	mant = strings.TrimLeft(mant, "+-")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return nil // zero
	}
	// Position of the first significant digit relative to the point.
	lead := len(strings.TrimLeft(intPart, "0")) + exp
	if strings.TrimLeft(intPart, "0") == "" {
		lead = -(len(frac) - len(strings.TrimLeft(frac, "0"))) + exp
	}
	digits = strings.TrimRight(digits, "0")
	switch {
	case len(digits) > 38:
		return fmt.Errorf("json number %s has more than 38 significant digits", s)
	case lead > 126:
		return fmt.Errorf("json number %s is too large for DynamoDB", s)
	case lead < -129:
		return fmt.Errorf("json number %s is too small for DynamoDB", s)
	}
	return nil
}
