package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/streamd/streamd/internal/config"
)

// RedactedMark replaces a secret; it is the mark internal/config uses.
const RedactedMark = "[REDACTED]"

// minSecretLen is the shortest value treated as a secret. Shorter values
// would turn ordinary text into marks everywhere and are not replaced; this
// matches internal/config's own scrubbing.
const minSecretLen = 3

// Redactor replaces known secret values in text. A nil *Redactor, or one
// without secrets, returns text unchanged. It is safe for concurrent use.
type Redactor struct {
	r *strings.Replacer
}

// NewRedactor returns a Redactor for secrets. Empty values and values
// shorter than 3 bytes are ignored; when one secret contains another, the
// longer one is replaced whole.
func NewRedactor(secrets ...string) *Redactor {
	var list []string
	for _, s := range secrets {
		if len(s) >= minSecretLen && !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	if len(list) == 0 {
		return &Redactor{}
	}
	// Longest first: the replacer tries old strings in argument order.
	slices.SortStableFunc(list, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(list))
	for _, s := range list {
		pairs = append(pairs, s, RedactedMark)
	}
	return &Redactor{r: strings.NewReplacer(pairs...)}
}

// Redact returns s with every secret replaced by RedactedMark.
func (r *Redactor) Redact(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// ConfigSecrets returns the secret values in cfg: every value that
// cfg.Redacted() hides (keys named like a secret, passwords in URLs,
// values of secret-looking ${ENV} variables), as the parts that differ, so
// that a Redactor built from them hides exactly what Redacted hides.
func ConfigSecrets(cfg *config.Config) []string {
	if cfg == nil {
		return nil
	}
	var out []string
	collectSecrets(reflect.ValueOf(cfg).Elem(), reflect.ValueOf(cfg.Redacted()).Elem(), &out)
	return out
}

// collectSecrets walks orig and its redacted copy side by side.
func collectSecrets(orig, red reflect.Value, out *[]string) {
	switch orig.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !orig.IsNil() && !red.IsNil() {
			collectSecrets(orig.Elem(), red.Elem(), out)
		}
	case reflect.Struct:
		for i := range orig.NumField() {
			if orig.Type().Field(i).IsExported() {
				collectSecrets(orig.Field(i), red.Field(i), out)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range min(orig.Len(), red.Len()) {
			collectSecrets(orig.Index(i), red.Index(i), out)
		}
	case reflect.Map:
		for _, k := range orig.MapKeys() {
			if rv := red.MapIndex(k); rv.IsValid() {
				collectSecrets(orig.MapIndex(k), rv, out)
			}
		}
	case reflect.String:
		o, r := orig.String(), red.String()
		if o != r {
			*out = append(*out, secretParts(o, r)...)
		}
	}
}

// secretParts returns what red hides of orig: the text of orig that stands
// where red has RedactedMark. When the two cannot be aligned (red is not
// orig with marks in it), all of orig is returned. A URL's password is
// returned decoded as well.
func secretParts(orig, red string) []string {
	var out []string
	if u, err := url.Parse(orig); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			out = append(out, pw)
		}
	}
	parts := strings.Split(red, RedactedMark)
	if len(parts) < 2 || !strings.HasPrefix(orig, parts[0]) {
		return append(out, orig)
	}
	rest := orig[len(parts[0]):]
	var found []string
	for i, p := range parts[1:] {
		last := i == len(parts)-2
		var j int
		switch {
		case last && strings.HasSuffix(rest, p) && len(rest) > len(p):
			j = len(rest) - len(p)
		case last:
			j = -1
		case p == "":
			j = -1 // two marks side by side: the boundary is unknown
		default:
			j = strings.Index(rest[1:], p) + 1 // a secret is never empty
			if j == 0 {
				j = -1
			}
		}
		if j <= 0 {
			return append(out, orig)
		}
		found = append(found, rest[:j])
		rest = rest[j+len(p):]
	}
	return append(out, found...)
}

// RedactingHandler is a slog.Handler that replaces secret values in the
// message and in every attribute value (strings, errors, Stringers, and
// anything else through its fmt form, inside groups too) before handing
// the record to the next handler. Non-string values that contain no secret
// are passed on unchanged, so the JSON handler still renders numbers,
// durations and times natively.
type RedactingHandler struct {
	next slog.Handler
	r    *Redactor
}

// NewRedactingHandler wraps next so that no secret known to r reaches it.
func NewRedactingHandler(next slog.Handler, r *Redactor) *RedactingHandler {
	return &RedactingHandler{next: next, r: r}
}

// Enabled implements slog.Handler.
func (h *RedactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *RedactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	if h.r == nil || h.r.r == nil {
		return h.next.Handle(ctx, rec)
	}
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *RedactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if h.r == nil || h.r.r == nil {
		return &RedactingHandler{next: h.next.WithAttrs(attrs), r: h.r}
	}
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return &RedactingHandler{next: h.next.WithAttrs(red), r: h.r}
}

// WithGroup implements slog.Handler.
func (h *RedactingHandler) WithGroup(name string) slog.Handler {
	return &RedactingHandler{next: h.next.WithGroup(name), r: h.r}
}

func (h *RedactingHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.Redact(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]slog.Attr, len(g))
		for i, ga := range g {
			red[i] = h.attr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, h.r.Redact(x.Error())) // what the JSON handler prints for an error
		case []byte:
			if s := string(x); h.r.Redact(s) != s {
				return slog.String(a.Key, h.r.Redact(s))
			}
		default:
			if red, ok := h.redactJSON(x); ok {
				return slog.Any(a.Key, red)
			}
			// What a text handler prints (%+v, a Stringer's String).
			if s := fmt.Sprintf("%+v", x); h.r.Redact(s) != s {
				return slog.String(a.Key, h.r.Redact(s))
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// redactJSON renders x as the JSON handler would, and when a secret is in
// any of its strings (keys included) returns the decoded value with those
// strings redacted, so the output keeps its structure.
func (h *RedactingHandler) redactJSON(x any) (any, bool) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, false
	}
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	changed := false
	var walk func(any) any
	walk = func(v any) any {
		switch t := v.(type) {
		case string:
			if r := h.r.Redact(t); r != t {
				changed = true
				return r
			}
		case []any:
			for i := range t {
				t[i] = walk(t[i])
			}
		case map[string]any:
			out := make(map[string]any, len(t))
			for k, e := range t {
				out[walk(k).(string)] = walk(e)
			}
			return out
		}
		return v
	}
	v = walk(v)
	return v, changed
}
