package transform

import (
	"bytes"
	"math"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"

	"github.com/streamd/streamd"
)

// The vectorised evaluator handles the common subset of expressions —
// column references, integer/decimal/float/bool/string literals, + - *,
// comparisons, and/or/not, unary minus — over whole columns at once, with
// exact scaled-int64 decimal arithmetic. A row whose evaluation overflows
// int64 (or otherwise leaves the subset) is marked slow and re-evaluated by
// the expr VM with arbitrary-precision decimals, so results never depend
// on which path computed them.

type vkind uint8

const (
	vInt   vkind = iota + 1 // int64
	vDec                    // scaled int64 with fvec.scale
	vFloat                  // float64
	vBool                   // bool
	vStr                    // string (comparisons only)
)

// fvec is an evaluated vector: one value per batch row.
type fvec struct {
	i []int64
	f []float64
	b []bool
}

type evalCtx struct {
	b    *streamd.Batch
	n    int
	slow []bool
	ar   *arena
}

// fnode is a compiled vectorised expression node.
type fnode struct {
	k     vkind
	scale int
	eval  func(e *evalCtx) fvec
	// strAt returns row j of a string node.
	strAt func(b *streamd.Batch, j int) []byte
}

// arena hands out scratch vectors that live for one evaluation.
type arena struct {
	i64        [][]int64
	f64        [][]float64
	bools      [][]bool
	ni, nf, nb int
}

func (a *arena) reset() { a.ni, a.nf, a.nb = 0, 0, 0 }

func (a *arena) ints(n int) []int64 {
	if a.ni < len(a.i64) && cap(a.i64[a.ni]) >= n {
		s := a.i64[a.ni][:n]
		a.ni++
		return s
	}
	s := make([]int64, n)
	if a.ni < len(a.i64) {
		a.i64[a.ni] = s
	} else {
		a.i64 = append(a.i64, s)
	}
	a.ni++
	return s
}

func (a *arena) floats(n int) []float64 {
	if a.nf < len(a.f64) && cap(a.f64[a.nf]) >= n {
		s := a.f64[a.nf][:n]
		a.nf++
		return s
	}
	s := make([]float64, n)
	if a.nf < len(a.f64) {
		a.f64[a.nf] = s
	} else {
		a.f64 = append(a.f64, s)
	}
	a.nf++
	return s
}

func (a *arena) boolv(n int) []bool {
	if a.nb < len(a.bools) && cap(a.bools[a.nb]) >= n {
		s := a.bools[a.nb][:n]
		a.nb++
		return s
	}
	s := make([]bool, n)
	if a.nb < len(a.bools) {
		a.bools[a.nb] = s
	} else {
		a.bools = append(a.bools, s)
	}
	a.nb++
	return s
}

var pow10i = func() (t [19]int64) {
	t[0] = 1
	for i := 1; i < len(t); i++ {
		t[i] = t[i-1] * 10
	}
	return t
}()

func mulCheck(a, b int64) (int64, bool) {
	const lim = 1 << 31
	if a < lim && a > -lim && b < lim && b > -lim {
		return a * b, true
	}
	if a == 0 || b == 0 {
		return 0, true
	}
	c := a * b
	if c/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, false
	}
	return c, true
}

func addCheck(a, b int64) (int64, bool) {
	c := a + b
	if (a > 0 && b > 0 && c < 0) || (a < 0 && b < 0 && c >= 0) {
		return 0, false
	}
	return c, true
}

// roundDown divides v by 10^d rounding half-up (ties away from zero).
func roundDown(v int64, d int) int64 {
	p := pow10i[d]
	q, r := v/p, v%p
	if r < 0 {
		r = -r
	}
	if r >= p-r { // 2r ≥ p without overflow
		if v < 0 {
			q--
		} else {
			q++
		}
	}
	return q
}

// rescale returns v with its scale moved from `from` to `to`.
func rescale(e *evalCtx, v []int64, from, to int) []int64 {
	if from == to {
		return v
	}
	out := e.ar.ints(e.n)
	if to < from {
		for j, x := range v {
			out[j] = roundDown(x, from-to)
		}
		return out
	}
	m := pow10i[to-from]
	for j, x := range v {
		y, ok := mulCheck(x, m)
		if !ok {
			e.slow[j] = true
		}
		out[j] = y
	}
	return out
}

func toFloats(e *evalCtx, n *fnode, v fvec) []float64 {
	if n.k == vFloat {
		return v.f
	}
	out := e.ar.floats(e.n)
	div := float64(pow10i[n.scale])
	for j, x := range v.i {
		out[j] = float64(x) / div
	}
	return out
}

func isNum(k vkind) bool { return k == vInt || k == vDec || k == vFloat }

// compileFast compiles node into a vectorised evaluator whose result fits
// target (a filter's boolean when target is nil); nil when the expression
// is outside the subset.
func (p *Program) compileFast(node ast.Node, target *streamd.Type, avail func(int) bool) *fnode {
	n, ok := p.fastNode(node, avail)
	if !ok {
		return nil
	}
	if target == nil {
		if n.k != vBool {
			return nil
		}
		return n
	}
	return fastTarget(n, *target)
}

func (p *Program) fastNode(node ast.Node, avail func(int) bool) (*fnode, bool) {
	switch x := node.(type) {
	case *ast.IdentifierNode:
		ci := p.schema.Index(x.Value)
		if ci < 0 || !avail(ci) {
			return nil, false
		}
		t := p.cols[ci].typ
		switch {
		case t.Kind == streamd.KindInt32:
			return &fnode{k: vInt, eval: func(e *evalCtx) fvec {
				out := e.ar.ints(e.n)
				for j, v := range e.b.Cols[ci].Int32 {
					out[j] = int64(v)
				}
				return fvec{i: out}
			}}, true
		case t.Kind == streamd.KindInt64:
			return &fnode{k: vInt, eval: func(e *evalCtx) fvec { return fvec{i: e.b.Cols[ci].Int64} }}, true
		case t.Kind == streamd.KindDecimal && !t.Wide():
			return &fnode{k: vDec, scale: int(t.Scale), eval: func(e *evalCtx) fvec { return fvec{i: e.b.Cols[ci].Int64} }}, true
		case t.Kind == streamd.KindFloat64:
			return &fnode{k: vFloat, eval: func(e *evalCtx) fvec { return fvec{f: e.b.Cols[ci].Float64} }}, true
		case t.Kind == streamd.KindBool:
			return &fnode{k: vBool, eval: func(e *evalCtx) fvec { return fvec{b: e.b.Cols[ci].Bool} }}, true
		case t.Kind == streamd.KindString:
			return &fnode{k: vStr, strAt: func(b *streamd.Batch, j int) []byte { return b.Cols[ci].Bytes.At(j) }}, true
		}
		return nil, false
	case *ast.IntegerNode:
		v := int64(x.Value)
		return &fnode{k: vInt, eval: func(e *evalCtx) fvec {
			out := e.ar.ints(e.n)
			for j := range out {
				out[j] = v
			}
			return fvec{i: out}
		}}, true
	case *ast.FloatNode:
		txt := strconv.FormatFloat(x.Value, 'f', -1, 64)
		scale := 0
		if i := strings.IndexByte(txt, '.'); i >= 0 {
			scale = len(txt) - i - 1
		}
		if scale > 18 {
			return nil, false
		}
		v, err := streamd.ParseDecimal([]byte(txt), streamd.Type{Kind: streamd.KindDecimal, Precision: 18, Scale: uint8(scale)})
		if err != nil {
			return nil, false
		}
		return &fnode{k: vDec, scale: scale, eval: func(e *evalCtx) fvec {
			out := e.ar.ints(e.n)
			for j := range out {
				out[j] = v
			}
			return fvec{i: out}
		}}, true
	case *ast.BoolNode:
		v := x.Value
		return &fnode{k: vBool, eval: func(e *evalCtx) fvec {
			out := e.ar.boolv(e.n)
			for j := range out {
				out[j] = v
			}
			return fvec{b: out}
		}}, true
	case *ast.StringNode:
		v := []byte(x.Value)
		return &fnode{k: vStr, strAt: func(*streamd.Batch, int) []byte { return v }}, true
	case *ast.UnaryNode:
		a, ok := p.fastNode(x.Node, avail)
		if !ok {
			return nil, false
		}
		switch x.Operator {
		case "+":
			if isNum(a.k) {
				return a, true
			}
		case "-":
			switch a.k {
			case vInt, vDec:
				return &fnode{k: a.k, scale: a.scale, eval: func(e *evalCtx) fvec {
					v := a.eval(e)
					out := e.ar.ints(e.n)
					for j, y := range v.i {
						if y == math.MinInt64 {
							e.slow[j] = true
						}
						out[j] = -y
					}
					return fvec{i: out}
				}}, true
			case vFloat:
				return &fnode{k: vFloat, eval: func(e *evalCtx) fvec {
					v := a.eval(e)
					out := e.ar.floats(e.n)
					for j, y := range v.f {
						out[j] = -y
					}
					return fvec{f: out}
				}}, true
			}
		case "not", "!":
			if a.k == vBool {
				return &fnode{k: vBool, eval: func(e *evalCtx) fvec {
					v := a.eval(e)
					out := e.ar.boolv(e.n)
					for j, y := range v.b {
						out[j] = !y
					}
					return fvec{b: out}
				}}, true
			}
		}
		return nil, false
	case *ast.BinaryNode:
		l, ok := p.fastNode(x.Left, avail)
		if !ok {
			return nil, false
		}
		r, ok := p.fastNode(x.Right, avail)
		if !ok {
			return nil, false
		}
		return fastBinary(x.Operator, l, r)
	}
	return nil, false
}

func fastBinary(op string, l, r *fnode) (*fnode, bool) {
	switch op {
	case "and", "&&", "or", "||":
		if l.k != vBool || r.k != vBool {
			return nil, false
		}
		and := op == "and" || op == "&&"
		return &fnode{k: vBool, eval: func(e *evalCtx) fvec {
			a, b := l.eval(e), r.eval(e)
			out := e.ar.boolv(e.n)
			for j := range out {
				if and {
					out[j] = a.b[j] && b.b[j]
				} else {
					out[j] = a.b[j] || b.b[j]
				}
			}
			return fvec{b: out}
		}}, true
	case "==", "!=":
		eq := op == "=="
		switch {
		case l.k == vStr && r.k == vStr:
			return &fnode{k: vBool, eval: func(e *evalCtx) fvec {
				out := e.ar.boolv(e.n)
				for j := range out {
					out[j] = bytes.Equal(l.strAt(e.b, j), r.strAt(e.b, j)) == eq
				}
				return fvec{b: out}
			}}, true
		case l.k == vBool && r.k == vBool:
			return &fnode{k: vBool, eval: func(e *evalCtx) fvec {
				a, b := l.eval(e), r.eval(e)
				out := e.ar.boolv(e.n)
				for j := range out {
					out[j] = (a.b[j] == b.b[j]) == eq
				}
				return fvec{b: out}
			}}, true
		}
		return fastCompare(op, l, r)
	case "<", "<=", ">", ">=":
		return fastCompare(op, l, r)
	case "+", "-", "*":
		return fastArith(op, l, r)
	}
	return nil, false
}

func cmpResult(op string, c int) bool {
	switch op {
	case "==":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	}
	return c >= 0
}

func fastCompare(op string, l, r *fnode) (*fnode, bool) {
	if !isNum(l.k) || !isNum(r.k) {
		return nil, false
	}
	if l.k == vFloat || r.k == vFloat {
		return &fnode{k: vBool, eval: func(e *evalCtx) fvec {
			a, b := toFloats(e, l, l.eval(e)), toFloats(e, r, r.eval(e))
			out := e.ar.boolv(e.n)
			for j := range out {
				c := 0
				if a[j] < b[j] {
					c = -1
				} else if a[j] > b[j] {
					c = 1
				} else if a[j] != b[j] { // NaN
					out[j] = op == "!="
					continue
				}
				out[j] = cmpResult(op, c)
			}
			return fvec{b: out}
		}}, true
	}
	s := max(l.scale, r.scale)
	return &fnode{k: vBool, eval: func(e *evalCtx) fvec {
		a := rescale(e, l.eval(e).i, l.scale, s)
		b := rescale(e, r.eval(e).i, r.scale, s)
		out := e.ar.boolv(e.n)
		for j := range out {
			c := 0
			if a[j] < b[j] {
				c = -1
			} else if a[j] > b[j] {
				c = 1
			}
			out[j] = cmpResult(op, c)
		}
		return fvec{b: out}
	}}, true
}

func fastArith(op string, l, r *fnode) (*fnode, bool) {
	if !isNum(l.k) || !isNum(r.k) {
		return nil, false
	}
	if l.k == vFloat || r.k == vFloat {
		return &fnode{k: vFloat, eval: func(e *evalCtx) fvec {
			a, b := toFloats(e, l, l.eval(e)), toFloats(e, r, r.eval(e))
			out := e.ar.floats(e.n)
			for j := range out {
				switch op {
				case "+":
					out[j] = a[j] + b[j]
				case "-":
					out[j] = a[j] - b[j]
				default:
					out[j] = a[j] * b[j]
				}
			}
			return fvec{f: out}
		}}, true
	}
	k := vDec
	if l.k == vInt && r.k == vInt {
		k = vInt
	}
	if op == "*" {
		s := l.scale + r.scale
		if s > 18 {
			return nil, false
		}
		return &fnode{k: k, scale: s, eval: func(e *evalCtx) fvec {
			a, b := l.eval(e).i, r.eval(e).i
			out := e.ar.ints(e.n)
			for j := range out {
				v, ok := mulCheck(a[j], b[j])
				if !ok {
					e.slow[j] = true
				}
				out[j] = v
			}
			return fvec{i: out}
		}}, true
	}
	s := max(l.scale, r.scale)
	sub := op == "-"
	return &fnode{k: k, scale: s, eval: func(e *evalCtx) fvec {
		a := rescale(e, l.eval(e).i, l.scale, s)
		b := rescale(e, r.eval(e).i, r.scale, s)
		out := e.ar.ints(e.n)
		for j := range out {
			y := b[j]
			if sub {
				if y == math.MinInt64 {
					e.slow[j] = true
					continue
				}
				y = -y
			}
			v, ok := addCheck(a[j], y)
			if !ok {
				e.slow[j] = true
			}
			out[j] = v
		}
		return fvec{i: out}
	}}, true
}

// fastTarget converts n's result to the storage of a column of type t:
// Int64 (int64, timestamp, narrow decimal unscaled, and wide decimals as an
// int64 converted on append), Int32 (as int64, range-checked), Float64 or
// Bool. Values that do not fit are marked slow, so that the VM reports them.
func fastTarget(n *fnode, t streamd.Type) *fnode {
	switch t.Kind {
	case streamd.KindDecimal:
		if n.k != vInt && n.k != vDec {
			return nil
		}
		to := int(t.Scale)
		if to > 18 {
			return nil
		}
		var limit int64 = math.MaxInt64
		if t.Precision <= 18 {
			limit = pow10i[t.Precision]
		}
		return &fnode{k: vDec, scale: to, eval: func(e *evalCtx) fvec {
			v := rescale(e, n.eval(e).i, n.scale, to)
			for j, x := range v {
				if x >= limit || x <= -limit {
					e.slow[j] = true
				}
			}
			return fvec{i: v}
		}}
	case streamd.KindInt32, streamd.KindInt64:
		if n.k != vInt && n.k != vDec {
			return nil
		}
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if t.Kind == streamd.KindInt32 {
			lo, hi = math.MinInt32, math.MaxInt32
		}
		return &fnode{k: vInt, eval: func(e *evalCtx) fvec {
			v := rescale(e, n.eval(e).i, n.scale, 0)
			for j, x := range v {
				if x < lo || x > hi {
					e.slow[j] = true
				}
			}
			return fvec{i: v}
		}}
	case streamd.KindFloat64:
		if !isNum(n.k) {
			return nil
		}
		return &fnode{k: vFloat, eval: func(e *evalCtx) fvec { return fvec{f: toFloats(e, n, n.eval(e))} }}
	case streamd.KindBool:
		if n.k != vBool {
			return nil
		}
		return n
	}
	return nil
}

// appendFast appends row j of a fastTarget result to c.
func appendFast(c *streamd.Column, v fvec, j int) {
	switch streamd.StorageOf(c.Type) {
	case streamd.StoreInt64:
		c.AppendInt64(v.i[j])
	case streamd.StoreInt32:
		c.AppendInt32(int32(v.i[j]))
	case streamd.StoreFloat64:
		c.AppendFloat64(v.f[j])
	case streamd.StoreBool:
		c.AppendBool(v.b[j])
	case streamd.StoreBytes: // wide decimal
		w := streamd.WideFromInt64(v.i[j])
		c.AppendBytes(w[:])
	}
}
