package ddbstreams

import (
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/streamd/streamd"
)

// Operations in a change record's "op" field. A sink that keeps a
// materialised copy upserts insert and modify and deletes remove.
const (
	OpInsert = "insert"
	OpModify = "modify"
	OpRemove = "remove"
)

// Reserved top-level names of a change record. An item attribute with one
// of these names is not flattened to the top level (it would clobber the
// change's metadata); it stays reachable as new_image.NAME, old_image.NAME
// or keys.NAME (a schema column with from: new_image.NAME).
var reserved = map[string]bool{
	"op": true, "event_time": true, "sequence_number": true, "event_id": true,
	"keys": true, "new_image": true, "old_image": true,
}

// IsReserved reports whether name is one of the change record's own fields
// (op, event_time, sequence_number, event_id, keys, new_image, old_image),
// which an item attribute of the same name does not overwrite.
func IsReserved(name string) bool { return reserved[name] }

// ErrBadNumber is wrapped by AppendAttributeValue for an N value that is
// not a number.
var ErrBadNumber = errors.New("number attribute (N) is not a number")

// AppendAttributeValue appends av as JSON to dst: N (and NS members) as a
// number literal with the exact digits DynamoDB sent (never through a
// float), S as a string, B (and BS members) as a base64 string, BOOL as
// true/false, NULL as null, L and the sets as arrays, M as an object with
// its keys sorted (so the text is a pure function of the value).
func AppendAttributeValue(dst []byte, av types.AttributeValue) ([]byte, error) {
	var err error
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return streamd.AppendJSONString(dst, v.Value), nil
	case *types.AttributeValueMemberN:
		return appendNumber(dst, v.Value)
	case *types.AttributeValueMemberB:
		return appendBinary(dst, v.Value), nil
	case *types.AttributeValueMemberBOOL:
		if v.Value {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case *types.AttributeValueMemberNULL:
		return append(dst, "null"...), nil
	case *types.AttributeValueMemberL:
		dst = append(dst, '[')
		for i, e := range v.Value {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = AppendAttributeValue(dst, e); err != nil {
				return dst, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return append(dst, ']'), nil
	case *types.AttributeValueMemberM:
		return appendMap(dst, v.Value)
	case *types.AttributeValueMemberSS:
		dst = append(dst, '[')
		for i, e := range v.Value {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = streamd.AppendJSONString(dst, e)
		}
		return append(dst, ']'), nil
	case *types.AttributeValueMemberNS:
		dst = append(dst, '[')
		for i, e := range v.Value {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendNumber(dst, e); err != nil {
				return dst, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return append(dst, ']'), nil
	case *types.AttributeValueMemberBS:
		dst = append(dst, '[')
		for i, e := range v.Value {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendBinary(dst, e)
		}
		return append(dst, ']'), nil
	case nil:
		return append(dst, "null"...), nil
	default:
		return dst, fmt.Errorf("attribute value of type %T is not supported", av)
	}
}

// appendMap appends an M value (or an image) as a JSON object with sorted
// keys.
func appendMap(dst []byte, m map[string]types.AttributeValue) ([]byte, error) {
	dst = append(dst, '{')
	var err error
	for i, k := range sortedNames(m) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = streamd.AppendJSONString(dst, k)
		dst = append(dst, ':')
		if dst, err = AppendAttributeValue(dst, m[k]); err != nil {
			return dst, fmt.Errorf("%s: %w", k, err)
		}
	}
	return append(dst, '}'), nil
}

func sortedNames(m map[string]types.AttributeValue) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// appendNumber appends DynamoDB number text as a JSON number literal,
// digit for digit. DynamoDB normalises numbers, so the text is already a
// JSON number; a leading "+" or a bare leading/trailing "." (accepted by
// DynamoDB on input) is repaired; anything else is an error.
func appendNumber(dst []byte, s string) ([]byte, error) {
	t := strings.TrimPrefix(s, "+")
	neg := strings.HasPrefix(t, "-")
	if neg {
		t = t[1:]
	}
	mant, exp, hasExp := strings.Cut(t, "e")
	if !hasExp {
		mant, exp, hasExp = strings.Cut(t, "E")
	}
	intPart, frac, hasFrac := strings.Cut(mant, ".")
	if intPart == "" && (!hasFrac || frac == "") || !digits(intPart) || !digits(frac) {
		return dst, fmt.Errorf("%q: %w", s, ErrBadNumber)
	}
	if hasExp {
		e := strings.TrimPrefix(strings.TrimPrefix(exp, "+"), "-")
		if e == "" || !digits(e) {
			return dst, fmt.Errorf("%q: %w", s, ErrBadNumber)
		}
	}
	// Strip redundant leading zeros of the integer part (JSON forbids them).
	for len(intPart) > 1 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	if intPart == "" {
		intPart = "0"
	}
	if neg {
		dst = append(dst, '-')
	}
	dst = append(dst, intPart...)
	if hasFrac && frac != "" {
		dst = append(dst, '.')
		dst = append(dst, frac...)
	}
	if hasExp {
		dst = append(dst, 'e')
		dst = append(dst, exp...)
	}
	return dst, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// AppendChange appends the JSON change record of a stream record to dst:
//
//	{"op":"insert|modify|remove","event_time":"RFC 3339 UTC",
//	 "sequence_number":"…","event_id":"…","keys":{…},
//	 "new_image":{…}|null,"old_image":{…}|null, ATTRIBUTES…}
//
// ATTRIBUTES are the current image's attributes flattened at the top level,
// in name order: NewImage for insert and modify, OldImage for remove (Keys
// when the stream does not carry that image). An attribute whose name is
// reserved (IsReserved) is left out of the top level.
func AppendChange(dst []byte, rec types.Record) ([]byte, error) {
	sr := rec.Dynamodb
	if sr == nil {
		return dst, errors.New("stream record has no dynamodb payload")
	}
	var op string
	switch rec.EventName {
	case types.OperationTypeInsert:
		op = OpInsert
	case types.OperationTypeModify:
		op = OpModify
	case types.OperationTypeRemove:
		op = OpRemove
	default:
		return dst, fmt.Errorf("stream record has event name %q", rec.EventName)
	}
	var err error
	dst = append(dst, `{"op":"`...)
	dst = append(dst, op...)
	dst = append(dst, `","event_time":`...)
	if sr.ApproximateCreationDateTime != nil {
		dst = append(dst, '"')
		dst = sr.ApproximateCreationDateTime.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"sequence_number":`...)
	dst = streamd.AppendJSONString(dst, aws.ToString(sr.SequenceNumber))
	dst = append(dst, `,"event_id":`...)
	dst = streamd.AppendJSONString(dst, aws.ToString(rec.EventID))
	dst = append(dst, `,"keys":`...)
	if dst, err = appendImage(dst, sr.Keys); err != nil {
		return dst, fmt.Errorf("keys: %w", err)
	}
	dst = append(dst, `,"new_image":`...)
	if dst, err = appendImage(dst, sr.NewImage); err != nil {
		return dst, fmt.Errorf("new image: %w", err)
	}
	dst = append(dst, `,"old_image":`...)
	if dst, err = appendImage(dst, sr.OldImage); err != nil {
		return dst, fmt.Errorf("old image: %w", err)
	}
	cur := sr.NewImage
	if op == OpRemove {
		cur = sr.OldImage
	}
	if cur == nil {
		cur = sr.Keys
	}
	for _, k := range sortedNames(cur) {
		if reserved[k] {
			continue
		}
		dst = append(dst, ',')
		dst = streamd.AppendJSONString(dst, k)
		dst = append(dst, ':')
		if dst, err = AppendAttributeValue(dst, cur[k]); err != nil {
			return dst, fmt.Errorf("%s: %w", k, err)
		}
	}
	return append(dst, '}'), nil
}

// appendImage appends an image as an object, or null when absent.
func appendImage(dst []byte, m map[string]types.AttributeValue) ([]byte, error) {
	if m == nil {
		return append(dst, "null"...), nil
	}
	return appendMap(dst, m)
}
