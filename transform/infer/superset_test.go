package infer

import (
	"fmt"
	"testing"

	"github.com/streamd/streamd"
)

func schemaOf(t *testing.T, cols ...string) *streamd.Schema {
	t.Helper()
	var fields []streamd.Field
	for _, c := range cols {
		var name, typ string
		if _, err := fmt.Sscanf(c, "%s %s", &name, &typ); err != nil {
			t.Fatal(err)
		}
		ty, err := streamd.ParseType(typ)
		if err != nil {
			t.Fatal(err)
		}
		fields = append(fields, streamd.Field{Name: name, Type: ty})
	}
	s, err := streamd.NewSchema(fields...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSuperset(t *testing.T) {
	tests := []struct {
		name      string
		schemas   [][]string
		want      string
		conflicts []string
	}{
		{"same", [][]string{{"a int64"}, {"a int64"}}, "a:int64", nil},
		{"new column appended, narrower schema first",
			[][]string{{"a int64", "b string", "c bool"}, {"a int64", "b string"}}, "a:int64,b:string,c:bool", nil},
		{"numeric widening", [][]string{{"q int32"}, {"q int64"}, {"q float64"}}, "q:float64", nil},
		{"decimals join", [][]string{{"p decimal(10,2)"}, {"p decimal(12,4)"}}, "p:decimal(12,4)", nil},
		{"decimal beyond 38 digits", [][]string{{"p decimal(38,0)"}, {"p decimal(10,9)"}}, "p:float64", nil},
		{"decimal and integer", [][]string{{"p decimal(10,2)"}, {"p int64"}}, "p:float64", nil},
		{"json and string", [][]string{{"o json"}, {"o string"}}, "o:string", nil},
		{"conflict becomes string", [][]string{{"q int64", "d date"}, {"q string", "d date"}, {"q bool", "d date"}}, "q:string,d:date",
			[]string{`column "q" has types int64, string, bool`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in []*streamd.Schema
			for _, s := range tt.schemas {
				in = append(in, schemaOf(t, s...))
			}
			got, conflicts := Superset(in)
			if got.Fingerprint() != tt.want {
				t.Errorf("superset %s, want %s", got.Fingerprint(), tt.want)
			}
			var cs []string
			for _, c := range conflicts {
				cs = append(cs, c.String())
			}
			if fmt.Sprint(cs) != fmt.Sprint(tt.conflicts) {
				t.Errorf("conflicts %v, want %v", cs, tt.conflicts)
			}
		})
	}
}

func TestSchemaYAML(t *testing.T) {
	got := SchemaYAML(schemaOf(t, "id string", "yes bool", "amount decimal(12,2)"))
	want := "schema:\n  - {name: id, type: string}\n  - {name: \"yes\", type: bool}\n  - {name: amount, type: \"decimal(12,2)\"}\n"
	if got != want {
		t.Errorf("SchemaYAML:\n%s\nwant:\n%s", got, want)
	}
}
