package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"github.com/shopspring/decimal"

	"github.com/streamd/streamd"
)

// divisionDigits is how many fractional digits a decimal division keeps
// before the result is rounded to the column's scale.
const divisionDigits = 24

// compiledExpr is one computed column's or filter's expression.
type compiledExpr struct {
	src   string
	label string // `column "x"` or `filter "..."`, for dead-letter reasons
	// refs are the columns the expression reads.
	refs []int
	// nullAware expressions mention nil or ?? and so see null columns as
	// nil; the others yield null (computed) / false (filter) for a row in
	// which any referenced column is null.
	nullAware bool
	prog      *vm.Program
	fast      *fnode // vectorised evaluator, nil when unsupported
}

var errDivZero = errors.New("division by zero")

func toDec(v any) (decimal.Decimal, error) {
	switch x := v.(type) {
	case decimal.Decimal:
		return x, nil
	case int:
		return decimal.NewFromInt(int64(x)), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return decimal.Decimal{}, fmt.Errorf("cannot use %v as a decimal", x)
		}
		return decimal.NewFromFloat(x), nil
	case nil:
		return decimal.Decimal{}, errors.New("null operand")
	}
	return decimal.Decimal{}, fmt.Errorf("cannot use %T as a decimal", v)
}

func decOp(f func(a, b decimal.Decimal) (any, error)) func(params ...any) (any, error) {
	return func(params ...any) (any, error) {
		a, err := toDec(params[0])
		if err != nil {
			return nil, err
		}
		b, err := toDec(params[1])
		if err != nil {
			return nil, err
		}
		return f(a, b)
	}
}

var errIntOverflow = errors.New("integer overflow")

// intOr applies the checked integer operation to two ints and the decimal
// one to anything else.
func intOr(intOp func(a, b int64) (int64, bool), f func(a, b decimal.Decimal) (any, error)) func(params ...any) (any, error) {
	dec := decOp(f)
	return func(params ...any) (any, error) {
		if a, ok := params[0].(int); ok {
			if b, ok := params[1].(int); ok {
				v, ok := intOp(int64(a), int64(b))
				if !ok {
					return nil, errIntOverflow
				}
				return int(v), nil
			}
		}
		return dec(params...)
	}
}

func subCheck(a, b int64) (int64, bool) {
	if b == math.MinInt64 {
		return 0, false
	}
	return addCheck(a, -b)
}

// decimalOptions makes decimal.Decimal values (decimal columns) work with
// the arithmetic and comparison operators, exactly; and makes "/" between
// integers exact too.
func decimalOptions() []expr.Option {
	arith := []any{
		new(func(decimal.Decimal, decimal.Decimal) decimal.Decimal),
		new(func(decimal.Decimal, int) decimal.Decimal),
		new(func(int, decimal.Decimal) decimal.Decimal),
		new(func(decimal.Decimal, float64) decimal.Decimal),
		new(func(float64, decimal.Decimal) decimal.Decimal),
	}
	div := append(append([]any{}, arith...), new(func(int, int) decimal.Decimal))
	intArith := append(append([]any{}, arith...), new(func(int, int) int))
	cmp := []any{
		new(func(decimal.Decimal, decimal.Decimal) bool),
		new(func(decimal.Decimal, int) bool),
		new(func(int, decimal.Decimal) bool),
		new(func(decimal.Decimal, float64) bool),
		new(func(float64, decimal.Decimal) bool),
	}
	opts := []expr.Option{
		expr.Function("_decAdd", intOr(addCheck, func(a, b decimal.Decimal) (any, error) { return a.Add(b), nil }), intArith...),
		expr.Function("_decSub", intOr(subCheck, func(a, b decimal.Decimal) (any, error) { return a.Sub(b), nil }), intArith...),
		expr.Function("_decMul", intOr(mulCheck, func(a, b decimal.Decimal) (any, error) { return a.Mul(b), nil }), intArith...),
		expr.Function("_decDiv", decOp(func(a, b decimal.Decimal) (any, error) {
			if b.IsZero() {
				return nil, errDivZero
			}
			return a.DivRound(b, divisionDigits), nil
		}), div...),
		expr.Function("_decMod", decOp(func(a, b decimal.Decimal) (any, error) {
			if b.IsZero() {
				return nil, errDivZero
			}
			return a.Mod(b), nil
		}), arith...),
		expr.Function("_decLt", decOp(func(a, b decimal.Decimal) (any, error) { return a.LessThan(b), nil }), cmp...),
		expr.Function("_decLe", decOp(func(a, b decimal.Decimal) (any, error) { return a.LessThanOrEqual(b), nil }), cmp...),
		expr.Function("_decGt", decOp(func(a, b decimal.Decimal) (any, error) { return a.GreaterThan(b), nil }), cmp...),
		expr.Function("_decGe", decOp(func(a, b decimal.Decimal) (any, error) { return a.GreaterThanOrEqual(b), nil }), cmp...),
		expr.Function("_decEq", decOp(func(a, b decimal.Decimal) (any, error) { return a.Equal(b), nil }), cmp...),
		expr.Function("_decNe", decOp(func(a, b decimal.Decimal) (any, error) { return !a.Equal(b), nil }), cmp...),
		expr.Function("decimal", func(params ...any) (any, error) {
			switch x := params[0].(type) {
			case string:
				return decimal.NewFromString(x)
			default:
				return toDec(x)
			}
		}, new(func(string) decimal.Decimal), new(func(int) decimal.Decimal), new(func(float64) decimal.Decimal), new(func(decimal.Decimal) decimal.Decimal)),
		expr.Operator("+", "_decAdd"),
		expr.Operator("-", "_decSub"),
		expr.Operator("*", "_decMul"),
		expr.Operator("/", "_decDiv"),
		expr.Operator("%", "_decMod"),
		expr.Operator("<", "_decLt"),
		expr.Operator("<=", "_decLe"),
		expr.Operator(">", "_decGt"),
		expr.Operator(">=", "_decGe"),
		expr.Operator("==", "_decEq"),
		expr.Operator("!=", "_decNe"),
		expr.Patch(negPatch{}),
	}
	return opts
}

// negPatch rewrites unary minus as 0 - x, so that it works for decimals.
type negPatch struct{}

func (negPatch) Visit(node *ast.Node) {
	if u, ok := (*node).(*ast.UnaryNode); ok && u.Operator == "-" {
		ast.Patch(node, &ast.BinaryNode{Operator: "-", Left: &ast.IntegerNode{Value: 0}, Right: u.Node})
	}
}

// sampleValue is a value of the Go type a column of type t has in the
// expression environment.
func sampleValue(t streamd.Type) any {
	switch t.Kind {
	case streamd.KindString, streamd.KindJSON:
		return ""
	case streamd.KindBool:
		return false
	case streamd.KindInt32, streamd.KindInt64:
		return 0
	case streamd.KindFloat64:
		return 0.0
	case streamd.KindDecimal:
		return decimal.Decimal{}
	case streamd.KindDate, streamd.KindTimestamp:
		return time.Time{}
	case streamd.KindBinary:
		return []byte(nil)
	}
	return nil
}

// envValue is row j of column c as an expression value (nil for null).
func envValue(c *streamd.Column, j int) any {
	if !c.Valid[j] {
		return nil
	}
	switch c.Type.Kind {
	case streamd.KindString, streamd.KindJSON:
		return string(c.Bytes.At(j))
	case streamd.KindBool:
		return c.Bool[j]
	case streamd.KindInt32:
		return int(c.Int32[j])
	case streamd.KindInt64:
		return int(c.Int64[j])
	case streamd.KindFloat64:
		return c.Float64[j]
	case streamd.KindDecimal:
		if c.Type.Wide() {
			d, err := decimal.NewFromString(string(streamd.AppendDecimalWide(nil, c.Bytes.At(j), int(c.Type.Scale))))
			if err != nil {
				return nil
			}
			return d
		}
		return decimal.New(c.Int64[j], -int32(c.Type.Scale))
	case streamd.KindDate:
		return time.Unix(int64(c.Int32[j])*86400, 0).UTC()
	case streamd.KindTimestamp:
		return time.UnixMicro(c.Int64[j]).UTC()
	case streamd.KindBinary:
		return append([]byte(nil), c.Bytes.At(j)...)
	}
	return nil
}

// compileExpr compiles src for computed column self (or a filter when self
// is -1): it may read every input column, every computed column before
// self, and for a filter every column.
func (p *Program) compileExpr(src string, self int, label string) (*compiledExpr, error) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrSpec)
	}
	avail := func(ci int) bool {
		return self < 0 || ci < self || p.cols[ci].expr == nil
	}
	ce := &compiledExpr{src: src, label: label}
	env := map[string]any{}
	for ci, c := range p.cols {
		if avail(ci) {
			env[c.name] = sampleValue(c.typ)
		}
	}
	var walkErr error
	seen := map[int]bool{}
	ast.Walk(&tree.Node, visitFunc(func(n *ast.Node) {
		switch x := (*n).(type) {
		case *ast.NilNode:
			ce.nullAware = true
		case *ast.BinaryNode:
			if x.Operator == "??" {
				ce.nullAware = true
			}
		case *ast.IdentifierNode:
			ci := p.schema.Index(x.Value)
			if ci < 0 || seen[ci] {
				return
			}
			if !avail(ci) {
				if walkErr == nil {
					walkErr = fmt.Errorf("column %q is computed at or after this column: %w", x.Value, ErrSpec)
				}
				return
			}
			seen[ci] = true
			ce.refs = append(ce.refs, ci)
		}
	}))
	if walkErr != nil {
		return nil, walkErr
	}
	opts := append([]expr.Option{expr.Env(env)}, decimalOptions()...)
	if self < 0 {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrSpec)
	}
	ce.prog = prog
	if !ce.nullAware {
		var target *streamd.Type
		if self >= 0 {
			target = &p.cols[self].typ
		}
		ce.fast = p.compileFast(tree.Node, target, avail)
	}
	return ce, nil
}

type visitFunc func(*ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(n) }

// runVM evaluates ce for row j of b with the expr VM.
func (w *worker) runVM(ce *compiledExpr, b *streamd.Batch, j int) (any, error) {
	if w.env == nil {
		w.env = map[string]any{}
	}
	for _, ci := range ce.refs {
		w.env[b.Schema.Fields[ci].Name] = envValue(&b.Cols[ci], j)
	}
	return w.vm.Run(ce.prog, w.env)
}

// appendResult appends an expression result to c, cast to c's type by the
// same rules as input values. It returns "" or why the value does not fit.
func (w *worker) appendResult(c *streamd.Column, v any) string {
	var k kind
	w.tmp = w.tmp[:0]
	switch x := v.(type) {
	case nil:
		c.AppendNull()
		return ""
	case decimal.Decimal:
		switch c.Type.Kind {
		case streamd.KindDecimal:
			x = x.Round(int32(c.Type.Scale))
		case streamd.KindInt32, streamd.KindInt64:
			x = x.Round(0)
		}
		k, w.tmp = kNumber, append(w.tmp, x.String()...)
	case int:
		k, w.tmp = kNumber, strconv.AppendInt(w.tmp, int64(x), 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			if c.Type.Kind == streamd.KindFloat64 {
				return "result " + strconv.FormatFloat(x, 'g', -1, 64) + " is not a finite number"
			}
		}
		k, w.tmp = kNumber, strconv.AppendFloat(w.tmp, x, 'f', -1, 64)
	case bool:
		k = kFalse
		if x {
			k = kTrue
		}
		w.tmp = strconv.AppendBool(w.tmp, x)
	case string:
		k, w.tmp = kString, append(w.tmp, x...)
	case time.Time:
		switch c.Type.Kind {
		case streamd.KindTimestamp:
			c.AppendInt64(x.UnixMicro())
			return ""
		case streamd.KindDate:
			c.AppendInt32(int32(math.Floor(float64(x.Unix()) / 86400)))
			return ""
		}
		k, w.tmp = kString, x.UTC().AppendFormat(w.tmp, time.RFC3339Nano)
	case []byte:
		if c.Type.Kind == streamd.KindBinary {
			c.AppendBytes(x)
			return ""
		}
		k, w.tmp = kString, append(w.tmp, x...)
	default:
		js, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprintf("result of type %T cannot be stored", v)
		}
		k, w.tmp = kObject, append(w.tmp, js...)
	}
	if c.Type.Kind == streamd.KindJSON && k == kString {
		w.tmp = streamd.AppendJSONString(nil, string(w.tmp))
		k = kObject
	}
	return w.cast(c, token{kind: k, start: 0, end: int32(len(w.tmp))}, w.tmp, true)
}

// evalRows computes the computed columns, applies the filters and moves
// the rows that failed to the dead letter.
func (p *Program) evalRows(w *worker, b *streamd.Batch, recs []streamd.Record) {
	n := b.Len()
	if n == 0 {
		return
	}
	w.rowErr = resizeStrings(w.rowErr, n)
	for _, ci := range p.computed {
		p.evalComputed(w, b, ci)
	}
	w.keep = resizeBools(w.keep, n)
	for j := range w.keep {
		w.keep[j] = w.rowErr[j] == ""
	}
	for _, f := range p.filters {
		p.evalFilter(w, b, f)
	}
	removed := false
	for j, ok := range w.keep {
		if ok {
			continue
		}
		removed = true
		if w.rowErr[j] != "" {
			b.AddDead(b.Pos[j], w.rowErr[j], recs[w.rowRec[j]].Data)
		}
	}
	if removed {
		if len(p.stages) > 0 {
			w.compactRowRec(w.keep)
		}
		b.Keep(w.keep)
	}
}

// nullRows marks in w.null the rows where ce sees a null column.
func (w *worker) nullRows(ce *compiledExpr, b *streamd.Batch, n int) {
	w.null = resizeBools(w.null, n)
	clear(w.null)
	if ce.nullAware {
		return
	}
	for _, ci := range ce.refs {
		for j, ok := range b.Cols[ci].Valid {
			if !ok {
				w.null[j] = true
			}
		}
	}
}

func (p *Program) evalComputed(w *worker, b *streamd.Batch, ci int) {
	ce := p.cols[ci].expr
	n := b.Len()
	w.nullRows(ce, b, n)
	var fv fvec
	fast := ce.fast != nil
	if fast {
		w.slow = resizeBools(w.slow, n)
		clear(w.slow)
		w.arena.reset()
		fv = ce.fast.eval(&evalCtx{b: b, n: n, slow: w.slow, ar: &w.arena})
	}
	col := b.Cols[ci]
	out := streamd.Column{Type: col.Type}
	out.Valid = col.Valid[:0]
	out.Int32, out.Int64, out.Float64, out.Bool = col.Int32[:0], col.Int64[:0], col.Float64[:0], col.Bool[:0]
	if out.Type.Wide() {
		out.Bytes.Data = make([]byte, 0, 16*n)
		out.Bytes.Offs = make([]int, 0, n+1)
	}
	for j := 0; j < n; j++ {
		if w.rowErr[j] != "" || w.null[j] {
			out.AppendNull()
			continue
		}
		if fast && !w.slow[j] {
			appendFast(&out, fv, j)
			continue
		}
		v, err := w.runVM(ce, b, j)
		if err != nil {
			w.rowErr[j] = ce.label + ": " + vmError(err)
			out.AppendNull()
			continue
		}
		if msg := w.appendResult(&out, v); msg != "" {
			w.rowErr[j] = ce.label + ": " + msg
			out.AppendNull()
		}
	}
	b.Cols[ci] = out
}

// vmError renders an expr runtime error on one line.
func vmError(err error) string {
	for _, e := range []error{errDivZero, errIntOverflow} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	msg := err.Error()
	for i := 0; i < len(msg); i++ {
		if msg[i] == '\n' {
			return msg[:i]
		}
	}
	return msg
}

func (p *Program) evalFilter(w *worker, b *streamd.Batch, ce *compiledExpr) {
	n := b.Len()
	w.nullRows(ce, b, n)
	var fv fvec
	fast := ce.fast != nil
	if fast {
		w.slow = resizeBools(w.slow, n)
		clear(w.slow)
		w.arena.reset()
		fv = ce.fast.eval(&evalCtx{b: b, n: n, slow: w.slow, ar: &w.arena})
	}
	for j := 0; j < n; j++ {
		if !w.keep[j] {
			continue
		}
		var pass bool
		switch {
		case w.null[j]:
		case fast && !w.slow[j]:
			pass = fv.b[j]
		default:
			v, err := w.runVM(ce, b, j)
			if err != nil {
				w.rowErr[j] = ce.label + ": " + vmError(err)
				w.keep[j] = false
				continue
			}
			pass, _ = v.(bool)
		}
		if !pass {
			w.keep[j] = false
			b.Filtered++
		}
	}
}

func resizeBools(s []bool, n int) []bool {
	if cap(s) < n {
		return make([]bool, n)
	}
	return s[:n]
}

func resizeStrings(s []string, n int) []string {
	if cap(s) < n {
		return make([]string, n)
	}
	s = s[:n]
	clear(s)
	return s
}
