package transform

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // parse_time time zones in a static binary without zoneinfo

	"github.com/streamd/streamd"
)

// Step is one entry of a pipeline's transforms list: exactly one field is
// set. Steps run in order after decoding, casting and computed columns;
// each sees the schema the steps before it produced.
type Step struct {
	// Filter keeps the rows for which the expression is true (see the
	// package doc for null handling); the others count as Filtered.
	Filter string
	// Trim removes leading and trailing Unicode white space from the
	// string columns named.
	Trim []string
	// Lower lower-cases the string columns named.
	Lower []string
	// Upper upper-cases the string columns named.
	Upper []string
	// NullIfEmpty turns empty values of the string, binary or json columns
	// named into nulls.
	NullIfEmpty []string
	// Default replaces nulls of each column named by a value, written as in
	// the input and cast to the column's type by the cast rules.
	Default map[string]string
	// Replace rewrites matches of a regular expression in a string column.
	Replace *ReplaceSpec
	// Rename renames columns: old name → new name.
	Rename map[string]string
	// Drop removes the columns named from the output.
	Drop []string
	// Select keeps only the columns named, in that order.
	Select []string
	// ParseTime parses a string column with explicit formats into a
	// timestamp or date column.
	ParseTime *ParseTimeSpec
	// Dedup drops rows whose key was seen before within a TTL (stateful).
	Dedup *DedupSpec
	// Outliers detects values outside fixed or rolling bounds (stateful
	// unless the method is bounds).
	Outliers *OutlierSpec
	// Quality checks data-quality rules (stateful only with IsUnique).
	Quality *QualitySpec
}

// ReplaceSpec configures the replace step.
type ReplaceSpec struct {
	// Column is the string column to rewrite.
	Column string
	// Pattern is a Go (RE2) regular expression.
	Pattern string
	// With replaces each match; $1 or ${name} expand to submatches.
	With string
}

// ParseTimeSpec configures the parse_time step.
type ParseTimeSpec struct {
	// Column is a string column; it becomes a timestamp (or date) column
	// of the same name.
	Column string
	// Formats are tried in order. A format with a '%' is strftime-like
	// (%Y %m %d %H %M %S %f %z %Z %b %p %y %j %e %I %%); any other is a Go
	// reference layout ("2006-01-02 15:04:05"). The names rfc3339,
	// epoch_s, epoch_ms and epoch_us are also accepted.
	Formats []string
	// Timezone is the IANA zone ("Europe/Berlin") for text without an
	// offset (default UTC).
	Timezone string
	// Type is "timestamp" (default) or "date".
	Type string
}

// kind names the step for messages.
func (s *Step) kind() (string, int) {
	var names []string
	add := func(ok bool, n string) {
		if ok {
			names = append(names, n)
		}
	}
	add(s.Filter != "", "filter")
	add(s.Trim != nil, "trim")
	add(s.Lower != nil, "lower")
	add(s.Upper != nil, "upper")
	add(s.NullIfEmpty != nil, "null_if_empty")
	add(s.Default != nil, "default")
	add(s.Replace != nil, "replace")
	add(s.Rename != nil, "rename")
	add(s.Drop != nil, "drop")
	add(s.Select != nil, "select")
	add(s.ParseTime != nil, "parse_time")
	add(s.Dedup != nil, "dedup")
	add(s.Outliers != nil, "outliers")
	add(s.Quality != nil, "quality")
	if len(names) == 1 {
		return names[0], 1
	}
	return strings.Join(names, ", "), len(names)
}

// Stateful reports whether the step keeps per-lane state across batches
// and so must run in a Chain (in lane order) rather than inside
// Program.Process: dedup, rolling outliers, and quality rules using
// IsUnique.
func (s *Step) Stateful() bool {
	switch {
	case s.Dedup != nil:
		return true
	case s.Outliers != nil:
		return s.Outliers.method() != "bounds"
	case s.Quality != nil:
		return qualityNeedsState(s.Quality.Rules)
	}
	return false
}

// SplitSteps cuts a transforms list at its first stateful step: the steps
// before it run inside Program.Process (Spec.Steps, concurrently on
// chunks); the rest, in order, run in a Chain (pipeline.Operator), so the
// configured order is kept exactly.
func SplitSteps(steps []Step) (stateless, chain []Step) {
	for i := range steps {
		if steps[i].Stateful() {
			return steps[:i], steps[i:]
		}
	}
	return steps, nil
}

// stage is one compiled step.
type stage interface {
	// out is the schema after the stage.
	out() *streamd.Schema
	// apply runs the stage on b (whose schema is the stage's input) with
	// the lane state st (nil for stateless stages).
	apply(rc *runCtx, b *streamd.Batch, st laneState)
}

// runCtx is the scratch state of one run of stages over a batch.
type runCtx struct {
	w    *worker
	keep []bool
	any  bool
	// raw returns the dead-letter raw of row j.
	raw func(b *streamd.Batch, j int) []byte
	// compact is called with keep after rows were removed, before b.Keep.
	compact func(keep []bool)
}

func (rc *runCtx) begin(n int) {
	rc.keep = resizeBools(rc.keep, n)
	for j := range rc.keep {
		rc.keep[j] = true
	}
	rc.any = false
}

// dead moves row j to the dead letter with reason.
func (rc *runCtx) dead(b *streamd.Batch, j int, reason string) {
	if !rc.keep[j] {
		return
	}
	b.AddDead(b.Pos[j], reason, rc.raw(b, j))
	rc.keep[j], rc.any = false, true
}

// filtered removes row j, counted as filtered.
func (rc *runCtx) filtered(b *streamd.Batch, j int) {
	if !rc.keep[j] {
		return
	}
	b.Filtered++
	rc.keep[j], rc.any = false, true
}

// deduplicated removes row j, counted as a duplicate.
func (rc *runCtx) deduplicated(b *streamd.Batch, j int) {
	if !rc.keep[j] {
		return
	}
	b.Deduplicated++
	rc.keep[j], rc.any = false, true
}

// finish compacts b to the kept rows.
func (rc *runCtx) finish(b *streamd.Batch) {
	if !rc.any {
		return
	}
	if rc.compact != nil {
		rc.compact(rc.keep)
	}
	b.Keep(rc.keep)
	rc.any = false
}

// runStages runs stages in order on b; states[i] is stage i's lane state.
func runStages(rc *runCtx, stages []stage, states []laneState, b *streamd.Batch) {
	for i, s := range stages {
		if b.Len() == 0 {
			// Nothing to do, but later stages' schemas must still apply.
			reshape(b, s.out())
			continue
		}
		rc.begin(b.Len())
		var st laneState
		if states != nil {
			st = states[i]
		}
		s.apply(rc, b, st)
		rc.finish(b)
	}
}

// reshape gives an empty batch the column layout of schema s.
func reshape(b *streamd.Batch, s *streamd.Schema) {
	if b.Schema == s {
		return
	}
	b.Schema = s
	b.Cols = make([]streamd.Column, len(s.Fields))
	for i, f := range s.Fields {
		b.Cols[i].Type = f.Type
	}
}

// compileSteps compiles steps against schema in; it returns the stages and
// the final schema.
func compileSteps(in *streamd.Schema, steps []Step, opts ChainOptions) ([]stage, *streamd.Schema, error) {
	cur := in
	var out []stage
	for i := range steps {
		st := &steps[i]
		name, n := st.kind()
		if n != 1 {
			if n == 0 {
				name = "none"
			}
			return nil, nil, fmt.Errorf("step %d: a step needs exactly one kind (got %s): %w", i+1, name, ErrSpec)
		}
		s, err := compileStep(cur, st, i, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("step %d (%s): %w", i+1, name, err)
		}
		out = append(out, s)
		cur = s.out()
	}
	return out, cur, nil
}

func compileStep(in *streamd.Schema, st *Step, idx int, opts ChainOptions) (stage, error) {
	switch {
	case st.Filter != "":
		return compileFilterStage(in, st.Filter)
	case st.Trim != nil:
		return newBytesStage(in, st.Trim, "trim", func(dst, v []byte) []byte { return append(dst, bytes.TrimSpace(v)...) })
	case st.Lower != nil:
		return newBytesStage(in, st.Lower, "lower", lowerInto)
	case st.Upper != nil:
		return newBytesStage(in, st.Upper, "upper", upperInto)
	case st.NullIfEmpty != nil:
		cols, err := lookup(in, st.NullIfEmpty, "null_if_empty", streamd.KindString, streamd.KindBinary, streamd.KindJSON)
		if err != nil {
			return nil, err
		}
		return &nullIfEmptyStage{schema: in, cols: cols}, nil
	case st.Default != nil:
		return compileDefault(in, st.Default)
	case st.Replace != nil:
		return compileReplace(in, st.Replace)
	case st.Rename != nil:
		return compileRename(in, st.Rename)
	case st.Drop != nil:
		return compileDrop(in, st.Drop)
	case st.Select != nil:
		return compileSelect(in, st.Select)
	case st.ParseTime != nil:
		return compileParseTime(in, st.ParseTime)
	case st.Dedup != nil:
		return compileDedup(in, st.Dedup, opts)
	case st.Outliers != nil:
		return compileOutliers(in, st.Outliers, opts)
	case st.Quality != nil:
		return compileQuality(in, st.Quality, idx, opts)
	}
	return nil, fmt.Errorf("empty step: %w", ErrSpec)
}

// lookup resolves column names in s, checking their kinds when kinds are given.
func lookup(s *streamd.Schema, names []string, what string, kinds ...streamd.Kind) ([]int, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no columns: %w", what, ErrSpec)
	}
	out := make([]int, 0, len(names))
	for _, n := range names {
		ci := s.Index(n)
		if ci < 0 {
			return nil, fmt.Errorf("%s: no column %q in the schema at this step (%s): %w", what, n, columnList(s), ErrSpec)
		}
		if len(kinds) > 0 {
			ok := false
			for _, k := range kinds {
				ok = ok || s.Fields[ci].Type.Kind == k
			}
			if !ok {
				return nil, fmt.Errorf("%s: column %q is %v, want %v: %w", what, n, s.Fields[ci].Type, kinds, ErrSpec)
			}
		}
		out = append(out, ci)
	}
	return out, nil
}

func columnList(s *streamd.Schema) string {
	names := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		names[i] = f.Name
	}
	return "have " + strings.Join(names, ", ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// --- filter ---------------------------------------------------------------

type filterStage struct {
	schema *streamd.Schema
	prog   *Program
	ce     *compiledExpr
}

// programFor returns a Program whose columns are exactly schema s, for
// compiling expressions over an intermediate schema.
func programFor(s *streamd.Schema) *Program {
	p := &Program{schema: s, eventCol: -1, cols: make([]colInfo, len(s.Fields))}
	for i, f := range s.Fields {
		p.cols[i] = colInfo{name: f.Name, typ: f.Type}
	}
	return p
}

func compileFilterStage(in *streamd.Schema, src string) (stage, error) {
	p := programFor(in)
	ce, err := p.compileExpr(src, -1, fmt.Sprintf("filter %q", src))
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", src, err)
	}
	return &filterStage{schema: in, prog: p, ce: ce}, nil
}

func (s *filterStage) out() *streamd.Schema { return s.schema }

func (s *filterStage) apply(rc *runCtx, b *streamd.Batch, _ laneState) {
	w := rc.w
	n := b.Len()
	w.keep = resizeBools(w.keep, n)
	for j := range w.keep {
		w.keep[j] = true
	}
	w.rowErr = resizeStrings(w.rowErr, n)
	filtered := b.Filtered
	s.prog.evalFilter(w, b, s.ce)
	b.Filtered = filtered // counted again below, per row
	for j, ok := range w.keep {
		switch {
		case ok:
		case w.rowErr[j] != "":
			rc.dead(b, j, w.rowErr[j])
		default:
			rc.filtered(b, j)
		}
	}
}

// --- trim / lower / upper ---------------------------------------------------

type bytesStage struct {
	schema *streamd.Schema
	cols   []int
	fn     func(dst, v []byte) []byte
}

func newBytesStage(in *streamd.Schema, names []string, what string, fn func(dst, v []byte) []byte) (stage, error) {
	cols, err := lookup(in, names, what, streamd.KindString)
	if err != nil {
		return nil, err
	}
	return &bytesStage{schema: in, cols: cols, fn: fn}, nil
}

func (s *bytesStage) out() *streamd.Schema { return s.schema }

func (s *bytesStage) apply(_ *runCtx, b *streamd.Batch, _ laneState) {
	for _, ci := range s.cols {
		c := &b.Cols[ci]
		old := c.Bytes
		data := make([]byte, 0, len(old.Data))
		offs := make([]int, 1, len(old.Offs))
		for i := 0; i < old.Len(); i++ {
			if c.Valid[i] {
				data = s.fn(data, old.At(i))
			}
			offs = append(offs, len(data))
		}
		c.Bytes = streamd.Bytes{Data: data, Offs: offs}
	}
}

func lowerInto(dst, v []byte) []byte {
	for _, c := range v {
		if c >= 0x80 {
			return append(dst, bytes.ToLower(v)...)
		}
	}
	for _, c := range v {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func upperInto(dst, v []byte) []byte {
	for _, c := range v {
		if c >= 0x80 {
			return append(dst, bytes.ToUpper(v)...)
		}
	}
	for _, c := range v {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// --- null_if_empty -----------------------------------------------------------

type nullIfEmptyStage struct {
	schema *streamd.Schema
	cols   []int
}

func (s *nullIfEmptyStage) out() *streamd.Schema { return s.schema }

func (s *nullIfEmptyStage) apply(_ *runCtx, b *streamd.Batch, _ laneState) {
	for _, ci := range s.cols {
		c := &b.Cols[ci]
		for i := range c.Valid {
			if c.Bytes.Offs[i] == c.Bytes.Offs[i+1] {
				c.Valid[i] = false
			}
		}
	}
}

// --- default ---------------------------------------------------------------

type defaultStage struct {
	schema *streamd.Schema
	cols   []int
	vals   []streamd.Column // one row each: the default value
}

func compileDefault(in *streamd.Schema, m map[string]string) (stage, error) {
	s := &defaultStage{schema: in}
	w := &worker{}
	for _, name := range sortedKeys(m) {
		ci := in.Index(name)
		if ci < 0 {
			return nil, fmt.Errorf("default: no column %q in the schema at this step (%s): %w", name, columnList(in), ErrSpec)
		}
		v := streamd.Column{Type: in.Fields[ci].Type}
		text := []byte(m[name])
		if msg := w.cast(&v, token{kind: kString, end: int32(len(text))}, text, true); msg != "" {
			return nil, fmt.Errorf("default for column %q: %s: %w", name, msg, ErrSpec)
		}
		s.cols = append(s.cols, ci)
		s.vals = append(s.vals, v)
	}
	return s, nil
}

func (s *defaultStage) out() *streamd.Schema { return s.schema }

func (s *defaultStage) apply(_ *runCtx, b *streamd.Batch, _ laneState) {
	for k, ci := range s.cols {
		c := &b.Cols[ci]
		v := &s.vals[k]
		switch streamd.StorageOf(c.Type) {
		case streamd.StoreBytes:
			nulls := false
			for _, ok := range c.Valid {
				nulls = nulls || !ok
			}
			if !nulls {
				continue
			}
			nc := streamd.Column{Type: c.Type}
			nc.Bytes.Data = make([]byte, 0, len(c.Bytes.Data))
			nc.Bytes.Offs = make([]int, 0, len(c.Bytes.Offs))
			nc.Valid = make([]bool, 0, len(c.Valid))
			for i := range c.Valid {
				if c.Valid[i] {
					nc.AppendFrom(c, i)
				} else {
					nc.AppendFrom(v, 0)
				}
			}
			*c = nc
		default:
			for i, ok := range c.Valid {
				if ok {
					continue
				}
				c.Valid[i] = true
				switch streamd.StorageOf(c.Type) {
				case streamd.StoreInt32:
					c.Int32[i] = v.Int32[0]
				case streamd.StoreInt64:
					c.Int64[i] = v.Int64[0]
				case streamd.StoreFloat64:
					c.Float64[i] = v.Float64[0]
				case streamd.StoreBool:
					c.Bool[i] = v.Bool[0]
				}
			}
		}
	}
}

// --- replace -----------------------------------------------------------------

type replaceStage struct {
	schema *streamd.Schema
	col    int
	re     *regexp.Regexp
	with   []byte
}

func compileReplace(in *streamd.Schema, r *ReplaceSpec) (stage, error) {
	cols, err := lookup(in, []string{r.Column}, "replace", streamd.KindString)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(r.Pattern)
	if err != nil {
		return nil, fmt.Errorf("replace: pattern %q: %v: %w", r.Pattern, err, ErrSpec)
	}
	return &replaceStage{schema: in, col: cols[0], re: re, with: []byte(r.With)}, nil
}

func (s *replaceStage) out() *streamd.Schema { return s.schema }

func (s *replaceStage) apply(_ *runCtx, b *streamd.Batch, _ laneState) {
	c := &b.Cols[s.col]
	old := c.Bytes
	data := make([]byte, 0, len(old.Data))
	offs := make([]int, 1, len(old.Offs))
	for i := 0; i < old.Len(); i++ {
		if c.Valid[i] {
			v := old.At(i)
			if s.re.Match(v) {
				data = append(data, s.re.ReplaceAll(v, s.with)...)
			} else {
				data = append(data, v...)
			}
		}
		offs = append(offs, len(data))
	}
	c.Bytes = streamd.Bytes{Data: data, Offs: offs}
}

// --- rename / drop / select --------------------------------------------------

// projectStage reorders, drops and renames columns.
type projectStage struct {
	schema *streamd.Schema
	from   []int // output column i is input column from[i]
}

func (s *projectStage) out() *streamd.Schema { return s.schema }

func (s *projectStage) apply(_ *runCtx, b *streamd.Batch, _ laneState) {
	cols := make([]streamd.Column, len(s.from))
	for i, ci := range s.from {
		cols[i] = b.Cols[ci]
	}
	b.Cols = cols
	b.Schema = s.schema
}

func project(in *streamd.Schema, from []int, names []string) (stage, error) {
	fields := make([]streamd.Field, len(from))
	for i, ci := range from {
		fields[i] = streamd.Field{Name: names[i], Type: in.Fields[ci].Type}
	}
	s, err := streamd.NewSchema(fields...)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrSpec)
	}
	return &projectStage{schema: s, from: from}, nil
}

func compileRename(in *streamd.Schema, m map[string]string) (stage, error) {
	names := make([]string, len(in.Fields))
	from := make([]int, len(in.Fields))
	for i, f := range in.Fields {
		names[i], from[i] = f.Name, i
	}
	for _, old := range sortedKeys(m) {
		ci := in.Index(old)
		if ci < 0 {
			return nil, fmt.Errorf("rename: no column %q in the schema at this step (%s): %w", old, columnList(in), ErrSpec)
		}
		if m[old] == "" {
			return nil, fmt.Errorf("rename: empty new name for %q: %w", old, ErrSpec)
		}
		names[ci] = m[old]
	}
	return project(in, from, names)
}

func compileDrop(in *streamd.Schema, drop []string) (stage, error) {
	cols, err := lookup(in, drop, "drop")
	if err != nil {
		return nil, err
	}
	gone := map[int]bool{}
	for _, ci := range cols {
		gone[ci] = true
	}
	var from []int
	var names []string
	for i, f := range in.Fields {
		if !gone[i] {
			from, names = append(from, i), append(names, f.Name)
		}
	}
	if len(from) == 0 {
		return nil, fmt.Errorf("drop: would remove every column: %w", ErrSpec)
	}
	return project(in, from, names)
}

func compileSelect(in *streamd.Schema, sel []string) (stage, error) {
	cols, err := lookup(in, sel, "select")
	if err != nil {
		return nil, err
	}
	return project(in, cols, sel)
}

// --- parse_time ----------------------------------------------------------------

type parseTimeStage struct {
	in, schema *streamd.Schema
	col        int
	formats    []timeFormat
	loc        *time.Location
	date       bool
	label      string
}

func compileParseTime(in *streamd.Schema, ps *ParseTimeSpec) (stage, error) {
	cols, err := lookup(in, []string{ps.Column}, "parse_time", streamd.KindString)
	if err != nil {
		return nil, err
	}
	if len(ps.Formats) == 0 {
		return nil, fmt.Errorf("parse_time: column %q: no formats: %w", ps.Column, ErrSpec)
	}
	s := &parseTimeStage{in: in, col: cols[0], loc: time.UTC,
		label: fmt.Sprintf("column %q: cannot parse time", ps.Column)}
	for _, f := range ps.Formats {
		tf, err := parseTimeFormat(f)
		if err != nil {
			return nil, fmt.Errorf("parse_time: column %q: %w", ps.Column, err)
		}
		s.formats = append(s.formats, tf)
	}
	if ps.Timezone != "" {
		loc, err := time.LoadLocation(ps.Timezone)
		if err != nil {
			return nil, fmt.Errorf("parse_time: column %q: timezone %q: %v: %w", ps.Column, ps.Timezone, err, ErrSpec)
		}
		s.loc = loc
	}
	typ := streamd.Type{Kind: streamd.KindTimestamp}
	switch strings.ToLower(ps.Type) {
	case "", "timestamp":
	case "date":
		typ, s.date = streamd.Type{Kind: streamd.KindDate}, true
	default:
		return nil, fmt.Errorf("parse_time: column %q: type %q (want timestamp or date): %w", ps.Column, ps.Type, ErrSpec)
	}
	fields := append([]streamd.Field(nil), in.Fields...)
	fields[s.col].Type = typ
	s.schema = &streamd.Schema{Fields: fields}
	return s, nil
}

func (s *parseTimeStage) out() *streamd.Schema { return s.schema }

func (s *parseTimeStage) apply(rc *runCtx, b *streamd.Batch, _ laneState) {
	c := &b.Cols[s.col]
	nc := streamd.Column{Type: s.schema.Fields[s.col].Type}
	for i := range c.Valid {
		if !c.Valid[i] {
			nc.AppendNull()
			continue
		}
		v := string(c.Bytes.At(i))
		us, ok := s.parse(v)
		if !ok {
			rc.dead(b, i, fmt.Sprintf("%s %q with formats %s", s.label, v, s.formatNames()))
			nc.AppendNull()
			continue
		}
		if s.date {
			nc.AppendInt32(int32(floorDiv(us, 86400_000_000)))
		} else {
			nc.AppendInt64(us)
		}
	}
	b.Cols[s.col] = nc
	b.Schema = s.schema
}

func (s *parseTimeStage) formatNames() string {
	names := make([]string, len(s.formats))
	for i, f := range s.formats {
		names[i] = f.name
	}
	return "[" + strings.Join(names, ", ") + "]"
}

func (s *parseTimeStage) parse(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	for _, f := range s.formats {
		if us, ok := f.parse(v, s.loc); ok {
			return us, true
		}
	}
	return 0, false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// timeFormat is one compiled parse_time format.
type timeFormat struct {
	name   string
	layout string // Go layout; "" for the named epoch formats
	epoch  int64  // µs per unit for epoch formats
}

func (f timeFormat) parse(v string, loc *time.Location) (int64, bool) {
	if f.epoch != 0 {
		us, ok := parseEpochText(v, f.epoch)
		return us, ok
	}
	t, err := time.ParseInLocation(f.layout, v, loc)
	if err != nil {
		return 0, false
	}
	return t.UnixMicro(), true
}

func parseEpochText(v string, unit int64) (int64, bool) {
	var n int64
	neg := false
	if strings.HasPrefix(v, "-") {
		neg, v = true, v[1:]
	}
	if v == "" || len(v) > 18 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	if neg {
		n = -n
	}
	us := n * unit
	if unit != 0 && us/unit != n {
		return 0, false
	}
	return us, true
}

var strftime = map[byte]string{
	'Y': "2006", 'y': "06", 'm': "01", 'd': "02", 'e': "_2", 'H': "15", 'I': "03", 'M': "04",
	'S': "05", 'f': ".000000", 'z': "-0700", 'Z': "MST", 'b': "Jan", 'B': "January", 'a': "Mon",
	'A': "Monday", 'p': "PM", 'j': "002", '%': "%",
}

// ParseTimeLayout converts a parse_time format (strftime-like, a Go
// layout, or a named format) into a Go layout; named epoch formats return
// "". It is exported for streamd infer, which prints the formats it detected.
func ParseTimeLayout(f string) (string, error) {
	tf, err := parseTimeFormat(f)
	return tf.layout, err
}

func parseTimeFormat(f string) (timeFormat, error) {
	switch strings.ToLower(f) {
	case "rfc3339":
		return timeFormat{name: f, layout: time.RFC3339Nano}, nil
	case "epoch_s":
		return timeFormat{name: f, epoch: 1_000_000}, nil
	case "epoch_ms":
		return timeFormat{name: f, epoch: 1_000}, nil
	case "epoch_us":
		return timeFormat{name: f, epoch: 1}, nil
	case "":
		return timeFormat{}, fmt.Errorf("empty time format: %w", ErrSpec)
	}
	if !strings.Contains(f, "%") {
		return timeFormat{name: f, layout: f}, nil
	}
	var sb strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			sb.WriteByte(f[i])
			continue
		}
		if i+1 >= len(f) {
			return timeFormat{}, fmt.Errorf("time format %q: dangling %% at byte %d: %w", f, i, ErrSpec)
		}
		l, ok := strftime[f[i+1]]
		if !ok {
			return timeFormat{}, fmt.Errorf("time format %q: unknown directive %%%c at byte %d: %w", f, f[i+1], i, ErrSpec)
		}
		if f[i+1] == 'f' && strings.HasSuffix(sb.String(), "05.") {
			// "%S.%f": Go parses any fraction right after the seconds.
			cur := sb.String()
			sb.Reset()
			sb.WriteString(cur[:len(cur)-1])
			l = ""
		}
		sb.WriteString(l)
		i++
	}
	return timeFormat{name: f, layout: sb.String()}, nil
}
