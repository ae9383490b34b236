package opensearch

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/streamd/streamd"
)

// tmplPart is a literal or a column reference of the index template.
type tmplPart struct {
	lit    string
	col    string // "" for a literal
	layout string // Go time layout for date/timestamp columns, "" for the default
}

// parseTemplate splits an index template such as "sales-{region}-{day:2006.01}".
func parseTemplate(s string) ([]tmplPart, error) {
	if s == "" {
		return nil, errors.New("empty index")
	}
	var parts []tmplPart
	for s != "" {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			parts = append(parts, tmplPart{lit: s})
			break
		}
		if s[i] == '}' {
			return nil, errors.New("'}' without '{'")
		}
		if i > 0 {
			parts = append(parts, tmplPart{lit: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, errors.New("'{' without '}'")
		}
		ref := s[i+1 : i+j]
		col, layout, _ := strings.Cut(ref, ":")
		if col == "" || strings.ContainsAny(col, "{") {
			return nil, fmt.Errorf("bad column reference {%s}", ref)
		}
		parts = append(parts, tmplPart{col: col, layout: layout})
		s = s[i+j+1:]
	}
	for _, p := range parts {
		if p.col == "" {
			if msg := badLiteral(p.lit); msg != "" {
				return nil, errors.New(msg)
			}
		}
	}
	if parts[0].col == "" && strings.IndexAny(parts[0].lit[:1], "_-+") == 0 {
		return nil, errors.New("an index name must not start with '_', '-' or '+'")
	}
	return parts, nil
}

func badLiteral(s string) string {
	if s != strings.ToLower(s) {
		return "an index name must be lowercase"
	}
	if strings.ContainsAny(s, `\/*?"<>| ,#:`) {
		return `an index name must not contain \ / * ? " < > | space , # :`
	}
	return ""
}

// plan is what Write derives once per schema.
type plan struct {
	idCols []int
	tmpl   []planPart
	static string // the index when the template has no column
}

type planPart struct {
	lit    string
	col    int // -1 for a literal
	name   string
	layout string
}

// plan returns the plan for schema sc, building it on first use.
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
	p := &plan{}
	for _, name := range s.cfg.ID {
		ci := sc.Index(name)
		if ci < 0 {
			return nil, fmt.Errorf("id column %q is not in the schema: %w", name, ErrBadConfig)
		}
		p.idCols = append(p.idCols, ci)
	}
	static := true
	for _, t := range s.tmpl {
		if t.col == "" {
			p.tmpl = append(p.tmpl, planPart{lit: t.lit, col: -1})
			continue
		}
		static = false
		ci := sc.Index(t.col)
		if ci < 0 {
			return nil, fmt.Errorf("index template column %q is not in the schema: %w", t.col, ErrBadConfig)
		}
		switch k := sc.Fields[ci].Type.Kind; k {
		case streamd.KindString, streamd.KindInt32, streamd.KindInt64, streamd.KindDecimal, streamd.KindBool:
			if t.layout != "" {
				return nil, fmt.Errorf("index template column %q of type %s takes no time layout: %w", t.col, k, ErrBadConfig)
			}
		case streamd.KindDate, streamd.KindTimestamp:
		default:
			return nil, fmt.Errorf("index template column %q of type %s cannot name an index: %w", t.col, k, ErrBadConfig)
		}
		p.tmpl = append(p.tmpl, planPart{col: ci, name: t.col, layout: t.layout})
	}
	if static {
		for _, t := range p.tmpl {
			p.static += t.lit
		}
	}
	s.plans[fp] = p
	return p, nil
}

// indexName renders the index of row i into dst; ok is false (with the
// null column's name) when a template column is null.
func (p *plan) indexName(dst []byte, b *streamd.Batch, i int) ([]byte, string, bool) {
	if p.static != "" {
		return append(dst, p.static...), "", true
	}
	for _, t := range p.tmpl {
		if t.col < 0 {
			dst = append(dst, t.lit...)
			continue
		}
		c := &b.Cols[t.col]
		if !c.Valid[i] {
			return dst, t.name, false
		}
		start := len(dst)
		switch c.Type.Kind {
		case streamd.KindDate:
			layout := t.layout
			if layout == "" {
				layout = time.DateOnly
			}
			dst = time.Unix(int64(c.Int32[i])*86400, 0).UTC().AppendFormat(dst, layout)
		case streamd.KindTimestamp:
			layout := t.layout
			if layout == "" {
				layout = time.DateOnly
			}
			dst = time.UnixMicro(c.Int64[i]).UTC().AppendFormat(dst, layout)
		default:
			dst = appendText(dst, c, i)
		}
		sanitize(dst[start:])
	}
	return dst, "", true
}

// sanitize lowercases an index name fragment in place and replaces the
// characters OpenSearch forbids in index names with '_'.
func sanitize(b []byte) {
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case strings.IndexByte(`\/*?"<>| ,#:`, c) >= 0:
			b[i] = '_'
		}
	}
}

// maxIDBytes is OpenSearch's limit on a document _id.
const maxIDBytes = 512

// docID renders the _id of row i into dst; ok is false (with the null
// column's name) when an id column is null.
func (p *plan) docID(dst []byte, b *streamd.Batch, i int, laneToken string) ([]byte, string, bool) {
	start := len(dst)
	switch len(p.idCols) {
	case 0:
		dst = append(dst, laneToken...)
		dst = append(dst, '-')
		dst = append(dst, b.Pos[i].String()...)
		return dst, "", true
	case 1:
		c := &b.Cols[p.idCols[0]]
		if !c.Valid[i] {
			return dst, b.Schema.Fields[p.idCols[0]].Name, false
		}
		dst = appendText(dst, c, i)
	default:
		var scratch [64]byte
		for k, ci := range p.idCols {
			c := &b.Cols[ci]
			if !c.Valid[i] {
				return dst[:start], b.Schema.Fields[ci].Name, false
			}
			if k > 0 {
				dst = append(dst, '|')
			}
			for _, ch := range appendText(scratch[:0], c, i) {
				if ch == '|' || ch == '\\' {
					dst = append(dst, '\\')
				}
				dst = append(dst, ch)
			}
		}
	}
	if len(dst)-start > maxIDBytes {
		sum := sha256.Sum256(dst[start:])
		dst = append(dst[:start], "sha256-"...)
		dst = hex.AppendEncode(dst, sum[:])
	}
	return dst, "", true
}

// appendText renders value i of c as plain text: strings and json as they
// are, numbers in decimal (decimals with exactly their scale), bool as
// true/false, date YYYY-MM-DD, timestamp RFC 3339 with microseconds in UTC,
// binary as standard base64.
func appendText(dst []byte, c *streamd.Column, i int) []byte {
	switch c.Type.Kind {
	case streamd.KindString, streamd.KindJSON:
		return append(dst, c.Bytes.At(i)...)
	case streamd.KindBool:
		return strconv.AppendBool(dst, c.Bool[i])
	case streamd.KindInt32:
		return strconv.AppendInt(dst, int64(c.Int32[i]), 10)
	case streamd.KindInt64:
		return strconv.AppendInt(dst, c.Int64[i], 10)
	case streamd.KindFloat64:
		return strconv.AppendFloat(dst, c.Float64[i], 'g', -1, 64)
	case streamd.KindDecimal:
		if c.Type.Wide() {
			return streamd.AppendDecimalWide(dst, c.Bytes.At(i), int(c.Type.Scale))
		}
		return streamd.AppendDecimal(dst, c.Int64[i], int(c.Type.Scale))
	case streamd.KindDate:
		return time.Unix(int64(c.Int32[i])*86400, 0).UTC().AppendFormat(dst, time.DateOnly)
	case streamd.KindTimestamp:
		return time.UnixMicro(c.Int64[i]).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	case streamd.KindBinary:
		return base64.StdEncoding.AppendEncode(dst, c.Bytes.At(i))
	}
	return dst
}
