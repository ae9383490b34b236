package transform

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrRule is wrapped by the errors of data-quality rules that do not parse
// or cannot apply per row; the message quotes the rule and the byte
// position.
var ErrRule = errors.New("invalid data-quality rule")

// DQDL rule names that judge a whole dataset, not a row: they need every
// row of a (bounded) dataset and a threshold over it, so they cannot
// decide the fate of one record in a stream.
var datasetRules = map[string]string{
	"rowcount":                "counts the rows of a whole dataset",
	"rowcountmatch":           "compares a whole dataset with another",
	"completeness":            "is a ratio over a whole dataset (use IsComplete per row)",
	"uniqueness":              "is a ratio over a whole dataset (use IsUnique per row)",
	"uniquevalueratio":        "is a ratio over a whole dataset",
	"distinctvaluescount":     "counts distinct values of a whole dataset",
	"mean":                    "is an aggregate of a whole dataset",
	"sum":                     "is an aggregate of a whole dataset",
	"standarddeviation":       "is an aggregate of a whole dataset",
	"entropy":                 "is an aggregate of a whole dataset",
	"columncorrelation":       "is an aggregate of a whole dataset",
	"datafreshness":           "is an aggregate of a whole dataset",
	"referentialintegrity":    "joins a whole dataset with another",
	"datasetmatch":            "compares a whole dataset with another",
	"aggregatematch":          "compares aggregates of whole datasets",
	"schemamatch":             "compares whole datasets' schemas",
	"columncount":             "is checked against the schema, not rows",
	"columnexists":            "is checked against the schema, not rows (a missing column fails at start)",
	"columnnamesmatchpattern": "is checked against the schema, not rows",
	"detectanomalies":         "compares whole-dataset metrics over time",
	"filematch":               "checks files, not rows",
	"customsql":               "runs SQL over a whole dataset (use CustomExpression per row)",
}

// dqTok is one token of a rule.
type dqTok struct {
	kind byte // 'i' identifier, 's' string, 'n' number, 'o' operator/punct, 0 end
	text string
	pos  int
}

type dqParser struct {
	src  string
	toks []dqTok
	i    int
}

func ruleErr(src string, pos int, format string, args ...any) error {
	return fmt.Errorf("rule %q at byte %d: %s: %w", src, pos, fmt.Sprintf(format, args...), ErrRule)
}

func lexRule(src string) ([]dqTok, error) {
	var toks []dqTok
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"':
			start := i
			i++
			var sb strings.Builder
			closed := false
			for i < len(src) {
				if src[i] == '\\' && i+1 < len(src) {
					sb.WriteByte(src[i+1])
					i += 2
					continue
				}
				if src[i] == '"' {
					closed = true
					i++
					break
				}
				sb.WriteByte(src[i])
				i++
			}
			if !closed {
				return nil, ruleErr(src, start, "unterminated string")
			}
			toks = append(toks, dqTok{kind: 's', text: sb.String(), pos: start})
		case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
			start := i
			i++
			for i < len(src) && (src[i] >= '0' && src[i] <= '9' || src[i] == '.' || src[i] == 'e' || src[i] == 'E' ||
				((src[i] == '-' || src[i] == '+') && (src[i-1] == 'e' || src[i-1] == 'E'))) {
				i++
			}
			text := src[start:i]
			if _, err := strconv.ParseFloat(text, 64); err != nil {
				return nil, ruleErr(src, start, "malformed number %q", text)
			}
			toks = append(toks, dqTok{kind: 'n', text: text, pos: start})
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_':
			start := i
			for i < len(src) && (src[i] >= 'a' && src[i] <= 'z' || src[i] >= 'A' && src[i] <= 'Z' || src[i] == '_' || src[i] >= '0' && src[i] <= '9') {
				i++
			}
			toks = append(toks, dqTok{kind: 'i', text: src[start:i], pos: start})
		case c == '>' || c == '<' || c == '!' || c == '=':
			start := i
			i++
			if i < len(src) && src[i] == '=' {
				i++
			}
			op := src[start:i]
			if op == "!" {
				return nil, ruleErr(src, start, "unexpected %q (did you mean !=?)", op)
			}
			toks = append(toks, dqTok{kind: 'o', text: op, pos: start})
		case c == '(' || c == ')' || c == '[' || c == ']' || c == ',':
			toks = append(toks, dqTok{kind: 'o', text: string(c), pos: i})
			i++
		default:
			return nil, ruleErr(src, i, "unexpected character %q", c)
		}
	}
	toks = append(toks, dqTok{pos: len(src)})
	return toks, nil
}

// rule AST

type dqKind uint8

const (
	dqAnd dqKind = iota
	dqOr
	dqIsComplete
	dqIsUnique
	dqColumnValues
	dqColumnLength
	dqColumnDataType
	dqCustomExpression
)

type dqNode struct {
	kind   dqKind
	kids   []*dqNode // and / or
	column string    // leaf rules
	cond   *dqCond   // ColumnValues / ColumnLength
	typ    string    // ColumnDataType
	expr   string    // CustomExpression
	pos    int
}

// dqCond is a comparison: op is one of = != > >= < <= between in matches,
// possibly negated.
type dqCond struct {
	op   string
	not  bool
	lits []dqTok
}

// parseRule parses one DQDL rule of the supported subset.
func parseRule(src string) (*dqNode, error) {
	toks, err := lexRule(src)
	if err != nil {
		return nil, err
	}
	p := &dqParser{src: src, toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != 0 {
		if t.kind == 'i' && strings.EqualFold(t.text, "with") {
			return nil, ruleErr(src, t.pos, "%q clauses (thresholds) judge a whole dataset; per-row rules cannot use them", t.text)
		}
		return nil, ruleErr(src, t.pos, "unexpected %q after the rule", t.text)
	}
	return n, nil
}

func (p *dqParser) peek() dqTok { return p.toks[p.i] }

func (p *dqParser) next() dqTok {
	t := p.toks[p.i]
	if t.kind != 0 {
		p.i++
	}
	return t
}

func (p *dqParser) isWord(w string) bool {
	t := p.peek()
	return t.kind == 'i' && strings.EqualFold(t.text, w)
}

func (p *dqParser) describe(t dqTok) string {
	if t.kind == 0 {
		return "end of rule"
	}
	return strconv.Quote(t.text)
}

func (p *dqParser) or() (*dqNode, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		pos := p.next().pos
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		if l.kind == dqOr {
			l.kids = append(l.kids, r)
		} else {
			l = &dqNode{kind: dqOr, kids: []*dqNode{l, r}, pos: pos}
		}
	}
	return l, nil
}

func (p *dqParser) and() (*dqNode, error) {
	l, err := p.term()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		pos := p.next().pos
		r, err := p.term()
		if err != nil {
			return nil, err
		}
		if l.kind == dqAnd {
			l.kids = append(l.kids, r)
		} else {
			l = &dqNode{kind: dqAnd, kids: []*dqNode{l, r}, pos: pos}
		}
	}
	return l, nil
}

func (p *dqParser) term() (*dqNode, error) {
	t := p.peek()
	if t.kind == 'o' && t.text == "(" {
		p.next()
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != 'o' || c.text != ")" {
			return nil, ruleErr(p.src, c.pos, "want \")\", got %s", p.describe(c))
		}
		return n, nil
	}
	if t.kind != 'i' {
		return nil, ruleErr(p.src, t.pos, "want a rule name or \"(\", got %s", p.describe(t))
	}
	p.next()
	name := strings.ToLower(t.text)
	n := &dqNode{pos: t.pos}
	switch name {
	case "iscomplete":
		n.kind = dqIsComplete
	case "isunique", "isprimarykey":
		n.kind = dqIsUnique
	case "columnvalues":
		n.kind = dqColumnValues
	case "columnlength":
		n.kind = dqColumnLength
	case "columndatatype":
		n.kind = dqColumnDataType
	case "customexpression":
		n.kind = dqCustomExpression
	default:
		if why, ok := datasetRules[name]; ok {
			return nil, ruleErr(p.src, t.pos, "%s %s, so it cannot apply per record in a stream", t.text, why)
		}
		return nil, ruleErr(p.src, t.pos, "unknown rule %q (per-row rules: IsComplete, IsUnique, ColumnValues, ColumnLength, ColumnDataType, CustomExpression)", t.text)
	}
	arg := p.next()
	if arg.kind != 's' {
		return nil, ruleErr(p.src, arg.pos, "%s wants a quoted column name, got %s", t.text, p.describe(arg))
	}
	if n.kind == dqCustomExpression {
		n.expr = arg.text
		return n, nil
	}
	n.column = arg.text
	if name == "isprimarykey" {
		// IsPrimaryKey = IsComplete and IsUnique.
		return &dqNode{kind: dqAnd, pos: t.pos, kids: []*dqNode{{kind: dqIsComplete, column: arg.text, pos: t.pos}, n}}, nil
	}
	switch n.kind {
	case dqColumnValues, dqColumnLength:
		c, err := p.cond(n.kind == dqColumnLength)
		if err != nil {
			return nil, err
		}
		n.cond = c
	case dqColumnDataType:
		op := p.next()
		if op.kind != 'o' || op.text != "=" {
			return nil, ruleErr(p.src, op.pos, "ColumnDataType wants = \"TYPE\", got %s", p.describe(op))
		}
		ty := p.next()
		if ty.kind != 's' {
			return nil, ruleErr(p.src, ty.pos, "ColumnDataType wants a quoted type name, got %s", p.describe(ty))
		}
		if _, ok := dataTypeFamilies[strings.ToUpper(ty.text)]; !ok {
			return nil, ruleErr(p.src, ty.pos, "unknown type %q (want STRING, INTEGER, LONG, FLOAT, DOUBLE, DECIMAL, BOOLEAN, DATE or TIMESTAMP)", ty.text)
		}
		n.typ = strings.ToUpper(ty.text)
	}
	return n, nil
}

func (p *dqParser) literal(numOnly bool) (dqTok, error) {
	t := p.next()
	switch {
	case t.kind == 'n', t.kind == 's' && !numOnly:
		return t, nil
	case t.kind == 'i' && !numOnly && (strings.EqualFold(t.text, "true") || strings.EqualFold(t.text, "false")):
		t.text = strings.ToLower(t.text)
		return t, nil
	}
	want := "a number or a quoted value"
	if numOnly {
		want = "a number"
	}
	return t, ruleErr(p.src, t.pos, "want %s, got %s", want, p.describe(t))
}

func (p *dqParser) cond(numOnly bool) (*dqCond, error) {
	c := &dqCond{}
	if p.isWord("not") {
		p.next()
		c.not = true
	}
	t := p.next()
	switch {
	case t.kind == 'o' && strings.Contains("= != > >= < <=", t.text) && !c.not:
		c.op = t.text
		l, err := p.literal(numOnly)
		if err != nil {
			return nil, err
		}
		c.lits = []dqTok{l}
	case t.kind == 'i' && strings.EqualFold(t.text, "between"):
		c.op = "between"
		a, err := p.literal(numOnly)
		if err != nil {
			return nil, err
		}
		if !p.isWord("and") {
			return nil, ruleErr(p.src, p.peek().pos, "between wants \"and\", got %s", p.describe(p.peek()))
		}
		p.next()
		b, err := p.literal(numOnly)
		if err != nil {
			return nil, err
		}
		c.lits = []dqTok{a, b}
	case t.kind == 'i' && strings.EqualFold(t.text, "in"):
		c.op = "in"
		if o := p.next(); o.kind != 'o' || o.text != "[" {
			return nil, ruleErr(p.src, o.pos, "in wants [, got %s", p.describe(o))
		}
		for {
			l, err := p.literal(numOnly)
			if err != nil {
				return nil, err
			}
			c.lits = append(c.lits, l)
			sep := p.next()
			if sep.kind == 'o' && sep.text == "]" {
				break
			}
			if sep.kind != 'o' || sep.text != "," {
				return nil, ruleErr(p.src, sep.pos, "want , or ], got %s", p.describe(sep))
			}
		}
	case t.kind == 'i' && strings.EqualFold(t.text, "matches") && !numOnly:
		c.op = "matches"
		r := p.next()
		if r.kind != 's' {
			return nil, ruleErr(p.src, r.pos, "matches wants a quoted regular expression, got %s", p.describe(r))
		}
		c.lits = []dqTok{r}
	default:
		want := "=, !=, >, >=, <, <=, between, in or matches"
		if numOnly {
			want = "=, !=, >, >=, <, <=, between or in"
		}
		if c.not {
			want = "between, in or matches after not"
		}
		return nil, ruleErr(p.src, t.pos, "want %s, got %s", want, p.describe(t))
	}
	return c, nil
}

// dataTypeFamilies maps ColumnDataType names to a check family.
var dataTypeFamilies = map[string]string{
	"STRING": "string", "INTEGER": "int", "INT": "int", "LONG": "int", "BIGINT": "int", "SHORT": "int",
	"FLOAT": "float", "DOUBLE": "float", "DECIMAL": "float", "NUMBER": "float",
	"BOOLEAN": "bool", "DATE": "date", "TIMESTAMP": "timestamp",
}
