package config

import (
	"errors"
	"strconv"
)

// Sentinels wrapped by the errors of Parse, Load and Validate; test with
// errors.Is. ErrInvalidValue is declared with the value types.
var (
	// ErrSyntax is wrapped when the file is not well-formed YAML.
	ErrSyntax = errors.New("yaml syntax")
	// ErrUnknownKey is wrapped when a mapping has a key the contract does not know.
	ErrUnknownKey = errors.New("unknown key")
	// ErrMissingKey is wrapped when a required key is absent or empty.
	ErrMissingKey = errors.New("missing key")
	// ErrUnsetEnv is wrapped when ${NAME} names an unset variable and has no default.
	ErrUnsetEnv = errors.New("environment variable not set")
)

// Error is one problem found in a config. Parse, Load and Validate return
// every problem they find, joined with errors.Join; use errors.As to get
// at the parts.
type Error struct {
	// File is the config's name as given to Parse or Load ("" when the
	// config was built in code).
	File string
	// Line is the 1-based line the problem is on (0 when unknown).
	Line int
	// Path is the key path, such as pipelines[0].window.max_age.
	Path string
	// Msg is the human-readable message that follows the location; it
	// already names the key path and never contains secret values.
	Msg string
	// Err is the sentinel this error wraps.
	Err error
}

// Error renders "file:line: message".
func (e *Error) Error() string {
	loc := e.File
	if loc == "" {
		loc = "config"
	}
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	return loc + ": " + e.Msg
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }
