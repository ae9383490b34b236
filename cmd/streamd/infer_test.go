package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// ddlTable is what the grammar check extracts from a CREATE EXTERNAL TABLE.
type ddlTable struct {
	name, location string
	cols, parts    [][2]string // name, type
	props          map[string]string
}

// ddlParser is a recursive-descent parser for the Athena subset streamd
// infer prints:
//
//	stmt    := CREATE EXTERNAL TABLE [IF NOT EXISTS] ident '(' cols ')'
//	           [PARTITIONED BY '(' cols ')'] STORED AS PARQUET
//	           [LOCATION string] [TBLPROPERTIES '(' props ')'] [';']
//	cols    := col {',' col}
//	col     := ident type
//	type    := BOOLEAN | INT | BIGINT | DOUBLE | STRING | DATE | TIMESTAMP
//	           | BINARY | DECIMAL '(' int ',' int ')'
//	props   := string '=' string {',' string '=' string}
//	ident   := '`' name '`' | name
type ddlParser struct {
	s   string
	pos int
}

func (p *ddlParser) fail(format string, args ...any) error {
	return fmt.Errorf("at byte %d (%.20q): %s", p.pos, p.s[p.pos:], fmt.Sprintf(format, args...))
}

func (p *ddlParser) ws() {
	for p.pos < len(p.s) {
		if strings.HasPrefix(p.s[p.pos:], "--") {
			for p.pos < len(p.s) && p.s[p.pos] != '\n' {
				p.pos++
			}
			continue
		}
		if !unicode.IsSpace(rune(p.s[p.pos])) {
			return
		}
		p.pos++
	}
}

func (p *ddlParser) word() string {
	p.ws()
	start := p.pos
	for p.pos < len(p.s) && (p.s[p.pos] == '_' || unicode.IsLetter(rune(p.s[p.pos])) || unicode.IsDigit(rune(p.s[p.pos]))) {
		p.pos++
	}
	return p.s[start:p.pos]
}

func (p *ddlParser) keyword(kw string) error {
	save := p.pos
	if w := p.word(); !strings.EqualFold(w, kw) {
		p.pos = save
		return p.fail("want %s, got %q", kw, w)
	}
	return nil
}

func (p *ddlParser) tryKeyword(kw string) bool {
	save := p.pos
	if strings.EqualFold(p.word(), kw) {
		return true
	}
	p.pos = save
	return false
}

func (p *ddlParser) punct(c byte) error {
	p.ws()
	if p.pos >= len(p.s) || p.s[p.pos] != c {
		return p.fail("want %q", c)
	}
	p.pos++
	return nil
}

func (p *ddlParser) tryPunct(c byte) bool {
	p.ws()
	if p.pos < len(p.s) && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *ddlParser) ident() (string, error) {
	if p.tryPunct('`') {
		end := strings.IndexByte(p.s[p.pos:], '`')
		if end <= 0 {
			return "", p.fail("unterminated or empty quoted identifier")
		}
		name := p.s[p.pos : p.pos+end]
		p.pos += end + 1
		return name, nil
	}
	w := p.word()
	if w == "" {
		return "", p.fail("want an identifier")
	}
	return w, nil
}

func (p *ddlParser) str() (string, error) {
	if err := p.punct('\''); err != nil {
		return "", err
	}
	var sb strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		if c == '\'' {
			if p.pos < len(p.s) && p.s[p.pos] == '\'' {
				sb.WriteByte('\'')
				p.pos++
				continue
			}
			return sb.String(), nil
		}
		sb.WriteByte(c)
	}
	return "", p.fail("unterminated string")
}

func (p *ddlParser) typ() (string, error) {
	w := strings.ToUpper(p.word())
	switch w {
	case "BOOLEAN", "INT", "BIGINT", "DOUBLE", "STRING", "DATE", "TIMESTAMP", "BINARY":
		return w, nil
	case "DECIMAL":
		if err := p.punct('('); err != nil {
			return "", err
		}
		prec := p.word()
		if err := p.punct(','); err != nil {
			return "", err
		}
		scale := p.word()
		if err := p.punct(')'); err != nil {
			return "", err
		}
		var pi, si int
		if _, err := fmt.Sscanf(prec+" "+scale, "%d %d", &pi, &si); err != nil || pi < 1 || pi > 38 || si < 0 || si > pi {
			return "", p.fail("bad DECIMAL(%s,%s)", prec, scale)
		}
		return fmt.Sprintf("DECIMAL(%d,%d)", pi, si), nil
	}
	return "", p.fail("unknown type %q", w)
}

func (p *ddlParser) cols() ([][2]string, error) {
	if err := p.punct('('); err != nil {
		return nil, err
	}
	var out [][2]string
	for {
		name, err := p.ident()
		if err != nil {
			return nil, err
		}
		t, err := p.typ()
		if err != nil {
			return nil, err
		}
		out = append(out, [2]string{name, t})
		if p.tryPunct(')') {
			return out, nil
		}
		if err := p.punct(','); err != nil {
			return nil, err
		}
	}
}

func parseDDL(s string) (*ddlTable, error) {
	p := &ddlParser{s: s}
	t := &ddlTable{props: map[string]string{}}
	for _, kw := range []string{"CREATE", "EXTERNAL", "TABLE"} {
		if err := p.keyword(kw); err != nil {
			return nil, err
		}
	}
	if p.tryKeyword("IF") {
		if err := p.keyword("NOT"); err != nil {
			return nil, err
		}
		if err := p.keyword("EXISTS"); err != nil {
			return nil, err
		}
	}
	var err error
	if t.name, err = p.ident(); err != nil {
		return nil, err
	}
	if t.cols, err = p.cols(); err != nil {
		return nil, err
	}
	if p.tryKeyword("PARTITIONED") {
		if err := p.keyword("BY"); err != nil {
			return nil, err
		}
		if t.parts, err = p.cols(); err != nil {
			return nil, err
		}
	}
	for _, kw := range []string{"STORED", "AS", "PARQUET"} {
		if err := p.keyword(kw); err != nil {
			return nil, err
		}
	}
	if p.tryKeyword("LOCATION") {
		if t.location, err = p.str(); err != nil {
			return nil, err
		}
	}
	if p.tryKeyword("TBLPROPERTIES") {
		if err := p.punct('('); err != nil {
			return nil, err
		}
		for {
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			if err := p.punct('='); err != nil {
				return nil, err
			}
			v, err := p.str()
			if err != nil {
				return nil, err
			}
			t.props[k] = v
			if p.tryPunct(')') {
				break
			}
			if err := p.punct(','); err != nil {
				return nil, err
			}
		}
	}
	p.tryPunct(';')
	p.ws()
	if p.pos != len(p.s) {
		return nil, p.fail("trailing text")
	}
	seen := map[string]bool{}
	for _, c := range append(append([][2]string{}, t.cols...), t.parts...) {
		if seen[strings.ToLower(c[0])] {
			return nil, fmt.Errorf("column %q twice", c[0])
		}
		seen[strings.ToLower(c[0])] = true
	}
	return t, nil
}

func TestDDLGrammarRejects(t *testing.T) {
	for _, bad := range []string{
		"CREATE TABLE `t` (`a` INT) STORED AS PARQUET",
		"CREATE EXTERNAL TABLE `t` () STORED AS PARQUET",
		"CREATE EXTERNAL TABLE `t` (`a` INTEGRAL) STORED AS PARQUET",
		"CREATE EXTERNAL TABLE `t` (`a` DECIMAL(40,2)) STORED AS PARQUET",
		"CREATE EXTERNAL TABLE `t` (`a` INT, `a` INT) STORED AS PARQUET",
		"CREATE EXTERNAL TABLE `t` (`a` INT) STORED AS PARQUET LOCATION 's3://x",
		"CREATE EXTERNAL TABLE `t` (`a` INT) STORED AS ORC",
		"CREATE EXTERNAL TABLE `t` (`a` INT) STORED AS PARQUET; DROP TABLE t",
	} {
		if _, err := parseDDL(bad); err == nil {
			t.Errorf("grammar accepted %q", bad)
		}
	}
}

const salesCSV = `transaction_id,customer_id,product_id,quantity,unit_price,transaction_date,region
T0001,C001,P01,3,19.99,2026-03-14,EU-WEST
T0002,C002,P02,1,5.50,2026-03-14,US-EAST
T0003,,P03,"2",100,2026-03-15,EU-WEST
T0004,C004,P01,70000,0.99,2026-03-15,AP-SOUTH
`

func writeInferConfig(t *testing.T, dir, format, paths, partition string) string {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir: %s/state
pipelines:
  - name: sales-csv
    source: {type: file, paths: [%q], format: %s}
    sink: {type: parquet, path: s3://lake/sales, partition_by: [%s], compression: zstd}
`, dir, paths, format, partition)
	p := filepath.Join(dir, "streamd.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInferSalesCSV(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.csv"), []byte(salesCSV), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeInferConfig(t, dir, "csv", filepath.Join(dir, "*.csv"), "region")
	var out, errb bytes.Buffer
	if code := runInfer([]string{"--config", cfg, "--sample", "100"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	text := out.String()
	for _, want := range []string{
		"  - {name: transaction_id, type: string}\n",
		"  - {name: customer_id, type: string}\n",
		"  - {name: quantity, type: int32}\n",
		"  - {name: unit_price, type: \"decimal(5,2)\"}\n",
		"  - {name: transaction_date, type: date}\n",
		"  - {name: region, type: string}\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	i := strings.Index(text, "CREATE EXTERNAL TABLE")
	if i < 0 {
		t.Fatalf("no DDL in:\n%s", text)
	}
	tab, err := parseDDL(text[i:])
	if err != nil {
		t.Fatalf("DDL rejected: %v\n%s", err, text[i:])
	}
	if tab.name != "sales_csv" || tab.location != "s3://lake/sales/" || tab.props["parquet.compression"] != "ZSTD" {
		t.Errorf("table %q at %q props %v", tab.name, tab.location, tab.props)
	}
	if len(tab.parts) != 1 || tab.parts[0] != [2]string{"region", "STRING"} {
		t.Errorf("partitions %v, want region STRING", tab.parts)
	}
	wantCols := [][2]string{{"transaction_id", "STRING"}, {"customer_id", "STRING"}, {"product_id", "STRING"},
		{"quantity", "INT"}, {"unit_price", "DECIMAL(5,2)"}, {"transaction_date", "DATE"}}
	if fmt.Sprint(tab.cols) != fmt.Sprint(wantCols) {
		t.Errorf("columns %v, want %v", tab.cols, wantCols)
	}
}

func TestInferNestedJSONFlatten(t *testing.T) {
	dir := t.TempDir()
	lines := `{"id":1,"customer":{"id":"C1","Tier Level":2},"tags":["a"],"at":"2026-03-14T10:00:00Z","amount":1.5}
{"id":3000000000,"customer":{"id":"C2","Tier Level":"gold"},"tags":[],"at":"2026-03-14","amount":2}
{not json
`
	if err := os.WriteFile(filepath.Join(dir, "a.jsonl"), []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeInferConfig(t, dir, "jsonl", filepath.Join(dir, "*.jsonl"), "")
	tests := []struct {
		nested string
		want   []string
	}{
		{"json", []string{"{name: id, type: int64}", "{name: customer, type: json}", "{name: tags, type: json}",
			"{name: at, type: timestamp}", `{name: amount, type: "decimal(2,1)"}`, "2 records... "}},
		{"flatten", []string{"{name: customer_id, type: string, from: customer.id}",
			`{name: customer_tier_level, type: string, from: "customer.Tier Level"}`}},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		if code := runInfer([]string{"--config", cfg, "--nested", tt.nested, "--pipeline", "sales-csv"}, &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", tt.nested, code, errb.String())
		}
		for _, w := range tt.want {
			if w == "2 records... " {
				if !strings.Contains(out.String(), "from 3 records (1 malformed skipped)") {
					t.Errorf("%s: no sample count in:\n%s", tt.nested, out.String())
				}
				continue
			}
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: output lacks %q:\n%s", tt.nested, w, out.String())
			}
		}
		i := strings.Index(out.String(), "CREATE")
		if _, err := parseDDL(out.String()[i:]); err != nil {
			t.Errorf("%s: DDL rejected: %v", tt.nested, err)
		}
	}
}

func TestInferFailures(t *testing.T) {
	dir := t.TempDir()
	cfg := writeInferConfig(t, dir, "csv", filepath.Join(dir, "none-*.csv"), "region")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no config flag", nil, 2, "--config is required"},
		{"bad sample", []string{"--config", cfg, "--sample", "0"}, 2, "--sample must be positive"},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, 2, "invalid config"},
		{"unknown pipeline", []string{"--config", cfg, "--pipeline", "other"}, 2, `no pipeline "other"`},
		{"no files", []string{"--config", cfg}, 1, "no files match"},
		{"struct", []string{"--config", cfg, "--nested", "struct"}, 1, ""},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := runInfer(tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("%s: exit %d stderr %q, want exit %d containing %q", tt.name, code, errb.String(), tt.code, tt.want)
		}
	}
}
