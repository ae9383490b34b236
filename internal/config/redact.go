package config

import (
	"net/url"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// redactedMark replaces a secret in printed configs and messages.
const redactedMark = "[REDACTED]"

// Redacted returns a deep copy of c that is safe to print or log: values
// of keys named like a secret (password, secret, token, ...) are replaced,
// so are the passwords in URLs (https://user:pw@host) and every value that
// came from a secret-looking ${ENV} variable.
func (c *Config) Redacted() *Config {
	if c == nil {
		return nil
	}
	out := *c
	v := reflect.ValueOf(&out).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		v.Field(i).Set(redactValue(v.Field(i), yamlKey(f), c.src))
	}
	return &out
}

// String renders the redacted config as YAML, defaults included. It is
// meant for display ("streamd validate" prints it): values are shown after
// ${ENV} expansion, so a literal $ in a value is not escaped again.
func (c *Config) String() string {
	if c == nil {
		return "<nil>"
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c.Redacted()); err != nil {
		return "config: " + err.Error()
	}
	if err := enc.Close(); err != nil {
		return "config: " + err.Error()
	}
	return b.String()
}

func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

// redactValue returns a deep copy of v with secrets replaced; key is the
// yaml key v sits under.
func redactValue(v reflect.Value, key string, src *origin) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(redactValue(v.Elem(), key, src))
		return p
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if f.IsExported() {
				out.Field(i).Set(redactValue(v.Field(i), yamlKey(f), src))
			}
		}
		return out
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(redactValue(v.Index(i), key, src))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		it := v.MapRange()
		for it.Next() {
			out.SetMapIndex(it.Key(), redactValue(it.Value(), it.Key().String(), src))
		}
		return out
	case reflect.String:
		s := v.String()
		if s == "" {
			return v
		}
		if secretName(key) {
			s = redactedMark
		} else {
			s = src.scrubString(redactURL(s))
		}
		out := reflect.New(v.Type()).Elem()
		out.SetString(s)
		return out
	}
	return v
}

// redactURL hides the password of a URL with user info; anything else is
// returned unchanged.
func redactURL(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); !has {
		return s
	}
	u.User = url.UserPassword(u.User.Username(), "xxxxx")
	return strings.Replace(u.String(), "xxxxx", redactedMark, 1)
}
