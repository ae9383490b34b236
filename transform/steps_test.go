package transform

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd"
)

func stepSpec(t *testing.T, steps ...Step) Spec {
	return Spec{Format: "jsonl", Steps: steps, Columns: []ColumnSpec{
		{Name: "id", Type: mustType(t, "string")},
		{Name: "name", Type: mustType(t, "string")},
		{Name: "qty", Type: mustType(t, "int32")},
		{Name: "price", Type: mustType(t, "decimal(10,2)")},
		{Name: "when", Type: mustType(t, "string")},
	}}
}

func TestStatelessSteps(t *testing.T) {
	lines := []string{
		`{"id":"a","name":"  Ünïcode Mixed ","qty":1,"price":"1.50","when":"14/03/2026 10:11"}`,
		`{"id":"b","name":"","qty":null,"price":null,"when":"bad"}`,
		`{"id":"c","name":"x-123-y","qty":5,"price":"2","when":null}`,
	}
	tests := []struct {
		name  string
		steps []Step
		rows  []string
		dead  []string
	}{
		{"trim lower", []Step{{Trim: []string{"name"}}, {Lower: []string{"name"}}, {Select: []string{"id", "name"}}},
			[]string{`{"id":"a","name":"ünïcode mixed"}`, `{"id":"b","name":""}`, `{"id":"c","name":"x-123-y"}`}, nil},
		{"upper null_if_empty", []Step{{Upper: []string{"name"}}, {NullIfEmpty: []string{"name"}}, {Select: []string{"name"}}},
			[]string{`{"name":"  ÜNÏCODE MIXED "}`, `{"name":null}`, `{"name":"X-123-Y"}`}, nil},
		{"default", []Step{{Default: map[string]string{"qty": "0", "price": "9.99", "name": "n/a"}}, {NullIfEmpty: []string{"name"}}, {Default: map[string]string{"name": "none"}}, {Drop: []string{"when", "id"}}},
			[]string{`{"name":"  Ünïcode Mixed ","qty":1,"price":1.50}`, `{"name":"none","qty":0,"price":9.99}`, `{"name":"x-123-y","qty":5,"price":2.00}`}, nil},
		{"replace rename", []Step{{Replace: &ReplaceSpec{Column: "name", Pattern: `-(\d+)-`, With: "[$1]"}}, {Rename: map[string]string{"name": "label"}}, {Select: []string{"label"}}},
			[]string{`{"label":"  Ünïcode Mixed "}`, `{"label":""}`, `{"label":"x[123]y"}`}, nil},
		{"parse_time", []Step{{ParseTime: &ParseTimeSpec{Column: "when", Formats: []string{"%d/%m/%Y %H:%M"}, Timezone: "Europe/Berlin"}}, {Select: []string{"id", "when"}}},
			[]string{`{"id":"a","when":"2026-03-14T09:11:00.000000Z"}`, `{"id":"c","when":null}`},
			[]string{`column "when": cannot parse time "bad" with formats [%d/%m/%Y %H:%M]`}},
		{"filter between steps", []Step{{Default: map[string]string{"qty": "0"}}, {Filter: "qty > 0"}, {Select: []string{"id"}}},
			[]string{`{"id":"a"}`, `{"id":"c"}`}, nil},
		{"bounds outliers clip", []Step{{Outliers: &OutlierSpec{Column: "price", Method: "bounds", Max: ptr(1.75), Action: "clip"}}, {Select: []string{"price"}}},
			[]string{`{"price":1.50}`, `{"price":null}`, `{"price":1.75}`}, nil},
		{"stateless quality flag", []Step{{Quality: &QualitySpec{Rules: []string{`ColumnLength "name" between 1 and 10`, `ColumnDataType "when" = "DATE"`}, Action: "flag"}}, {Select: []string{"id", FlagColumn}}},
			[]string{`{"id":"a","dq_failed_rules":"0: ColumnLength \"name\" between 1 and 10; 1: ColumnDataType \"when\" = \"DATE\""}`,
				`{"id":"b","dq_failed_rules":"0: ColumnLength \"name\" between 1 and 10; 1: ColumnDataType \"when\" = \"DATE\""}`,
				`{"id":"c","dq_failed_rules":null}`}, nil},
		{"quality dead letter", []Step{{Quality: &QualitySpec{Rules: []string{`ColumnValues "price" > 1.5`, `CustomExpression "qty * 2 < 100"`}}}, {Select: []string{"id"}}},
			[]string{`{"id":"c"}`},
			[]string{`quality: failed rules [0: ColumnValues "price" > 1.5]`, `quality: failed rules [0: ColumnValues "price" > 1.5; 1: CustomExpression "qty * 2 < 100"]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := process(t, stepSpec(t, tt.steps...), "", lines...)
			if got := rows(b); fmt.Sprint(got) != fmt.Sprint(tt.rows) {
				t.Errorf("rows\n got %v\nwant %v", got, tt.rows)
			}
			if got := deadReasons(b); fmt.Sprint(got) != fmt.Sprint(tt.dead) {
				t.Errorf("dead\n got %q\nwant %q", got, tt.dead)
			}
			for _, d := range b.Dead {
				if !strings.HasPrefix(string(d.Raw), `{"id":`) {
					t.Errorf("dead raw %q is not the input record", d.Raw)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestStepCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		step Step
		want string
	}{
		{"two kinds", Step{Trim: []string{"name"}, Lower: []string{"name"}}, "exactly one kind (got trim, lower)"},
		{"none", Step{}, "exactly one kind (got none)"},
		{"unknown column", Step{Trim: []string{"nope"}}, `no column "nope"`},
		{"trim number", Step{Trim: []string{"qty"}}, `column "qty" is int32`},
		{"bad default", Step{Default: map[string]string{"qty": "many"}}, `default for column "qty": cannot cast "many" to int32`},
		{"bad regexp", Step{Replace: &ReplaceSpec{Column: "name", Pattern: "("}}, "pattern"},
		{"bad zone", Step{ParseTime: &ParseTimeSpec{Column: "when", Formats: []string{"%Y"}, Timezone: "Mars/Olympus"}}, "timezone"},
		{"bad strftime", Step{ParseTime: &ParseTimeSpec{Column: "when", Formats: []string{"%Q"}}}, "unknown directive %Q"},
		{"stateful in Process", Step{Dedup: &DedupSpec{Keys: []string{"id"}}}, "stateful and runs in a Chain"},
		{"outlier bounds without limits", Step{Outliers: &OutlierSpec{Column: "qty", Method: "bounds"}}, "bounds needs min or max"},
		{"outlier on string", Step{Outliers: &OutlierSpec{Column: "name", Method: "bounds", Max: ptr(1.0)}}, `column "name" is string`},
		{"quality action", Step{Quality: &QualitySpec{Rules: []string{`IsComplete "id"`}, Action: "explode"}}, `action "explode"`},
		{"quality rule column", Step{Quality: &QualitySpec{Rules: []string{`IsComplete "nope"`}}}, `no column "nope"`},
		{"quality literal type", Step{Quality: &QualitySpec{Rules: []string{`ColumnValues "qty" > "x"`}}}, "wants a number"},
		{"drop all", Step{Drop: []string{"id", "name", "qty", "price", "when"}}, "every column"},
		{"rename clash", Step{Rename: map[string]string{"id": "name"}}, "duplicate column"},
	}
	for _, tt := range tests {
		_, err := Compile(stepSpec(t, tt.step))
		if err == nil || !errors.Is(err, ErrSpec) && !errors.Is(err, ErrRule) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Compile = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	prog, err := Compile(stepSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewChain(prog.Schema(), []Step{{Outliers: &OutlierSpec{Column: "qty", Method: "mad"}}}, ChainOptions{}); err == nil || !strings.Contains(err.Error(), `method "mad"`) {
		t.Errorf("NewChain(method mad) = %v", err)
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := []struct {
		rule string
		want string
	}{
		{`IsComplete customer_id`, `at byte 11: IsComplete wants a quoted column name, got "customer_id"`},
		{`IsComplete "a`, "at byte 11: unterminated string"},
		{`ColumnValues "q" >`, "at byte 18: want a number or a quoted value, got end of rule"},
		{`ColumnValues "q" between 1 or 2`, `between wants "and", got "or"`},
		{`ColumnValues "q" in [1, 2`, "want , or ], got end of rule"},
		{`ColumnValues "q" like "x"`, "want =, !=, >, >=, <, <=, between, in or matches"},
		{`ColumnLength "q" matches "x"`, "want =, !=, >, >=, <, <=, between or in"},
		{`RowCount > 10`, "RowCount counts the rows of a whole dataset, so it cannot apply per record"},
		{`Completeness "a" > 0.9`, "use IsComplete per row"},
		{`CustomSql "select 1"`, "use CustomExpression per row"},
		{`ColumnValues "q" > 0 with threshold > 0.9`, "thresholds"},
		{`(IsComplete "a"`, `want ")"`},
		{`IsComplete "a" IsComplete "b"`, `unexpected "IsComplete" after the rule`},
		{`Frobnicate "a"`, `unknown rule "Frobnicate"`},
		{`ColumnDataType "a" = "BLOB"`, `unknown type "BLOB"`},
		{`ColumnValues "q" ! 3`, "did you mean !="},
	}
	for _, tt := range tests {
		_, err := parseRule(tt.rule)
		if err == nil || !errors.Is(err, ErrRule) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.rule)) {
			t.Errorf("parseRule(%s) = %v, want an error quoting the rule and containing %q", tt.rule, err, tt.want)
		}
	}
}

func TestQualityRuleSemantics(t *testing.T) {
	spec := Spec{Format: "jsonl", Columns: []ColumnSpec{
		{Name: "s", Type: mustType(t, "string")},
		{Name: "n", Type: mustType(t, "int64")},
		{Name: "d", Type: mustType(t, "decimal(6,2)")},
		{Name: "f", Type: mustType(t, "float64")},
		{Name: "dt", Type: mustType(t, "date")},
		{Name: "b", Type: mustType(t, "bool")},
	}}
	line := `{"s":"EU-1","n":5,"d":"2.50","f":0.5,"dt":"2026-03-14","b":true}`
	nulls := `{}`
	tests := []struct {
		rule             string
		passRow, passNul bool
	}{
		{`IsComplete "s"`, true, false},
		{`ColumnValues "s" = "EU-1"`, true, false},
		{`ColumnValues "s" matches "[A-Z]{2}-\\d"`, true, false},
		{`ColumnValues "s" matches "EU"`, false, false}, // whole-value match
		{`ColumnValues "s" not in ["EU-1", "US-1"]`, false, false},
		{`ColumnValues "n" between 5 and 5`, true, false},
		{`ColumnValues "n" > 4.99`, true, false},
		{`ColumnValues "n" < 5.01`, true, false},
		{`ColumnValues "n" = 5.5`, false, false},
		{`ColumnValues "d" = 2.5`, true, false},
		{`ColumnValues "d" > 2.499`, true, false},
		{`ColumnValues "d" >= 2.501`, false, false},
		{`ColumnValues "d" in [1, 2.50, 3]`, true, false},
		{`ColumnValues "f" <= 0.5`, true, false},
		{`ColumnValues "dt" >= "2026-01-01"`, true, false},
		{`ColumnValues "b" = true`, true, false},
		{`ColumnLength "s" = 4`, true, false},
		{`ColumnLength "s" not between 1 and 3`, true, false},
		{`ColumnDataType "s" = "STRING"`, true, true},
		{`ColumnDataType "s" = "INTEGER"`, false, true},
		{`ColumnDataType "n" = "LONG"`, true, true},
		{`CustomExpression "n * 2 == 10 and s != 'x'"`, true, false},
		{`(IsComplete "s") or (ColumnDataType "n" = "INTEGER")`, true, true},
		{`(IsComplete "s") and (ColumnValues "n" > 100)`, false, false},
		{`IsComplete "s" and ColumnValues "n" > 1 or IsComplete "b"`, true, false},
	}
	for _, tt := range tests {
		spec.Steps = []Step{{Quality: &QualitySpec{Rules: []string{tt.rule}, Action: "drop"}}}
		b := process(t, spec, "", line, nulls)
		gotRow := b.Len() > 0 && b.Pos[0].Offset == 0
		gotNul := b.Len() > 0 && b.Pos[b.Len()-1].Offset == 1
		if gotRow != tt.passRow || gotNul != tt.passNul {
			t.Errorf("%s: row passes %v, null row passes %v; want %v, %v", tt.rule, gotRow, gotNul, tt.passRow, tt.passNul)
		}
		if b.Filtered != 2-b.Len() {
			t.Errorf("%s: filtered %d of %d", tt.rule, b.Filtered, 2-b.Len())
		}
	}
}

func TestDedupTTLAndBound(t *testing.T) {
	spec := Spec{Format: "jsonl", Columns: []ColumnSpec{
		{Name: "k", Type: mustType(t, "string")},
		{Name: "event_time", Type: mustType(t, "timestamp")},
	}}
	prog, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		d     DedupSpec
		lines []string
		kept  []string
	}{
		{"within ttl", DedupSpec{Keys: []string{"k"}, TTL: time.Hour},
			[]string{`{"k":"a","event_time":"2026-01-01T00:00:00Z"}`, `{"k":"a","event_time":"2026-01-01T00:59:00Z"}`},
			[]string{"a@0"}},
		{"expired", DedupSpec{Keys: []string{"k"}, TTL: time.Hour},
			[]string{`{"k":"a","event_time":"2026-01-01T00:00:00Z"}`, `{"k":"b","event_time":"2026-01-01T01:00:01Z"}`, `{"k":"a","event_time":"2026-01-01T01:00:02Z"}`},
			[]string{"a@0", "b@1", "a@2"}},
		{"no event time", DedupSpec{Keys: []string{"k"}},
			[]string{`{"k":"a"}`, `{"k":"a"}`, `{"k":null}`, `{"k":null}`},
			[]string{"a@0", "null@2"}},
		{"out-of-order redelivery", DedupSpec{Keys: []string{"k"}, TTL: time.Hour},
			// a arrives with an event time far behind the watermark: it is
			// remembered from the watermark on, so its re-delivery is a dup
			// until the watermark moves past the TTL.
			[]string{`{"k":"b","event_time":"2026-01-20T00:00:00Z"}`, `{"k":"a","event_time":"2026-01-01T00:00:00Z"}`, `{"k":"a","event_time":"2026-01-01T00:00:00Z"}`,
				`{"k":"c","event_time":"2026-01-20T01:00:01Z"}`, `{"k":"a","event_time":"2026-01-01T00:00:00Z"}`},
			[]string{"b@0", "a@1", "c@3", "a@4"}},
		{"max keys evicts oldest", DedupSpec{Keys: []string{"k"}, MaxKeys: 2},
			[]string{`{"k":"a"}`, `{"k":"b"}`, `{"k":"c"}`, `{"k":"b"}`, `{"k":"a"}`},
			[]string{"a@0", "b@1", "c@2", "a@4"}},
	}
	for _, tt := range tests {
		chain, err := NewChain(prog.Schema(), []Step{{Dedup: &tt.d}}, ChainOptions{})
		if err != nil {
			t.Fatal(err)
		}
		recs := toRecords(tt.lines)
		for i := range recs {
			recs[i].Pos.Offset = int64(i)
		}
		var kept []string
		dups := 0
		for _, r := range recs { // one record per batch: state carries across
			b := prog.Process("l", nil, []streamd.Record{r})
			if err := chain.Apply("l", b); err != nil {
				t.Fatal(err)
			}
			dups += b.Deduplicated
			for j := 0; j < b.Len(); j++ {
				k := "null"
				if b.Cols[0].Valid[j] {
					k = string(b.Cols[0].Bytes.At(j))
				}
				kept = append(kept, fmt.Sprintf("%s@%d", k, b.Pos[j].Offset))
			}
		}
		if fmt.Sprint(kept) != fmt.Sprint(tt.kept) || dups != len(tt.lines)-len(tt.kept) {
			t.Errorf("%s: kept %v (%d dups), want %v", tt.name, kept, dups, tt.kept)
		}
	}
}

func TestChainRejectsForeignSchema(t *testing.T) {
	prog, err := Compile(messySpec(t))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := NewChain(prog.Schema(), []Step{{Dedup: &DedupSpec{Keys: []string{"transaction_id"}}}}, ChainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := streamd.NewSchema(streamd.Field{Name: "x", Type: streamd.Type{Kind: streamd.KindString}})
	if err := chain.Apply("l", streamd.NewBatch(other, "l")); err == nil {
		t.Error("Apply accepted a batch of another schema")
	}
}

// TestStepsConcurrentProcess runs stateless steps from many goroutines on
// one Program (run with -race) and checks each result.
func TestStepsConcurrentProcess(t *testing.T) {
	lines, _, _, _ := messyStream(800, 3)
	recs := toRecords(lines)
	steps, _ := SplitSteps(messySteps())
	steps = append(steps, Step{Quality: &QualitySpec{Rules: []string{`ColumnValues "quantity" <= 1000`}, Action: "drop"}})
	spec := messySpec(t)
	spec.Steps = steps
	prog, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := decisions([]*streamd.Batch{prog.Process("l", nil, recs)})
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		go func() {
			got := decisions([]*streamd.Batch{prog.Process("l", nil, recs)})
			if fmt.Sprint(got) != fmt.Sprint(want) {
				errs <- "concurrent Process differs"
				return
			}
			errs <- ""
		}()
	}
	for g := 0; g < 4; g++ {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
