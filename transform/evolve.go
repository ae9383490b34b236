package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/streamd/streamd"
)

// DefaultMaxColumns bounds a schema inferred at run time (EvolveOptions).
const DefaultMaxColumns = 512

// EvolveOptions configure an Evolver.
type EvolveOptions struct {
	// Seed are the columns every lane's schema starts with, in order
	// (default none). The wiring seeds the Hive partition columns as
	// strings, so that the sink finds them from the first batch on.
	Seed []streamd.Field
	// MaxColumns bounds the inferred schema (default DefaultMaxColumns). A
	// record that would add a column beyond it is dead-lettered with the
	// reason: a stream whose keys are data (ids used as keys) cannot grow
	// the schema, and the Parquet footers, without bound.
	MaxColumns int
}

// ErrEvolveState is wrapped by Evolver.Restore for a lane state it cannot
// read.
var ErrEvolveState = errors.New("invalid evolving schema state")

// Evolver decodes JSON records whose schema is not declared but inferred
// from the records as they arrive, lane by lane. Each lane's schema only
// grows: a field never seen before becomes a new nullable column at the
// end, an int64 column that meets a fractional number widens to float64,
// and a value that fits its column neither as is nor widened (a string in
// a numeric column, an object in a bool one) dead-letters its record with
// the reason, so the columns keep types that query engines can read across
// files. New columns take their type from their first non-null value:
// true/false → bool, an integral number → int64, another number →
// float64, a string → string (timestamps and dates stay strings), an
// object or array → json. A null value never creates a column.
//
// The schema a lane has after a record depends only on the lane's state
// before it and on the records up to it: not on how records were cut into
// segments, nor on which schema a decode worker saw while another one was
// still being settled. Process decodes optimistically with the lane's
// current schema; Settle, called in position order, keeps that result when
// it was decided from the settled schema and decides again otherwise. So
// a redo from the committed state rebuilds the same schema, rows and dead
// letters, and the pipeline's write stays deterministic. The lane's
// schema is saved with every commit (Snapshot, Restore).
//
// Evolver implements pipeline.Processor, pipeline.Recycler and
// pipeline.Evolver. It is safe for concurrent use.
type Evolver struct {
	opts EvolveOptions

	mu       sync.Mutex
	seed     *version
	byFP     map[string]*version
	bySchema map[*streamd.Schema]*version
	lanes    map[string]*version
	pending  map[*streamd.Batch]*pendingSegment
}

// version is one schema of the chain with its compiled decoder.
type version struct {
	schema *streamd.Schema
	fp     string
	prog   *Program // nil for the empty schema
}

// pendingSegment keeps what Settle needs to decide a flagged segment
// again: the schema it was decided from and a copy of its records.
type pendingSegment struct {
	lane string
	base *version
	recs []streamd.Record
}

// maxVersions bounds the cache of compiled schemas.
const maxVersions = 1024

// NewEvolver returns an Evolver. It fails on an invalid seed.
func NewEvolver(opts EvolveOptions) (*Evolver, error) {
	if opts.MaxColumns <= 0 {
		opts.MaxColumns = DefaultMaxColumns
	}
	if len(opts.Seed) > opts.MaxColumns {
		return nil, fmt.Errorf("new evolver: %d seed columns exceed the limit of %d: %w", len(opts.Seed), opts.MaxColumns, ErrSpec)
	}
	e := &Evolver{opts: opts, byFP: map[string]*version{}, bySchema: map[*streamd.Schema]*version{},
		lanes: map[string]*version{}, pending: map[*streamd.Batch]*pendingSegment{}}
	for _, f := range opts.Seed {
		if why := columnNameProblem(f.Name); why != "" {
			return nil, fmt.Errorf("new evolver: seed column %q: %s: %w", f.Name, why, ErrSpec)
		}
	}
	seed, err := e.versionOf(opts.Seed)
	if err != nil {
		return nil, fmt.Errorf("new evolver: %w", err)
	}
	e.seed = seed
	return e, nil
}

// Schema returns the schema every lane starts from (the seed columns).
func (e *Evolver) Schema() *streamd.Schema { return e.seed.schema }

// LaneSchema returns the lane's settled schema.
func (e *Evolver) LaneSchema(lane string) *streamd.Schema {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.laneLocked(lane).schema
}

func (e *Evolver) laneLocked(lane string) *version {
	if v := e.lanes[lane]; v != nil {
		return v
	}
	return e.seed
}

// versionOf returns the compiled version of a schema with these fields.
func (e *Evolver) versionOf(fields []streamd.Field) (*version, error) {
	s := &streamd.Schema{Fields: fields}
	fp := s.Fingerprint()
	e.mu.Lock()
	v := e.byFP[fp]
	e.mu.Unlock()
	if v != nil {
		return v, nil
	}
	v = &version{schema: s, fp: fp}
	if len(fields) > 0 {
		spec := Spec{Format: "jsonl", Columns: make([]ColumnSpec, len(fields))}
		for i, f := range fields {
			spec.Columns[i] = ColumnSpec{Name: f.Name, Type: f.Type, From: f.Name}
		}
		prog, err := Compile(spec)
		if err != nil {
			return nil, fmt.Errorf("compile inferred schema: %w", err)
		}
		v.prog = prog
		v.schema = prog.Schema()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if old := e.byFP[fp]; old != nil {
		return old, nil // compiled concurrently; keep one canonical pointer
	}
	if len(e.byFP) >= maxVersions {
		// Lanes keep their versions alive; dropping the index only costs
		// recompiling a schema seen again.
		clear(e.byFP)
		clear(e.bySchema)
	}
	e.byFP[fp] = v
	e.bySchema[v.schema] = v
	return v, nil
}

// versionOfSchema returns the version of a schema some batch carries.
func (e *Evolver) versionOfSchema(s *streamd.Schema) (*version, error) {
	e.mu.Lock()
	v := e.bySchema[s]
	e.mu.Unlock()
	if v != nil {
		return v, nil
	}
	return e.versionOf(s.Fields)
}

// Process decodes recs with the lane's current schema, evolving it when a
// record brings a new field or a wider value. Process is safe for
// concurrent use; its result is final only after Settle.
func (e *Evolver) Process(lane string, _ []byte, recs []streamd.Record) *streamd.Batch {
	e.mu.Lock()
	base := e.laneLocked(lane)
	e.mu.Unlock()
	b, flagged := e.decode(base, lane, recs)
	if flagged {
		e.mu.Lock()
		e.pending[b] = &pendingSegment{lane: lane, base: base, recs: copyRecords(recs)}
		e.mu.Unlock()
	}
	return b
}

// decode decodes recs starting from schema base. flagged reports that the
// result was decided by looking at the records (a new field, a widening, a
// value that fits no type), not by base alone.
func (e *Evolver) decode(base *version, lane string, recs []streamd.Record) (*streamd.Batch, bool) {
	var fast *streamd.Batch
	if base.prog != nil {
		b, flagged := base.prog.process(lane, nil, recs)
		if !flagged {
			return b, false
		}
		fast = b
	}
	fields, reject, other := e.fold(base, recs)
	next := base
	if len(fields) != len(base.schema.Fields) || !sameFields(fields, base.schema.Fields) {
		v, err := e.versionOf(fields)
		if err != nil {
			return deadBatch(base.schema, lane, recs, err.Error()), true
		}
		next = v
	}
	if fast != nil {
		if next == base && other == 0 {
			// Only malformed records and values that fit no type: decoding
			// with base dead-lettered them with the same reasons.
			return fast, true
		}
		base.prog.Recycle(fast)
	}
	if len(reject) > 0 {
		recs = markRejected(recs, reject)
	}
	if next.prog == nil {
		// No column yet: fold rejected every record with its reason.
		return deadBatch(next.schema, lane, recs, "record has no non-null field to infer a column from"), true
	}
	b, _ := next.prog.process(lane, nil, recs)
	return b, true
}

// markRejected returns a copy of recs whose rejected records carry their
// reason as Err, so that decoding dead-letters them.
func markRejected(recs []streamd.Record, reject map[int]string) []streamd.Record {
	out := make([]streamd.Record, len(recs))
	copy(out, recs)
	for i, why := range reject {
		out[i].Err = why
	}
	return out
}

// deadBatch dead-letters every record with why (or its own error).
func deadBatch(s *streamd.Schema, lane string, recs []streamd.Record, why string) *streamd.Batch {
	b := streamd.NewBatch(s, lane)
	for i := range recs {
		r := &recs[i]
		b.NoteRead(r.Pos, len(r.Data))
		if r.Err != "" {
			b.AddDead(r.Pos, r.Err, r.Data)
		} else {
			b.AddDead(r.Pos, why, r.Data)
		}
	}
	return b
}

func sameFields(a, b []streamd.Field) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// copyRecords copies recs and their bytes (the source reuses its buffers
// once Process returns).
func copyRecords(recs []streamd.Record) []streamd.Record {
	n := 0
	for i := range recs {
		n += len(recs[i].Data)
	}
	buf := make([]byte, 0, n)
	out := make([]streamd.Record, len(recs))
	for i, r := range recs {
		start := len(buf)
		buf = append(buf, r.Data...)
		out[i] = streamd.Record{Data: buf[start:len(buf):len(buf)], Pos: r.Pos, Time: r.Time, Err: r.Err}
	}
	return out
}

// fold walks the records in order from base's columns, one record at a
// time, and returns the columns they lead to and the records to
// dead-letter, with the reason each would get at its own place in the
// stream: a malformed record, a value that fits its column neither as is
// nor widened (the first such column in schema order, as decoding would
// report it), a key that cannot name a column, the column limit, or no
// column at all yet. A dead-lettered record changes nothing. otherReasons
// counts the reasons decoding with base alone would not give.
func (e *Evolver) fold(base *version, recs []streamd.Record) (fields []streamd.Field, reject map[int]string, otherReasons int) {
	fields = append([]streamd.Field(nil), base.schema.Fields...)
	index := make(map[string]int, len(fields))
	for i, f := range fields {
		index[f.Name] = i
	}
	w := &worker{}
	var sc jsonScanner
	root := &fieldLevel{} // reads no field: onTop sees every key
	type change struct {
		col int // -1: a new column
		f   streamd.Field
	}
	var changes []change
	var scratch streamd.Column
	castMsg := func(t streamd.Type, tok token, data []byte) string {
		scratch.Type = t
		scratch.Reset()
		return w.cast(&scratch, tok, data, false)
	}
	fits := func(t streamd.Type, tok token, data []byte) bool { return castMsg(t, tok, data) == "" }
	rejectRec := func(ri int, why string, other bool) {
		if reject == nil {
			reject = map[int]string{}
		}
		reject[ri] = why
		if other {
			otherReasons++
		}
	}
	// Per record: what it would change, and why it cannot be written.
	var (
		r             *streamd.Record
		why, conflict string
		conflictCol   int
		added, values int
	)
	sc.onTop = func(key []byte, tok token) {
		if tok.kind == kNull {
			return
		}
		values++
		if i, ok := index[string(key)]; ok {
			t := fields[i].Type
			msg := castMsg(t, tok, r.Data)
			switch {
			case msg == "":
			case t.Kind == streamd.KindInt64 && fits(streamd.Type{Kind: streamd.KindFloat64}, tok, r.Data):
				changes = append(changes, change{col: i, f: streamd.Field{Name: fields[i].Name, Type: streamd.Type{Kind: streamd.KindFloat64}}})
			case conflictCol < 0 || i < conflictCol:
				conflictCol, conflict = i, "column "+quote(fields[i].Name)+": "+msg
			}
			return
		}
		if why != "" {
			return
		}
		name := string(key)
		for _, c := range changes {
			if c.col < 0 && c.f.Name == name {
				return // a repeated key: the scanner keeps the last value
			}
		}
		if p := columnNameProblem(name); p != "" {
			why = fmt.Sprintf("field %q cannot become a column: %s", shorten(name, 64), p)
			return
		}
		if len(fields)+added >= e.opts.MaxColumns {
			why = fmt.Sprintf("field %q would add a column beyond the inferred schema's limit of %d columns", shorten(name, 64), e.opts.MaxColumns)
			return
		}
		added++
		changes = append(changes, change{col: -1, f: streamd.Field{Name: name, Type: e.typeOf(tok, r.Data, fits)}})
	}
	for ri := range recs {
		r = &recs[ri]
		if r.Err != "" {
			continue
		}
		changes = changes[:0]
		why, conflict, conflictCol = "", "", -1
		added, values = 0, 0
		sc.data = r.Data
		ok := sc.scanRecord(root)
		sc.data = nil
		switch {
		case !ok:
			// Malformed: the scanner's reason, as decoding gives it.
			rejectRec(ri, sc.err, false)
			continue
		case conflict != "":
			rejectRec(ri, conflict, false)
			continue
		case why != "":
			rejectRec(ri, why, true)
			continue
		case values == 0 && len(fields) == 0:
			rejectRec(ri, "record has no non-null field to infer a column from", true)
			continue
		}
		for _, c := range changes {
			if c.col >= 0 {
				fields[c.col] = c.f
				continue
			}
			index[c.f.Name] = len(fields)
			fields = append(fields, c.f)
		}
	}
	return fields, reject, otherReasons
}

// typeOf is the type a new column takes from its first non-null value.
func (e *Evolver) typeOf(tok token, data []byte, fits func(streamd.Type, token, []byte) bool) streamd.Type {
	switch tok.kind {
	case kTrue, kFalse:
		return streamd.Type{Kind: streamd.KindBool}
	case kNumber:
		if fits(streamd.Type{Kind: streamd.KindInt64}, tok, data) {
			return streamd.Type{Kind: streamd.KindInt64}
		}
		if fits(streamd.Type{Kind: streamd.KindFloat64}, tok, data) {
			return streamd.Type{Kind: streamd.KindFloat64}
		}
		return streamd.Type{Kind: streamd.KindString} // beyond float64: keep its text
	case kObject, kArray:
		return streamd.Type{Kind: streamd.KindJSON}
	}
	return streamd.Type{Kind: streamd.KindString}
}

// columnNameProblem says why a JSON key cannot name a column ("" if it can).
func columnNameProblem(name string) string {
	switch {
	case name == "":
		return "empty name"
	case len(name) > 255:
		return "longer than 255 bytes"
	case !utf8.ValidString(name):
		return "not valid UTF-8"
	case strings.Contains(name, "."):
		return "contains '.' (declare the schema and address it with from)"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "contains a control character"
	}
	return ""
}

// Settle is called with each of a lane's decoded segments in position
// order. It returns the segment's rows in the lane's schema as settled by
// every record before them, evolving that schema with the segment's
// records, and records the result as the lane's schema.
func (e *Evolver) Settle(lane string, b *streamd.Batch) (*streamd.Batch, error) {
	e.mu.Lock()
	cur := e.laneLocked(lane)
	p := e.pending[b]
	delete(e.pending, b)
	e.mu.Unlock()
	if p == nil {
		// Decoded without a change from a schema the lane had: the rows
		// fit the settled schema, which is a superset.
		if b.Schema == cur.schema {
			return b, nil
		}
		return e.Widen(b, cur.schema)
	}
	out := b
	if p.base != cur {
		// Decided from a schema that was not the settled one yet: decide
		// again from the settled one so the outcome does not depend on the
		// race.
		e.Recycle(b)
		out, _ = e.decode(cur, lane, p.recs)
	}
	next, err := e.versionOfSchema(out.Schema)
	if err != nil {
		return nil, fmt.Errorf("settle lane %q: %w", lane, err)
	}
	e.mu.Lock()
	e.lanes[lane] = next
	e.mu.Unlock()
	return out, nil
}

// Widen returns b's rows in schema s, which must be a later schema of b's
// lane: every column of b is in s, with the same type or int64 widened to
// float64. The result may share vectors with b; b must not be used after.
func (e *Evolver) Widen(b *streamd.Batch, s *streamd.Schema) (*streamd.Batch, error) {
	if b.Schema == s {
		return b, nil
	}
	if b.Schema.Fingerprint() == s.Fingerprint() {
		b.Schema = s
		return b, nil
	}
	out := streamd.NewBatch(s, b.Lane)
	n := b.Len()
	used := 0
	for i, f := range s.Fields {
		j := b.Schema.Index(f.Name)
		if j < 0 {
			c := &out.Cols[i]
			for range n {
				c.AppendNull()
			}
			continue
		}
		used++
		src := &b.Cols[j]
		switch from := src.Type; {
		case from == f.Type:
			out.Cols[i] = *src
		case from.Kind == streamd.KindInt64 && f.Type.Kind == streamd.KindFloat64:
			c := &out.Cols[i]
			c.Valid = append(c.Valid[:0], src.Valid...)
			c.Float64 = make([]float64, len(src.Int64))
			for k, v := range src.Int64 {
				c.Float64[k] = float64(v)
			}
		default:
			return nil, fmt.Errorf("widen batch of lane %q: column %q from %s to %s: %w", b.Lane, f.Name, from, f.Type, ErrEvolveState)
		}
	}
	if used != len(b.Schema.Fields) {
		return nil, fmt.Errorf("widen batch of lane %q: schema %s is not a superset of %s: %w", b.Lane, s.Fingerprint(), b.Schema.Fingerprint(), ErrEvolveState)
	}
	out.From, out.To = b.From, b.To
	out.Pos, out.EventTime, out.Dead = b.Pos, b.EventTime, b.Dead
	out.Read, out.Bytes, out.Filtered, out.Deduplicated = b.Read, b.Bytes, b.Filtered, b.Deduplicated
	return out, nil
}

// Recycle hands a decoded batch back to the decoder of its schema.
func (e *Evolver) Recycle(b *streamd.Batch) {
	e.mu.Lock()
	v := e.bySchema[b.Schema]
	e.mu.Unlock()
	if v != nil && v.prog != nil {
		v.prog.Recycle(b)
	}
}

// evolveState is the lane state saved with each commit.
type evolveState struct {
	Version int         `json:"v"`
	Columns [][2]string `json:"columns"` // name, type
}

// Snapshot returns the lane's settled schema, to be committed.
func (e *Evolver) Snapshot(lane string) ([]byte, error) {
	e.mu.Lock()
	v := e.laneLocked(lane)
	e.mu.Unlock()
	st := evolveState{Version: 1, Columns: make([][2]string, len(v.schema.Fields))}
	for i, f := range v.schema.Fields {
		st.Columns[i] = [2]string{f.Name, f.Type.String()}
	}
	return json.Marshal(st)
}

// Restore sets the lane's schema from a committed Snapshot (nil: the
// seed).
func (e *Evolver) Restore(lane string, state []byte) error {
	if len(state) == 0 {
		e.mu.Lock()
		delete(e.lanes, lane)
		e.mu.Unlock()
		return nil
	}
	var st evolveState
	if err := json.Unmarshal(state, &st); err != nil {
		return fmt.Errorf("restore schema of lane %q: %w: %v", lane, ErrEvolveState, err)
	}
	if st.Version != 1 {
		return fmt.Errorf("restore schema of lane %q: version %d: %w", lane, st.Version, ErrEvolveState)
	}
	fields := make([]streamd.Field, len(st.Columns))
	for i, c := range st.Columns {
		t, err := streamd.ParseType(c[1])
		if err != nil {
			return fmt.Errorf("restore schema of lane %q: column %q: %w: %v", lane, c[0], ErrEvolveState, err)
		}
		fields[i] = streamd.Field{Name: c[0], Type: t}
	}
	if _, err := streamd.NewSchema(fields...); err != nil && len(fields) > 0 {
		return fmt.Errorf("restore schema of lane %q: %w: %v", lane, ErrEvolveState, err)
	}
	for _, f := range e.opts.Seed {
		// A seed column added to the config since the commit (a new
		// partition column) joins at the end.
		if !slices.ContainsFunc(fields, func(g streamd.Field) bool { return g.Name == f.Name }) {
			fields = append(fields, f)
		}
	}
	v, err := e.versionOf(fields)
	if err != nil {
		return fmt.Errorf("restore schema of lane %q: %w", lane, err)
	}
	e.mu.Lock()
	e.lanes[lane] = v
	e.mu.Unlock()
	return nil
}

// Forget drops the lane's schema and its unsettled segments.
func (e *Evolver) Forget(lane string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.lanes, lane)
	for b, p := range e.pending {
		if p.lane == lane {
			delete(e.pending, b)
		}
	}
}
