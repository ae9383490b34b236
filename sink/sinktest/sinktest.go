package sinktest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink"
)

// Pipeline is the pipeline name of every intent the suite writes; build
// sinks for it.
const Pipeline = "sinktest"

// Lane is the lane of the suite's batches.
const Lane = "sinktest/lane-0"

// Row is one record as the destination holds it, keyed by column name,
// with values as encoding/json decodes them with UseNumber: string, bool,
// json.Number, map[string]any, []any, nil. Binary values are standard
// base64 strings, dates "YYYY-MM-DD", timestamps RFC 3339 with
// microseconds in UTC — the forms of streamd.AppendRowJSON.
type Row map[string]any

// Reader reads back everything a destination durably holds.
type Reader interface {
	// ReadAll returns every record the destination holds, in any order.
	ReadAll(ctx context.Context) ([]Row, error)
}

// ReaderFunc adapts a function to Reader.
type ReaderFunc func(ctx context.Context) ([]Row, error)

// ReadAll calls f.
func (f ReaderFunc) ReadAll(ctx context.Context) ([]Row, error) { return f(ctx) }

// NewFunc returns a new sink over a new, empty destination, and the Reader
// of that destination. It registers its own cleanup with t.
type NewFunc func(t *testing.T) (sink.Sink, Reader)

// Option tunes Run for what a destination can do.
type Option func(*options)

type options struct {
	poison func(*Record)
	atomic bool
}

// WithPoison declares how to make a record that the destination rejects
// for good (a mapping conflict, an empty key); the partial-failure check
// poisons a few records with it. Without it that check is not run: the
// destination is taken to accept every row, which roundtrip checks.
func WithPoison(f func(r *Record)) Option { return func(o *options) { o.poison = f } }

// Atomic declares that a failed Write leaves nothing of its batch visible
// (file sinks that put one object per batch).
func Atomic() Option { return func(o *options) { o.atomic = true } }

// Record is the source of one row of the suite's schema.
type Record struct {
	ID      string  // id: string, the natural key
	Seq     int64   // seq: int64
	Qty     int32   // qty: int32
	Amount  int64   // amount: decimal(12,2), unscaled
	Wide    string  // wide: decimal(30,4), as text
	Active  bool    // active: bool
	Day     int32   // day: date, days since epoch
	At      int64   // at: timestamp, µs UTC
	Note    *string // note: string, nil is null
	Payload string  // payload: json, "" is null
	Blob    []byte  // blob: binary, nil is null
	Ratio   float64 // ratio: float64
}

// Schema is the schema of the suite's batches.
var Schema = func() *streamd.Schema {
	s, err := streamd.NewSchema(
		streamd.Field{Name: "id", Type: streamd.Type{Kind: streamd.KindString}},
		streamd.Field{Name: "seq", Type: streamd.Type{Kind: streamd.KindInt64}},
		streamd.Field{Name: "qty", Type: streamd.Type{Kind: streamd.KindInt32}},
		streamd.Field{Name: "amount", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 12, Scale: 2}},
		streamd.Field{Name: "wide", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 30, Scale: 4}},
		streamd.Field{Name: "active", Type: streamd.Type{Kind: streamd.KindBool}},
		streamd.Field{Name: "day", Type: streamd.Type{Kind: streamd.KindDate}},
		streamd.Field{Name: "at", Type: streamd.Type{Kind: streamd.KindTimestamp}},
		streamd.Field{Name: "note", Type: streamd.Type{Kind: streamd.KindString}},
		streamd.Field{Name: "payload", Type: streamd.Type{Kind: streamd.KindJSON}},
		streamd.Field{Name: "blob", Type: streamd.Type{Kind: streamd.KindBinary}},
		streamd.Field{Name: "ratio", Type: streamd.Type{Kind: streamd.KindFloat64}},
	)
	if err != nil {
		panic(err)
	}
	return s
}()

// MakeRecord returns the suite's deterministic record number i; every
// field varies with i, a few are null.
func MakeRecord(i int) Record {
	r := Record{
		ID:      fmt.Sprintf("tx-%05d", i),
		Seq:     int64(i)*1_000_003 - 5_000_000,
		Qty:     int32(i%17 - 3),
		Amount:  int64(i)*1999 - 10_000, // -100.00, then steps of 19.99
		Wide:    fmt.Sprintf("%d12345678901234567890.%04d", i%10, i%10000),
		Active:  i%3 == 0,
		Day:     int32(20526 + i%40), // 2026-03-14 onwards
		At:      1_773_482_400_000_000 + int64(i)*1_234_567,
		Payload: fmt.Sprintf(`{"n":%d,"tags":["a","b%d"],"price":%d.50,"nested":{"ok":%v}}`, i, i%4, i, i%2 == 0),
		Ratio:   float64(i) / 8,
	}
	if i%5 != 0 {
		n := fmt.Sprintf("note \"%d\" ünï\t✓", i)
		r.Note = &n
	}
	if i%7 != 0 {
		r.Blob = []byte{byte(i), 0, 0xff, byte(i >> 8)}
	}
	if i%11 == 0 {
		r.Payload = ""
	}
	return r
}

// Records returns MakeRecord(from) … MakeRecord(from+n-1).
func Records(from, n int) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = MakeRecord(from + i)
	}
	return out
}

// PositionOf is the position of record i in the suite's lane.
func PositionOf(i int) streamd.Position { return streamd.Position{Offset: int64(i) * 100} }

// NewBatch builds a batch of recs, record k at position PositionOf(first+k),
// plus filtered more records counted as read and filtered (they extend the
// batch's range).
func NewBatch(t testing.TB, first int, recs []Record, filtered int) *streamd.Batch {
	t.Helper()
	b := streamd.NewBatch(Schema, Lane)
	for k, r := range recs {
		pos := PositionOf(first + k)
		b.NoteRead(pos, 200)
		b.AddRowMeta(pos, r.At)
		b.Cols[0].AppendBytes([]byte(r.ID))
		b.Cols[1].AppendInt64(r.Seq)
		b.Cols[2].AppendInt32(r.Qty)
		b.Cols[3].AppendInt64(r.Amount)
		w, err := streamd.ParseDecimalWide([]byte(r.Wide), Schema.Fields[4].Type)
		if err != nil {
			t.Fatalf("record %d: wide decimal %q: %v", first+k, r.Wide, err)
		}
		b.Cols[4].AppendBytes(w[:])
		b.Cols[5].AppendBool(r.Active)
		b.Cols[6].AppendInt32(r.Day)
		b.Cols[7].AppendInt64(r.At)
		if r.Note == nil {
			b.Cols[8].AppendNull()
		} else {
			b.Cols[8].AppendBytes([]byte(*r.Note))
		}
		if r.Payload == "" {
			b.Cols[9].AppendNull()
		} else {
			b.Cols[9].AppendBytes([]byte(r.Payload))
		}
		if r.Blob == nil {
			b.Cols[10].AppendNull()
		} else {
			b.Cols[10].AppendBytes(r.Blob)
		}
		b.Cols[11].AppendFloat64(r.Ratio)
	}
	for k := range filtered {
		b.NoteRead(PositionOf(first+len(recs)+k), 200)
		b.Filtered++
	}
	return b
}

// IntentOf returns the intent of batch b.
func IntentOf(b *streamd.Batch) streamd.Intent {
	return streamd.Intent{Pipeline: Pipeline, Lane: b.Lane, From: b.From, To: b.To}
}

// RowsOf renders the rows of b as Rows, the form a Reader returns.
func RowsOf(t testing.TB, b *streamd.Batch) []Row {
	t.Helper()
	out := make([]Row, b.Len())
	var buf []byte
	for i := range out {
		buf = streamd.AppendRowJSON(buf[:0], b, i)
		r, err := DecodeRow(buf)
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		out[i] = r
	}
	return out
}

// DecodeRow decodes a JSON object into a Row.
func DecodeRow(data []byte) (Row, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var r Row
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode row %.200s: %w", data, err)
	}
	return r, nil
}

// canon renders v canonically: numbers by exact value, maps with sorted
// keys, nulls inside objects dropped.
func canon(sb *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		sb.WriteString("null")
	case string:
		b, _ := json.Marshal(x)
		sb.Write(b)
	case bool:
		fmt.Fprint(sb, x)
	case json.Number:
		r, ok := new(big.Rat).SetString(string(x))
		if !ok {
			sb.WriteString("badnum:" + string(x))
			return
		}
		sb.WriteString(r.RatString())
	case float64:
		sb.WriteString(new(big.Rat).SetFloat64(x).RatString())
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k, e := range x {
			if e != nil {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		sb.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(sb, "%q:", k)
			canon(sb, x[k])
		}
		sb.WriteByte('}')
	case Row:
		canon(sb, map[string]any(x))
	case []any:
		sb.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				sb.WriteByte(',')
			}
			canon(sb, e)
		}
		sb.WriteByte(']')
	default:
		fmt.Fprintf(sb, "unexpected %T %v", v, v)
	}
}

// Canonical renders a row canonically, so that rows equal as JSON values
// (absent = null, numbers by value) render the same.
func Canonical(r Row) string {
	var sb strings.Builder
	canon(&sb, r)
	return sb.String()
}

// Diff compares two multisets of rows and describes the difference, ""
// when they are equal.
func Diff(got, want []Row) string {
	g := make([]string, len(got))
	for i, r := range got {
		g[i] = Canonical(r)
	}
	w := make([]string, len(want))
	for i, r := range want {
		w[i] = Canonical(r)
	}
	slices.Sort(g)
	slices.Sort(w)
	if slices.Equal(g, w) {
		return ""
	}
	var extra, missing []string
	i, j := 0, 0
	for i < len(g) || j < len(w) {
		switch {
		case j == len(w) || (i < len(g) && g[i] < w[j]):
			extra = append(extra, g[i])
			i++
		case i == len(g) || w[j] < g[i]:
			missing = append(missing, w[j])
			j++
		default:
			i++
			j++
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "got %d rows, want %d; %d unexpected, %d missing", len(got), len(want), len(extra), len(missing))
	for k, e := range extra {
		if k == 3 {
			break
		}
		fmt.Fprintf(&sb, "\n  unexpected: %.600s", e)
	}
	for k, m := range missing {
		if k == 3 {
			break
		}
		fmt.Fprintf(&sb, "\n  missing:    %.600s", m)
	}
	return sb.String()
}

func readAll(t *testing.T, r Reader) []Row {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := r.ReadAll(ctx)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	return rows
}

func expect(t *testing.T, r Reader, want []Row, what string) {
	t.Helper()
	if d := Diff(readAll(t, r), want); d != "" {
		t.Fatalf("%s: destination differs: %s", what, d)
	}
}

func write(t *testing.T, s sink.Sink, b *streamd.Batch) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.Write(ctx, IntentOf(b), b); err != nil {
		t.Fatalf("write [%s, %s]: %v", b.From, b.To, err)
	}
	if !b.Accounted() {
		t.Fatalf("batch does not reconcile after write: read %d != rows %d + filtered %d + deduplicated %d + dead %d",
			b.Read, b.Len(), b.Filtered, b.Deduplicated, len(b.Dead))
	}
}

// Run runs the conformance checks as subtests of t. newSink is called
// once per subtest (and per cancellation case).
func Run(t *testing.T, newSink NewFunc, opts ...Option) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	t.Run("empty", func(t *testing.T) { testEmpty(t, newSink) })
	t.Run("roundtrip", func(t *testing.T) { testRoundtrip(t, newSink) })
	t.Run("redo", func(t *testing.T) { testRedo(t, newSink) })
	if o.poison != nil {
		t.Run("partial_failure", func(t *testing.T) { testPartialFailure(t, newSink, o.poison) })
	} else {
		t.Log("partial_failure: not run, the destination rejects no row (no WithPoison)")
	}
	t.Run("cancel", func(t *testing.T) { testCancel(t, newSink, o.atomic) })
}

func testEmpty(t *testing.T, newSink NewFunc) {
	s, r := newSink(t)
	nothing := streamd.NewBatch(Schema, Lane)
	write(t, s, nothing)
	allFiltered := NewBatch(t, 0, nil, 5)
	write(t, s, allFiltered)
	if allFiltered.Read != 5 || allFiltered.Filtered != 5 || len(allFiltered.Dead) != 0 {
		t.Fatalf("counters changed: read %d filtered %d dead %d", allFiltered.Read, allFiltered.Filtered, len(allFiltered.Dead))
	}
	expect(t, r, nil, "after empty batches")
}

func testRoundtrip(t *testing.T, newSink NewFunc) {
	s, r := newSink(t)
	b := NewBatch(t, 0, Records(0, 120), 3)
	want := RowsOf(t, b)
	write(t, s, b)
	if b.Len() != 120 || len(b.Dead) != 0 {
		t.Fatalf("after write: %d rows, %d dead; want 120 rows, none dead (first: %+v)", b.Len(), len(b.Dead), first(b.Dead))
	}
	expect(t, r, want, "roundtrip")
}

func first(d []streamd.DeadLetter) any {
	if len(d) == 0 {
		return nil
	}
	return d[0]
}

func testRedo(t *testing.T, newSink NewFunc) {
	s, r := newSink(t)
	a := func() *streamd.Batch { return NewBatch(t, 0, Records(0, 60), 0) }
	bb := func() *streamd.Batch { return NewBatch(t, 60, Records(60, 60), 2) }
	want := append(RowsOf(t, a()), RowsOf(t, bb())...)

	write(t, s, a())
	write(t, s, a())
	expect(t, r, want[:60], "after intent A written twice")
	write(t, s, bb())
	write(t, s, bb())
	expect(t, r, want, "after intent B written twice")
}

func testPartialFailure(t *testing.T, newSink NewFunc, poison func(*Record)) {
	s, r := newSink(t)
	poisoned := map[int]bool{3: true, 17: true, 18: true}
	build := func() (*streamd.Batch, []Row, map[streamd.Position][]byte) {
		recs := Records(0, 40)
		for i := range recs {
			if poisoned[i] {
				poison(&recs[i])
			}
		}
		b := NewBatch(t, 0, recs, 1)
		rows := RowsOf(t, b)
		var good []Row
		raw := map[streamd.Position][]byte{}
		for i, row := range rows {
			if poisoned[i] {
				raw[b.Pos[i]] = streamd.AppendRowJSON(nil, b, i)
				continue
			}
			good = append(good, row)
		}
		return b, good, raw
	}
	for attempt := range 2 { // the second is a redo of the same intent
		b, good, raw := build()
		write(t, s, b)
		if len(b.Dead) != len(poisoned) || b.Len() != 40-len(poisoned) {
			t.Fatalf("attempt %d: %d rows and %d dead letters, want %d and %d: %+v", attempt, b.Len(), len(b.Dead), 40-len(poisoned), len(poisoned), b.Dead)
		}
		for _, d := range b.Dead {
			want, ok := raw[d.Pos]
			if !ok {
				t.Fatalf("attempt %d: dead letter at %s is not a poisoned row", attempt, d.Pos)
			}
			if d.Error == "" {
				t.Errorf("attempt %d: dead letter at %s has no reason", attempt, d.Pos)
			}
			if d.Lane != Lane {
				t.Errorf("attempt %d: dead letter lane %q", attempt, d.Lane)
			}
			if !bytes.Equal(d.Raw, want) {
				t.Errorf("attempt %d: dead letter raw\n got %s\nwant %s", attempt, d.Raw, want)
			}
			delete(raw, d.Pos)
		}
		for _, p := range b.Pos {
			if _, bad := raw[p]; bad {
				t.Fatalf("attempt %d: poisoned row %s is still among the written rows", attempt, p)
			}
		}
		expect(t, r, good, fmt.Sprintf("attempt %d", attempt))
		t.Logf("dead-letter reason: %s", b.Dead[0].Error)
	}
}

func testCancel(t *testing.T, newSink NewFunc, atomic bool) {
	// The last delay lets the write finish: the suite checks both outcomes.
	delays := []time.Duration{0, 50 * time.Microsecond, 500 * time.Microsecond, 2 * time.Millisecond, 10 * time.Millisecond, 20 * time.Second}
	outcomes := map[string]int{}
	recs := Records(1000, 1500)
	build := func() *streamd.Batch { return NewBatch(t, 1000, recs, 0) }
	want := RowsOf(t, build())
	for _, d := range delays {
		t.Run(d.String(), func(t *testing.T) {
			s, r := newSink(t)
			ctx, cancel := context.WithCancel(context.Background())
			if d == 0 {
				cancel()
			} else {
				time.AfterFunc(d, cancel)
			}
			b := build()
			err := s.Write(ctx, IntentOf(b), b)
			cancel()
			got := readAll(t, r)
			switch {
			case err == nil && d == 0:
				t.Fatal("write with a cancelled context succeeded")
			case err == nil:
				outcomes["completed"]++
				if diff := Diff(got, want); diff != "" {
					t.Fatalf("write succeeded but the destination differs: %s", diff)
				}
			default:
				outcomes["cancelled"]++
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("write failed with %v, want an error matching context.Canceled", err)
				}
				if (atomic || d == 0) && len(got) != 0 {
					t.Fatalf("cancelled write left %d rows visible, want none", len(got))
				}
				if diff := Diff(got, subset(got, want)); diff != "" {
					t.Fatalf("cancelled write left rows that are not whole rows of the batch: %s", diff)
				}
				// The pipeline redoes the intent with the same rows.
				write(t, s, build())
				expect(t, r, want, "redo after cancel")
			}
		})
	}
	t.Logf("cancel outcomes: %v", outcomes)
}

// subset returns the rows of want whose canonical form is in got, each at
// most as often as in want.
func subset(got, want []Row) []Row {
	avail := map[string][]Row{}
	for _, w := range want {
		c := Canonical(w)
		avail[c] = append(avail[c], w)
	}
	var out []Row
	for _, g := range got {
		c := Canonical(g)
		if rs := avail[c]; len(rs) > 0 {
			out = append(out, rs[0])
			avail[c] = rs[1:]
		}
	}
	return out
}
