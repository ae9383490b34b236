package transform

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/expr-lang/expr/vm"

	"github.com/streamd/streamd"
)

// ColumnSpec declares one output column.
type ColumnSpec struct {
	// Name is the output column name.
	Name string
	// Type is the column's logical type; input values are cast to it.
	Type streamd.Type
	// Expr, when set, computes the column from the row's other columns
	// (an expr-lang expression) instead of reading it from the input.
	Expr string
	// From names the input field when it differs from Name; "a.b"
	// addresses field b of the nested object a (JSON only).
	From string
}

// Spec declares a decode + cast + compute + filter program.
type Spec struct {
	// Format is the input format: "jsonl" (one JSON object per record) or
	// "csv" (one CSV line per record, with a header line per lane).
	Format string
	// Columns are the output columns in order.
	Columns []ColumnSpec
	// Filters are boolean expressions applied in order after decoding,
	// casting and computing; a row is kept only if all are true.
	Filters []string
	// Steps are stateless transforms (cleansing, filters, stateless
	// quality rules, fixed-bounds outliers, projections) run in order after
	// Filters, inside Process. A stateful step is an error here: cut the
	// list with SplitSteps and run the rest in a Chain.
	Steps []Step
	// StepOptions names the pipeline and the metrics registerer for the
	// steps' metrics (quality rule counters, outliers); default: no
	// pipeline label value and no registration.
	StepOptions ChainOptions
}

// ErrSpec is wrapped by Compile for an invalid spec.
var ErrSpec = errors.New("invalid transform spec")

// colInfo is the compiled form of one column.
type colInfo struct {
	name string
	typ  streamd.Type
	expr *compiledExpr // nil for an input column
}

// Program is a compiled Spec. It is immutable and safe for concurrent use.
type Program struct {
	csv      bool
	schema   *streamd.Schema
	cols     []colInfo
	root     *fieldLevel      // JSON field tree
	csvNames map[string][]int // CSV header name → columns
	computed []int            // computed columns in order
	filters  []*compiledExpr
	stages   []stage             // Spec.Steps, compiled
	out      *streamd.Schema     // schema after the stages
	eventCol int                 // timestamp column named event_time in out, or -1
	meta     []metaCol           // columns filled from Record.Meta
	free     chan *streamd.Batch // batches handed back by Recycle
	workers  sync.Pool
	// bytesPerRow is, per column, the value bytes per row seen in the last
	// batch, to size the next batch's vectors.
	bytesPerRow []atomic.Int64
}

// Compile checks a spec and compiles it into a Program. Errors name the
// offending column or expression and wrap ErrSpec.
func Compile(spec Spec) (*Program, error) {
	p := &Program{eventCol: -1, root: &fieldLevel{}, csvNames: map[string][]int{}, free: make(chan *streamd.Batch, 8)}
	switch strings.ToLower(spec.Format) {
	case "jsonl", "json", "ndjson", "":
	case "csv":
		p.csv = true
	default:
		return nil, fmt.Errorf("compile transform: format %q (want jsonl or csv): %w", spec.Format, ErrSpec)
	}
	if len(spec.Columns) == 0 {
		return nil, fmt.Errorf("compile transform: no columns: %w", ErrSpec)
	}
	fields := make([]streamd.Field, len(spec.Columns))
	for i, c := range spec.Columns {
		fields[i] = streamd.Field{Name: c.Name, Type: c.Type}
		if c.Type.Kind == streamd.KindDecimal && (c.Type.Precision < 1 || c.Type.Precision > streamd.MaxDecimalPrecision || c.Type.Scale > c.Type.Precision) {
			return nil, fmt.Errorf("compile transform: column %q: invalid type %v: %w", c.Name, c.Type, ErrSpec)
		}
	}
	schema, err := streamd.NewSchema(fields...)
	if err != nil {
		return nil, fmt.Errorf("compile transform: %v: %w", err, ErrSpec)
	}
	p.schema = schema
	p.cols = make([]colInfo, len(spec.Columns))
	for i, c := range spec.Columns {
		p.cols[i] = colInfo{name: c.Name, typ: c.Type}
		if c.Name == "event_time" && c.Type.Kind == streamd.KindTimestamp {
			p.eventCol = i
		}
		if c.Expr != "" {
			if c.From != "" {
				return nil, fmt.Errorf("compile transform: column %q: has both expr and from: %w", c.Name, ErrSpec)
			}
			continue
		}
		if c.From == "" && MetaColumn(c.Name) {
			if err := checkMetaColumn(c); err != nil {
				return nil, err
			}
			p.meta = append(p.meta, metaCol{col: i, name: c.Name})
			continue
		}
		from := c.From
		if from == "" {
			from = c.Name
		}
		if p.csv {
			p.csvNames[from] = append(p.csvNames[from], i)
			continue
		}
		node := p.root
		parts := strings.Split(from, ".")
		for k, part := range parts {
			if part == "" {
				return nil, fmt.Errorf("compile transform: column %q: bad field path %q: %w", c.Name, from, ErrSpec)
			}
			f := node.node(part)
			if k == len(parts)-1 {
				f.cols = append(f.cols, i)
				break
			}
			if f.sub == nil {
				f.sub = &fieldLevel{}
			}
			node = f.sub
		}
	}
	for i, c := range spec.Columns {
		if c.Expr != "" {
			p.cols[i].expr = &compiledExpr{} // pending: marks the column computed
		}
	}
	for i, c := range spec.Columns {
		if c.Expr == "" {
			continue
		}
		ce, err := p.compileExpr(c.Expr, i, fmt.Sprintf("column %q", c.Name))
		if err != nil {
			return nil, fmt.Errorf("compile transform: column %q: expression %q: %w", c.Name, c.Expr, err)
		}
		p.cols[i].expr = ce
		p.computed = append(p.computed, i)
	}
	for _, f := range spec.Filters {
		ce, err := p.compileExpr(f, -1, fmt.Sprintf("filter %q", f))
		if err != nil {
			return nil, fmt.Errorf("compile transform: filter %q: %w", f, err)
		}
		p.filters = append(p.filters, ce)
	}
	p.out = p.schema
	for i, st := range spec.Steps {
		if st.Stateful() {
			name, _ := st.kind()
			return nil, fmt.Errorf("compile transform: step %d (%s) is stateful and runs in a Chain (see SplitSteps): %w", i+1, name, ErrSpec)
		}
	}
	if len(spec.Steps) > 0 {
		p.stages, p.out, err = compileSteps(p.schema, spec.Steps, spec.StepOptions)
		if err != nil {
			return nil, fmt.Errorf("compile transform: %w", err)
		}
		p.eventCol = -1
		for i, f := range p.out.Fields {
			if f.Name == "event_time" && f.Type.Kind == streamd.KindTimestamp {
				p.eventCol = i
			}
		}
	}
	p.bytesPerRow = make([]atomic.Int64, len(p.cols))
	p.workers.New = func() any {
		return &worker{sc: jsonScanner{toks: make([]token, len(p.cols))}}
	}
	return p, nil
}

// Schema returns the output schema: the spec's columns in order, as
// reshaped by Spec.Steps (rename, drop, select, parse_time, flags).
func (p *Program) Schema() *streamd.Schema { return p.out }

// worker holds the scratch state of one Process call.
type worker struct {
	sc     jsonScanner
	esc    []byte
	csvBuf []byte
	fields []token
	rowRec []int32  // record index of each row
	rowErr []string // per row: why it is dead-lettered, "" if not
	keep   []bool
	slow   []bool
	null   []bool
	tmp    []byte
	arena  arena
	vm     vm.VM
	env    map[string]any
	rc     runCtx
}

// Process decodes recs — consecutive records of one lane — into a new
// batch: it casts every value to its column's type, computes the computed
// columns, applies the filters and dead-letters what fails, so that
// b.Accounted() holds. header is the lane's CSV header line (ignored for
// JSON). Process is safe for concurrent use.
func (p *Program) Process(lane string, header []byte, recs []streamd.Record) *streamd.Batch {
	b, _ := p.process(lane, header, recs)
	return b
}

// process is Process that also reports whether a record had a non-null
// top-level field the program does not read, or a value that failed its
// cast: what tells schema evolution (Evolver) to look closer.
func (p *Program) process(lane string, header []byte, recs []streamd.Record) (*streamd.Batch, bool) {
	b := p.newBatch(lane)
	flagged := false
	p.reserve(b, recs)
	w := p.workers.Get().(*worker)
	defer p.workers.Put(w)
	w.rowRec = w.rowRec[:0]

	var h csvHeader
	if p.csv {
		h = p.parseHeader(w, header)
	}
	for ri := range recs {
		rec := &recs[ri]
		b.NoteRead(rec.Pos, len(rec.Data))
		if rec.Err != "" {
			b.AddDead(rec.Pos, rec.Err, rec.Data)
			continue
		}
		var msg string
		if p.csv {
			msg = p.decodeCSV(w, b, &h, rec.Data)
		} else {
			msg = p.decodeJSON(w, b, rec.Data)
			flagged = flagged || w.sc.unknown || (msg != "" && w.sc.err == "")
		}
		if msg != "" {
			b.AddDead(rec.Pos, msg, rec.Data)
			continue
		}
		if rec.Meta != nil && len(p.meta) > 0 {
			w.tmp = fillMeta(b, p.meta, rec.Meta, w.tmp)
		}
		b.AddRowMeta(rec.Pos, rec.Time)
		w.rowRec = append(w.rowRec, int32(ri))
	}
	if len(p.computed) > 0 || len(p.filters) > 0 {
		p.evalRows(w, b, recs)
	}
	if len(p.stages) > 0 {
		w.rc.w = w
		w.rc.raw = func(_ *streamd.Batch, j int) []byte { return recs[w.rowRec[j]].Data }
		w.rc.compact = w.compactRowRec
		runStages(&w.rc, p.stages, nil, b)
		w.rc.raw = nil
	}
	if rows := b.Len(); rows > 0 && b.Schema == p.schema {
		for i := range b.Cols {
			if c := &b.Cols[i]; streamd.StorageOf(c.Type) == streamd.StoreBytes {
				p.bytesPerRow[i].Store(int64(len(c.Bytes.Data)/rows + 1))
			}
		}
	}
	if p.eventCol >= 0 {
		c := &b.Cols[p.eventCol]
		for i, ok := range c.Valid {
			if ok {
				b.EventTime[i] = c.Int64[i]
			}
		}
	}
	return b, flagged
}

// compactRowRec keeps w.rowRec in step with b.Keep(keep).
func (w *worker) compactRowRec(keep []bool) {
	j := 0
	for i, k := range keep {
		if k {
			w.rowRec[j] = w.rowRec[i]
			j++
		}
	}
	w.rowRec = w.rowRec[:j]
}

// reserve sizes the batch's vectors for recs so that decoding appends
// without growing them.
func (p *Program) reserve(b *streamd.Batch, recs []streamd.Record) {
	n := len(recs)
	total := 0
	for i := range recs {
		total += len(recs[i].Data)
	}
	nBytes := 0
	for i := range b.Cols {
		if streamd.StorageOf(b.Cols[i].Type) == streamd.StoreBytes && p.cols[i].expr == nil {
			nBytes++
		}
	}
	if nBytes == 0 {
		nBytes = 1
	}
	for i := range b.Cols {
		c := &b.Cols[i]
		c.Valid = slices.Grow(c.Valid[:0], n)
		switch streamd.StorageOf(c.Type) {
		case streamd.StoreInt32:
			c.Int32 = slices.Grow(c.Int32[:0], n)
		case streamd.StoreInt64:
			c.Int64 = slices.Grow(c.Int64[:0], n)
		case streamd.StoreFloat64:
			c.Float64 = slices.Grow(c.Float64[:0], n)
		case streamd.StoreBool:
			c.Bool = slices.Grow(c.Bool[:0], n)
		case streamd.StoreBytes:
			c.Bytes.Offs = slices.Grow(c.Bytes.Offs[:0], n+1)
			size := 16 * n
			if c.Type.Kind != streamd.KindDecimal {
				if per := p.bytesPerRow[i].Load(); per > 0 {
					size = int(per)*n + n/8*int(per) + 64 // 12% headroom
				} else {
					size = total/(2*nBytes) + 16
				}
			}
			c.Bytes.Data = slices.Grow(c.Bytes.Data[:0], size)
		}
	}
	b.Pos = slices.Grow(b.Pos[:0], n)
	b.EventTime = slices.Grow(b.EventTime[:0], n)
}

// Recycle hands back a batch that Process returned once its rows have been
// copied elsewhere (the pipeline appends each decoded segment to its open
// batch); the next Process call reuses its vectors instead of allocating
// and zeroing new ones. Batches of another schema (an operator added a
// column) are left to the garbage collector.
func (p *Program) Recycle(b *streamd.Batch) {
	if b == nil || b.Schema != p.schema {
		return
	}
	select {
	case p.free <- b:
	default:
	}
}

// newBatch returns an empty batch for lane, recycled when one is free.
func (p *Program) newBatch(lane string) *streamd.Batch {
	select {
	case b := <-p.free:
		b.Reset()
		b.Lane = lane
		return b
	default:
		return streamd.NewBatch(p.schema, lane)
	}
}

// decodeJSON decodes one JSON line into a new row of b.
func (p *Program) decodeJSON(w *worker, b *streamd.Batch, line []byte) string {
	clear(w.sc.toks)
	w.sc.data = line
	ok := w.sc.scanRecord(p.root)
	w.sc.data = nil
	if !ok {
		return w.sc.err
	}
	return p.appendRow(w, b, line, false)
}

// appendRow casts the tokens in w.sc.toks into a new row of b; on failure
// it removes the partial row and returns why.
func (p *Program) appendRow(w *worker, b *streamd.Batch, data []byte, csv bool) string {
	for ci := range b.Cols {
		c := &b.Cols[ci]
		if p.cols[ci].expr != nil {
			c.AppendNull()
			continue
		}
		if msg := w.cast(c, w.sc.toks[ci], data, csv); msg != "" {
			n := b.Len()
			for k := 0; k < ci; k++ {
				truncateColumn(&b.Cols[k], n)
			}
			return "column " + quote(p.cols[ci].name) + ": " + msg
		}
	}
	return ""
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// truncateColumn cuts c back to n rows.
func truncateColumn(c *streamd.Column, n int) {
	c.Valid = c.Valid[:n]
	switch streamd.StorageOf(c.Type) {
	case streamd.StoreInt32:
		c.Int32 = c.Int32[:n]
	case streamd.StoreInt64:
		c.Int64 = c.Int64[:n]
	case streamd.StoreFloat64:
		c.Float64 = c.Float64[:n]
	case streamd.StoreBool:
		c.Bool = c.Bool[:n]
	case streamd.StoreBytes:
		if len(c.Bytes.Offs) > n+1 {
			c.Bytes.Offs = c.Bytes.Offs[:n+1]
			c.Bytes.Data = c.Bytes.Data[:c.Bytes.Offs[n]]
		}
	}
}
