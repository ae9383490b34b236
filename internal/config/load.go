package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// origin remembers where a parsed config came from, so that Validate can
// put file names and lines into its messages.
type origin struct {
	name    string
	lines   map[string]int // key path → line of the key
	secrets []string       // values that must never be printed
}

// line returns the line of path or of its nearest recorded ancestor.
func (o *origin) line(path string) int {
	if o == nil {
		return 0
	}
	for path != "" {
		if l, ok := o.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return o.lines[""]
}

// Load reads, expands, decodes, defaults and validates the config file at
// path, taking ${ENV} values from the process environment. Messages name
// the file as path was given.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(data, path, os.LookupEnv)
}

// Parse decodes a config file's contents strictly, applies the defaults and
// validates the result. name is used in messages ("name:line: ..."); env
// looks up ${NAME} variables (nil means os.LookupEnv). Every problem found
// is returned, joined with errors.Join; each is an *Error.
func Parse(data []byte, name string, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	d := &decoder{src: &origin{name: name, lines: map[string]int{"": 1}}, env: env}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Msg: "the config is empty; it needs at least one pipeline", Err: ErrMissingKey}
		}
		return nil, syntaxError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: name, Line: extra.Line, Msg: "the file holds more than one YAML document; put everything in one", Err: ErrSyntax}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(name, err)
	}
	cfg := &Config{}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if isNull(doc) {
		return nil, &Error{File: name, Line: 1, Msg: "the config is empty; it needs at least one pipeline", Err: ErrMissingKey}
	}
	d.decode(doc, reflect.ValueOf(cfg).Elem(), "", "", 0)
	cfg.src = d.src
	if len(d.errs) > 0 {
		return nil, d.src.scrub(errors.Join(d.errs...))
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// syntaxError turns a yaml.v3 parse error into an *Error with its line.
func syntaxError(name string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := syntaxLine(err)
	if line > 0 {
		msg = strings.TrimPrefix(msg, "line "+strconv.Itoa(line)+": ")
	}
	return &Error{File: name, Line: line, Msg: "invalid YAML: " + msg, Err: ErrSyntax}
}

// syntaxLine digs the line out of a yaml.v3 syntax error ("yaml: line 3: ...").
func syntaxLine(err error) (line int) {
	s := err.Error()
	if _, rest, ok := strings.Cut(s, "line "); ok {
		end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if end > 0 {
			n, _ := strconv.Atoi(rest[:end])
			return n
		}
	}
	return 0
}

// scrub removes the recorded secret values from the messages of errs.
func (o *origin) scrub(err error) error {
	if err == nil || o == nil || len(o.secrets) == 0 {
		return err
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	for _, e := range list {
		var ce *Error
		if errors.As(e, &ce) {
			ce.Msg = o.scrubString(ce.Msg)
		}
	}
	return err
}

// scrubString replaces every recorded secret in s.
func (o *origin) scrubString(s string) string {
	if o == nil {
		return s
	}
	for _, sec := range o.secrets {
		if len(sec) >= 3 {
			s = strings.ReplaceAll(s, sec, redactedMark)
		}
	}
	return s
}

// maxDepth bounds recursion through YAML aliases.
const maxDepth = 32

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decoder fills a Config from a yaml.Node tree, recording the line of
// every key and collecting every problem instead of stopping at the first.
type decoder struct {
	src  *origin
	env  func(string) (string, bool)
	errs []error
}

func (d *decoder) fail(line int, path string, sentinel error, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.errs = append(d.errs, &Error{File: d.src.name, Line: line, Path: path, Msg: msg, Err: sentinel})
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

// decode stores n into v. path is v's key path, key its last key name.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path, key string, depth int) {
	if depth > maxDepth {
		d.fail(n.Line, path, ErrSyntax, "nested too deeply (recursive alias?)")
		return
	}
	if n.Kind == yaml.AliasNode {
		d.decode(n.Alias, v, path, key, depth+1)
		return
	}
	if isNull(n) {
		return // keep the zero value: the default applies
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		nn := *n
		if n.Kind == yaml.ScalarNode {
			val, ok := d.expand(n, path, key)
			if !ok {
				return
			}
			if val == "" {
				return
			}
			nn.Value = val
		}
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(&nn); err != nil {
			d.fail(n.Line, path, ErrInvalidValue, "%s", strings.TrimPrefix(err.Error(), ErrInvalidValue.Error()+": "))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path, key, depth)
	case reflect.Struct:
		d.decodeStruct(n, v, path, depth)
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && v.Type().Elem().Kind() == reflect.String {
			// A single string where a list of strings is expected: a
			// one-element list ("paths: data/*.jsonl").
			if val, ok := d.expand(n, path+"[0]", key); ok {
				v.Set(reflect.ValueOf([]string{val}).Convert(v.Type()))
			}
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(n.Line, path, ErrInvalidValue, "expected a list, got %s", nodeKind(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			d.src.lines[p] = c.Line
			d.decode(c, s.Index(i), p, key, depth+1)
		}
		v.Set(s)
	case reflect.String:
		if val, ok := d.scalar(n, path, key); ok {
			v.SetString(val)
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		val, ok := d.scalar(n, path, key)
		if !ok || val == "" {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(val, "_", ""), 10, v.Type().Bits())
		if err != nil {
			d.fail(n.Line, path, ErrInvalidValue, "invalid integer %q", val)
			return
		}
		v.SetInt(i)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n.Line, path, ErrInvalidValue, "expected a mapping, got %s", nodeKind(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := path + "." + k.Value
			d.src.lines[p] = val.Line
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, ev, p, k.Value, depth+1)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
		}
		v.Set(m)
	case reflect.Float64:
		val, ok := d.scalar(n, path, key)
		if !ok || val == "" {
			return
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(val, "_", ""), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(n.Line, path, ErrInvalidValue, "invalid number %q", val)
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		val, ok := d.scalar(n, path, key)
		if !ok || val == "" {
			return
		}
		b, err := strconv.ParseBool(val)
		if err != nil {
			d.fail(n.Line, path, ErrInvalidValue, "invalid boolean %q (want true or false)", val)
			return
		}
		v.SetBool(b)
	default:
		d.fail(n.Line, path, ErrInvalidValue, "cannot decode into %s", v.Type())
	}
}

// field is one yaml-tagged struct field.
type field struct {
	name  string
	index int
}

// fieldsOf returns the yaml keys of t in declaration order and the index
// of its "Line" bookkeeping field (-1 when it has none).
func fieldsOf(t reflect.Type) (fields []field, lineIndex int) {
	lineIndex = -1
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" {
			if f.Name == "Line" && f.Type.Kind() == reflect.Int {
				lineIndex = i
			}
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		fields = append(fields, field{name: tag, index: i})
	}
	return fields, lineIndex
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		what := "the top level"
		if path != "" {
			what = path
		}
		d.fail(n.Line, "", ErrInvalidValue, "%s: expected a mapping (key: value), got %s", what, nodeKind(n))
		return
	}
	fields, lineIndex := fieldsOf(v.Type())
	if lineIndex >= 0 {
		v.Field(lineIndex).SetInt(int64(n.Line))
	}
	seen := map[string]int{}
	// Merge keys (<<: *anchor) first, so explicit keys override them.
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.ShortTag() != "!!merge" {
			continue
		}
		if val.Kind == yaml.AliasNode {
			val = val.Alias
		}
		if val.Kind == yaml.SequenceNode {
			for _, m := range val.Content {
				d.decodeStruct(m, v, path, depth+1)
			}
			continue
		}
		d.decodeStruct(val, v, path, depth+1)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			continue
		}
		name := k.Value
		child := join(path, name)
		if first, dup := seen[name]; dup {
			d.fail(k.Line, child, ErrInvalidValue, "duplicate key %q (first at line %d)", name, first)
			continue
		}
		seen[name] = k.Line
		idx := -1
		for _, f := range fields {
			if f.name == name {
				idx = f.index
				break
			}
		}
		if idx < 0 {
			d.unknown(k, path, fields)
			continue
		}
		d.src.lines[child] = k.Line
		d.decode(val, v.Field(idx), child, name, depth+1)
	}
}

// unknown reports an unknown key with the known ones and a suggestion.
func (d *decoder) unknown(k *yaml.Node, path string, fields []field) {
	where := "at the top level"
	if path != "" {
		where = "in " + path
	}
	known := make([]string, len(fields))
	best, bestDist := "", 1<<30
	for i, f := range fields {
		known[i] = f.name
		if dist := editDistance(k.Value, f.name); dist < bestDist {
			best, bestDist = f.name, dist
		}
	}
	msg := fmt.Sprintf("unknown key %q %s (known: %s)", k.Value, where, strings.Join(known, ", "))
	if best != "" && bestDist <= max(2, len(k.Value)/3) {
		msg += fmt.Sprintf("; did you mean %q?", best)
	}
	d.errs = append(d.errs, &Error{File: d.src.name, Line: k.Line, Path: join(path, k.Value), Msg: msg, Err: ErrUnknownKey})
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// scalar returns n's expanded value, failing when n is not a scalar.
func (d *decoder) scalar(n *yaml.Node, path, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n.Line, path, ErrInvalidValue, "expected a single value, got %s", nodeKind(n))
		return "", false
	}
	return d.expand(n, path, key)
}

// expand applies ${NAME}, ${NAME:-default} and $$ to a scalar's value and
// remembers values that must stay secret.
func (d *decoder) expand(n *yaml.Node, path, key string) (string, bool) {
	out, err := expandEnv(n.Value, d.env, func(name, val string) {
		if secretName(name) {
			d.src.secrets = append(d.src.secrets, val)
		}
	})
	if err != nil {
		var ue *unsetError
		if errors.As(err, &ue) {
			d.fail(n.Line, path, ErrUnsetEnv, "environment variable %s is not set (set it, or write ${%s:-default})", ue.name, ue.name)
		} else {
			d.fail(n.Line, path, ErrInvalidValue, "%v", err)
		}
		return "", false
	}
	if secretName(key) && out != "" {
		d.src.secrets = append(d.src.secrets, out)
	}
	return out, true
}

type unsetError struct{ name string }

func (e *unsetError) Error() string { return "environment variable " + e.name + " is not set" }

// expandEnv expands ${NAME} and ${NAME:-default} (default when unset or
// empty) in s; $$ is a literal $ and any other $ is kept as is. seen is
// called with each variable that was found set.
func expandEnv(s string, env func(string) (string, bool), seen func(name, val string)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
		default:
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		body := s[i+2 : i+2+end]
		name, def, hasDef := strings.Cut(body, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("invalid variable name %q in ${...} (want letters, digits and _)", name)
		}
		val, ok := env(name)
		if ok {
			seen(name, val)
		}
		switch {
		case ok && (val != "" || !hasDef):
			b.WriteString(val)
		case hasDef:
			b.WriteString(def)
		default:
			return "", &unsetError{name: name}
		}
		i += 2 + end
	}
	return b.String(), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return false
	}
	return true
}

// secretName reports whether a key or variable name suggests a secret.
func secretName(s string) bool {
	s = strings.ToLower(s)
	for _, w := range []string{"password", "passwd", "secret", "token", "credential", "api_key", "apikey", "private_key"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
