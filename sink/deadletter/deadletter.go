package deadletter

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink"
)

// ErrWrongPipeline is returned by Write for an intent of another pipeline.
var ErrWrongPipeline = errors.New("intent belongs to another pipeline")

// NoReason is the error text written for a dead letter that has none, so
// every line has a non-empty "error".
const NoReason = "dead-lettered without a reason"

// Sink writes a batch's dead letters as JSON lines to an object store.
type Sink struct {
	store    sink.ObjectStore
	pipeline string
}

var _ sink.Sink = (*Sink)(nil)

// New returns a dead-letter sink for pipeline writing to store. It does no
// I/O.
func New(store sink.ObjectStore, pipeline string) *Sink {
	return &Sink{store: store, pipeline: pipeline}
}

// Line is one dead-letter line as written (and as tests read it back).
type Line struct {
	Pipeline string `json:"pipeline"`
	Lane     string `json:"lane"`
	Position string `json:"position"`
	Error    string `json:"error"`
	// Raw is the record; invalid UTF-8 is replaced by U+FFFD.
	Raw string `json:"raw"`
	// RawBase64 holds the exact bytes when the record is not valid UTF-8.
	RawBase64 string `json:"raw_base64,omitempty"`
}

// Name returns the object name of the intent's dead letters:
// "<pipeline>-<streamd.LaneToken(lane)>-<from>-<to>.jsonl".
func (s *Sink) Name(in streamd.Intent) string {
	return fmt.Sprintf("%s-%s-%s-%s.jsonl", s.pipeline, streamd.LaneToken(in.Lane), in.From, in.To)
}

// Encode renders the dead letters of b for intent in as JSON lines.
func (s *Sink) Encode(in streamd.Intent, b *streamd.Batch) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, d := range b.Dead {
		l := Line{Pipeline: s.pipeline, Lane: d.Lane, Position: d.Pos.String(), Error: d.Error, Raw: string(d.Raw)}
		if l.Lane == "" {
			l.Lane = in.Lane
		}
		if l.Error == "" {
			l.Error = NoReason
		}
		if !utf8.Valid(d.Raw) {
			l.RawBase64 = base64.StdEncoding.EncodeToString(d.Raw)
		}
		enc.Encode(l) // a Line always encodes: strings only
	}
	return buf.Bytes()
}

// Write stores b.Dead under the intent's name; with no dead letters it
// writes nothing. The batch is not modified.
func (s *Sink) Write(ctx context.Context, in streamd.Intent, b *streamd.Batch) error {
	if in.Pipeline != "" && in.Pipeline != s.pipeline {
		return fmt.Errorf("write dead letters of %s: intent of pipeline %q: %w", s.pipeline, in.Pipeline, ErrWrongPipeline)
	}
	if len(b.Dead) == 0 {
		return nil
	}
	name := s.Name(in)
	if err := s.store.Put(ctx, name, bytes.NewReader(s.Encode(in, b))); err != nil {
		return fmt.Errorf("write dead letters %s: %w", name, err)
	}
	return nil
}

// Close releases nothing: the sink holds no resources of its own.
func (s *Sink) Close(context.Context) error { return nil }
