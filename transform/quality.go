package transform

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/streamd/streamd"
)

// QualitySpec configures the quality step.
type QualitySpec struct {
	// Rules are per-row DQDL rules, see the package doc for the subset.
	Rules []string
	// Action is what happens to a row failing any rule: dead_letter
	// (default; the reason names every failed rule), drop (counted as
	// filtered), warn (only counted) or flag (kept, with the failed rules
	// in the string column dq_failed_rules, appended to the schema; null
	// when every rule passed).
	Action string
	// UniqueTTL is how long, in event time, IsUnique remembers a value
	// (default 24h); MaxKeys bounds the values remembered per rule and
	// lane (default 1,000,000, oldest evicted first). See DedupSpec.
	UniqueTTL time.Duration
	MaxKeys   int
}

// FlagColumn is the string column the quality step's flag action adds.
const FlagColumn = "dq_failed_rules"

func qualityNeedsState(rules []string) bool {
	for _, r := range rules {
		n, err := parseRule(r)
		if err == nil && n.has(dqIsUnique) {
			return true
		}
	}
	return false
}

func (n *dqNode) has(k dqKind) bool {
	if n.kind == k {
		return true
	}
	for _, c := range n.kids {
		if c.has(k) {
			return true
		}
	}
	return false
}

// qualityStage checks rules on every row.
type qualityStage struct {
	in, schema *streamd.Schema
	rules      []*qRule
	action     string
	uniques    int // IsUnique leaves, each with a keySet in the lane state
	ttl        int64
	maxKeys    int
	id         string
}

type qRule struct {
	label      string
	root       *qEval
	pass, fail prometheus.Counter
}

// qEval is a compiled rule node; eval sets fail[j] for the rows that fail.
type qEval struct {
	kind   dqKind
	kids   []*qEval
	col    int
	test   func(c *streamd.Column, j int) bool // leaf: passes? (row not null)
	nullOK bool                                // a null passes
	unique int                                 // IsUnique: index of its keySet
	filter *filterStage                        // CustomExpression
}

func compileQuality(in *streamd.Schema, q *QualitySpec, _ int, opts ChainOptions) (stage, error) {
	if len(q.Rules) == 0 {
		return nil, fmt.Errorf("quality: no rules: %w", ErrSpec)
	}
	s := &qualityStage{in: in, schema: in, action: strings.ToLower(q.Action), ttl: int64(q.UniqueTTL / time.Microsecond), maxKeys: q.MaxKeys}
	if s.ttl == 0 {
		s.ttl = int64(DefaultDedupTTL / time.Microsecond)
	}
	if s.maxKeys == 0 {
		s.maxKeys = DefaultDedupMaxKeys
	}
	if s.ttl < 0 || s.maxKeys < 0 {
		return nil, fmt.Errorf("quality: negative unique_ttl or max_keys: %w", ErrSpec)
	}
	switch s.action {
	case "":
		s.action = "dead_letter"
	case "dead_letter", "drop", "warn":
	case "flag":
		if in.Index(FlagColumn) >= 0 {
			return nil, fmt.Errorf("quality: flag column %q already exists: %w", FlagColumn, ErrSpec)
		}
		fields := append(append([]streamd.Field(nil), in.Fields...), streamd.Field{Name: FlagColumn, Type: streamd.Type{Kind: streamd.KindString}})
		s.schema = &streamd.Schema{Fields: fields}
	default:
		return nil, fmt.Errorf("quality: action %q (want dead_letter, drop, warn or flag): %w", q.Action, ErrSpec)
	}
	vec := register(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamd_quality_rule_evaluations_total",
		Help: "Data-quality rule evaluations per rule (index: text) and outcome (pass, fail).",
	}, []string{"pipeline", "rule", "outcome"}))
	h := fnv.New64a()
	for i, src := range q.Rules {
		n, err := parseRule(src)
		if err != nil {
			return nil, fmt.Errorf("quality: rule %d: %w", i, err)
		}
		e, err := s.compileNode(in, src, n)
		if err != nil {
			return nil, fmt.Errorf("quality: rule %d: %w", i, err)
		}
		label := strconv.Itoa(i) + ": " + shorten(strings.Join(strings.Fields(src), " "), 60)
		s.rules = append(s.rules, &qRule{label: label, root: e,
			pass: vec.WithLabelValues(opts.Pipeline, label, "pass"), fail: vec.WithLabelValues(opts.Pipeline, label, "fail")})
		h.Write([]byte(src))
		h.Write([]byte{0})
	}
	s.id = fmt.Sprintf("quality[%016x]", h.Sum64())
	return s, nil
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func (s *qualityStage) compileNode(in *streamd.Schema, src string, n *dqNode) (*qEval, error) {
	e := &qEval{kind: n.kind, col: -1}
	if n.kind == dqAnd || n.kind == dqOr {
		for _, k := range n.kids {
			ke, err := s.compileNode(in, src, k)
			if err != nil {
				return nil, err
			}
			e.kids = append(e.kids, ke)
		}
		return e, nil
	}
	if n.kind == dqCustomExpression {
		f, err := compileFilterStage(in, n.expr)
		if err != nil {
			return nil, ruleErr(src, n.pos, "CustomExpression: %v", err)
		}
		e.filter = f.(*filterStage)
		return e, nil
	}
	e.col = in.Index(n.column)
	if e.col < 0 {
		return nil, ruleErr(src, n.pos, "no column %q in the schema at this step (%s)", n.column, columnList(in))
	}
	typ := in.Fields[e.col].Type
	var err error
	switch n.kind {
	case dqIsComplete:
		e.test = func(*streamd.Column, int) bool { return true }
	case dqIsUnique:
		e.nullOK = true
		e.unique = s.uniques
		s.uniques++
	case dqColumnValues:
		e.test, err = valueTest(typ, n.cond)
	case dqColumnLength:
		if streamd.StorageOf(typ) != streamd.StoreBytes || typ.Kind == streamd.KindDecimal {
			return nil, ruleErr(src, n.pos, "ColumnLength needs a string, binary or json column; %q is %v", n.column, typ)
		}
		var lt func(float64) bool
		lt, err = numTest(n.cond)
		e.test = func(c *streamd.Column, j int) bool { return lt(float64(utf8.RuneCount(c.Bytes.At(j)))) }
	case dqColumnDataType:
		e.nullOK = true
		e.test = dataTypeTest(typ, dataTypeFamilies[n.typ])
	}
	if err != nil {
		return nil, ruleErr(src, n.pos, "%v", err)
	}
	return e, nil
}

// cmpOK applies op to the result of a three-way comparison.
func cmpOK(op string, c int) bool {
	switch op {
	case "=":
		return c == 0
	case "!=":
		return c != 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	case "<":
		return c < 0
	}
	return c <= 0
}

// makeTest builds a test from a three-way comparison against each literal.
func makeTest(cond *dqCond, cmps []func(c *streamd.Column, j int) int) func(c *streamd.Column, j int) bool {
	var f func(c *streamd.Column, j int) bool
	switch cond.op {
	case "between":
		lo, hi := cmps[0], cmps[1]
		f = func(c *streamd.Column, j int) bool { return lo(c, j) >= 0 && hi(c, j) <= 0 }
	case "in":
		f = func(c *streamd.Column, j int) bool {
			for _, cmp := range cmps {
				if cmp(c, j) == 0 {
					return true
				}
			}
			return false
		}
	default:
		cmp, op := cmps[0], cond.op
		f = func(c *streamd.Column, j int) bool { return cmpOK(op, cmp(c, j)) }
	}
	if cond.not {
		g := f
		f = func(c *streamd.Column, j int) bool { return !g(c, j) }
	}
	return f
}

func numTest(cond *dqCond) (func(float64) bool, error) {
	vals := make([]float64, len(cond.lits))
	for i, l := range cond.lits {
		v, err := strconv.ParseFloat(l.text, 64)
		if err != nil || l.kind != 'n' {
			return nil, fmt.Errorf("want a number, got %q", l.text)
		}
		vals[i] = v
	}
	cmpF := func(a, b float64) int {
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	}
	return func(x float64) bool {
		var ok bool
		switch cond.op {
		case "between":
			ok = x >= vals[0] && x <= vals[1]
		case "in":
			for _, v := range vals {
				ok = ok || x == v
			}
		default:
			ok = cmpOK(cond.op, cmpF(x, vals[0]))
		}
		return ok != cond.not
	}, nil
}

// valueTest compiles a ColumnValues condition for a column of type typ.
func valueTest(typ streamd.Type, cond *dqCond) (func(c *streamd.Column, j int) bool, error) {
	if cond.op == "matches" {
		if streamd.StorageOf(typ) != streamd.StoreBytes || typ.Kind == streamd.KindDecimal || typ.Kind == streamd.KindBinary {
			return nil, fmt.Errorf("matches needs a string or json column, not %v", typ)
		}
		re, err := regexp.Compile("^(?:" + cond.lits[0].text + ")$")
		if err != nil {
			return nil, fmt.Errorf("matches: %v", err)
		}
		f := func(c *streamd.Column, j int) bool { return re.Match(c.Bytes.At(j)) }
		if cond.not {
			return func(c *streamd.Column, j int) bool { return !f(c, j) }, nil
		}
		return f, nil
	}
	cmps := make([]func(c *streamd.Column, j int) int, len(cond.lits))
	for i, l := range cond.lits {
		cmp, err := literalCmp(typ, l)
		if err != nil {
			return nil, err
		}
		cmps[i] = cmp
	}
	return makeTest(cond, cmps), nil
}

// literalCmp returns a three-way comparison of a row's value with literal l.
func literalCmp(typ streamd.Type, l dqTok) (func(c *streamd.Column, j int) int, error) {
	three := func(a, b int64) int {
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	}
	switch typ.Kind {
	case streamd.KindInt32, streamd.KindInt64, streamd.KindDecimal:
		if l.kind != 'n' {
			return nil, fmt.Errorf("column type %v wants a number, got %q", typ, l.text)
		}
		if typ.Wide() {
			return nil, fmt.Errorf("wide decimal columns (%v) are not supported by ColumnValues", typ)
		}
		d, err := decimal.NewFromString(l.text)
		if err != nil {
			return nil, fmt.Errorf("number %q: %v", l.text, err)
		}
		scale := int32(0)
		if typ.Kind == streamd.KindDecimal {
			scale = int32(typ.Scale)
		}
		// lit·10^scale = fl + f with 0 ≤ f < 1.
		sd := d.Shift(scale)
		floor := sd.Floor()
		frac := !floor.Equal(sd)
		var fl int64
		switch {
		case floor.GreaterThan(decimal.NewFromInt(math.MaxInt64)):
			fl, frac = math.MaxInt64, true
		case floor.LessThan(decimal.NewFromInt(math.MinInt64)):
			fl, frac = math.MinInt64, false
		default:
			fl = floor.IntPart()
		}
		return func(c *streamd.Column, j int) int {
			var v int64
			if c.Type.Kind == streamd.KindInt32 {
				v = int64(c.Int32[j])
			} else {
				v = c.Int64[j]
			}
			switch {
			case v > fl:
				return 1
			case v < fl:
				return -1
			case frac:
				return -1
			}
			return 0
		}, nil
	case streamd.KindFloat64:
		if l.kind != 'n' {
			return nil, fmt.Errorf("column type %v wants a number, got %q", typ, l.text)
		}
		x, _ := strconv.ParseFloat(l.text, 64)
		return func(c *streamd.Column, j int) int {
			v := c.Float64[j]
			switch {
			case v < x:
				return -1
			case v > x:
				return 1
			case v == x:
				return 0
			}
			return 2 // NaN: equal to nothing, ordered with nothing
		}, nil
	case streamd.KindDate:
		d, ok := parseDate([]byte(l.text))
		if !ok {
			return nil, fmt.Errorf("date column wants \"YYYY-MM-DD\", got %q", l.text)
		}
		return func(c *streamd.Column, j int) int { return three(int64(c.Int32[j]), int64(d)) }, nil
	case streamd.KindTimestamp:
		t, ok := parseTimestamp([]byte(l.text))
		if !ok {
			return nil, fmt.Errorf("timestamp column wants an RFC 3339 time, got %q", l.text)
		}
		return func(c *streamd.Column, j int) int { return three(c.Int64[j], t) }, nil
	case streamd.KindBool:
		var want bool
		switch strings.ToLower(l.text) {
		case "true":
			want = true
		case "false":
		default:
			return nil, fmt.Errorf("bool column wants true or false, got %q", l.text)
		}
		return func(c *streamd.Column, j int) int {
			switch {
			case c.Bool[j] == want:
				return 0
			case want:
				return -1
			}
			return 1
		}, nil
	case streamd.KindString, streamd.KindJSON, streamd.KindBinary:
		lit := l.text
		return func(c *streamd.Column, j int) int { return strings.Compare(bstr(c.Bytes.At(j)), lit) }, nil
	}
	return nil, fmt.Errorf("unsupported column type %v", typ)
}

// dataTypeTest checks that a value conforms to a ColumnDataType family: the
// text of a string column must parse as it; any other column conforms
// when its declared type belongs to the family.
func dataTypeTest(typ streamd.Type, family string) func(c *streamd.Column, j int) bool {
	if typ.Kind != streamd.KindString {
		var ok bool
		switch family {
		case "string":
			ok = typ.Kind == streamd.KindJSON
		case "int":
			ok = typ.Kind == streamd.KindInt32 || typ.Kind == streamd.KindInt64
		case "float":
			ok = typ.Kind == streamd.KindFloat64 || typ.Kind == streamd.KindDecimal || typ.Kind == streamd.KindInt32 || typ.Kind == streamd.KindInt64
		case "bool":
			ok = typ.Kind == streamd.KindBool
		case "date":
			ok = typ.Kind == streamd.KindDate
		case "timestamp":
			ok = typ.Kind == streamd.KindTimestamp
		}
		return func(*streamd.Column, int) bool { return ok }
	}
	switch family {
	case "int":
		return func(c *streamd.Column, j int) bool { _, why := parseInt(c.Bytes.At(j)); return why == "" }
	case "float":
		return func(c *streamd.Column, j int) bool {
			f, err := strconv.ParseFloat(bstr(trimBlank(c.Bytes.At(j))), 64)
			return err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
		}
	case "bool":
		return func(c *streamd.Column, j int) bool {
			v := trimBlank(c.Bytes.At(j))
			return equalFold(v, "true") || equalFold(v, "false")
		}
	case "date":
		return func(c *streamd.Column, j int) bool { _, ok := parseDate(trimBlank(c.Bytes.At(j))); return ok }
	case "timestamp":
		return func(c *streamd.Column, j int) bool { _, ok := parseTimestamp(trimBlank(c.Bytes.At(j))); return ok }
	}
	return func(*streamd.Column, int) bool { return true }
}

func (s *qualityStage) out() *streamd.Schema { return s.schema }

func (s *qualityStage) identity() string { return s.id }

func (s *qualityStage) newState() laneState {
	st := &qualityState{sets: make([]*keySet, s.uniques)}
	for i := range st.sets {
		st.sets[i] = newKeySet()
	}
	return st
}

// eval sets fail[j] for rows of b failing e; scratch is per recursion level.
func (s *qualityStage) eval(rc *runCtx, e *qEval, b *streamd.Batch, st *qualityState, fail []bool) {
	n := b.Len()
	switch e.kind {
	case dqAnd, dqOr:
		sub := make([]bool, n)
		for k, kid := range e.kids {
			if k == 0 {
				s.eval(rc, kid, b, st, fail)
				continue
			}
			clear(sub)
			s.eval(rc, kid, b, st, sub)
			for j := range fail {
				if e.kind == dqAnd {
					fail[j] = fail[j] || sub[j]
				} else {
					fail[j] = fail[j] && sub[j]
				}
			}
		}
	case dqCustomExpression:
		w := rc.w
		w.keep = resizeBools(w.keep, n)
		for j := range w.keep {
			w.keep[j] = true
		}
		w.rowErr = resizeStrings(w.rowErr, n)
		filtered := b.Filtered
		e.filter.prog.evalFilter(w, b, e.filter.ce)
		b.Filtered = filtered
		for j, ok := range w.keep {
			fail[j] = !ok
		}
	case dqIsUnique:
		k := st.sets[e.unique]
		cols := []int{e.col}
		c := &b.Cols[e.col]
		for j := 0; j < n; j++ {
			t := k.advance(b.EventTime[j])
			k.expire(s.ttl)
			if !c.Valid[j] {
				continue
			}
			dup, _ := k.check(k.hashRow(b, cols, j), t, s.ttl, s.maxKeys)
			fail[j] = dup
		}
	default:
		c := &b.Cols[e.col]
		for j := 0; j < n; j++ {
			if !c.Valid[j] {
				fail[j] = !e.nullOK
				continue
			}
			fail[j] = !e.test(c, j)
		}
	}
}

func (s *qualityStage) apply(rc *runCtx, b *streamd.Batch, st laneState) {
	n := b.Len()
	var qs *qualityState
	if st != nil {
		qs = st.(*qualityState)
	}
	fails := make([][]bool, len(s.rules))
	anyFail := make([]bool, n)
	for i, r := range s.rules {
		f := make([]bool, n)
		s.eval(rc, r.root, b, qs, f)
		nf := 0
		for j, x := range f {
			if x {
				nf++
				anyFail[j] = true
			}
		}
		r.fail.Add(float64(nf))
		r.pass.Add(float64(n - nf))
		fails[i] = f
	}
	reason := func(j int) string {
		var sb strings.Builder
		for i, r := range s.rules {
			if fails[i][j] {
				if sb.Len() > 0 {
					sb.WriteString("; ")
				}
				sb.WriteString(r.label)
			}
		}
		return sb.String()
	}
	var flag streamd.Column
	if s.action == "flag" {
		flag.Type = streamd.Type{Kind: streamd.KindString}
	}
	for j := 0; j < n; j++ {
		if !anyFail[j] {
			if s.action == "flag" {
				flag.AppendNull()
			}
			continue
		}
		switch s.action {
		case "dead_letter":
			rc.dead(b, j, "quality: failed rules ["+reason(j)+"]")
		case "drop":
			rc.filtered(b, j)
		case "flag":
			flag.AppendBytes([]byte(reason(j)))
		}
	}
	if s.action == "flag" {
		b.Cols = append(b.Cols, flag)
		b.Schema = s.schema
	}
}

// qualityState is one lane's IsUnique key sets.
type qualityState struct{ sets []*keySet }

// encode: uvarint set count, then each key set length-prefixed.
func (q *qualityState) encode(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(q.sets)))
	var tmp []byte
	for _, k := range q.sets {
		tmp = k.encode(tmp[:0])
		dst = binary.AppendUvarint(dst, uint64(len(tmp)))
		dst = append(dst, tmp...)
	}
	return dst
}

func (q *qualityState) decode(src []byte) error {
	n, k := binary.Uvarint(src)
	if k <= 0 || n != uint64(len(q.sets)) {
		return fmt.Errorf("quality state: %d key sets, want %d: %w", n, len(q.sets), ErrState)
	}
	src = src[k:]
	for i := range q.sets {
		body, rest, err := readChunk(src)
		if err != nil {
			return fmt.Errorf("quality key set %d: %w", i, err)
		}
		if err := q.sets[i].decode(body); err != nil {
			return fmt.Errorf("quality key set %d: %w", i, err)
		}
		src = rest
	}
	if len(src) != 0 {
		return fmt.Errorf("quality state: trailing bytes: %w", ErrState)
	}
	return nil
}
