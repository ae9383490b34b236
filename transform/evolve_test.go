package transform

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/streamd/streamd"
)

// settleAll runs segments through Process and Settle the way the pipeline
// does: staleFirst decodes every segment before settling any (each worker
// saw the lane's schema as of the start), otherwise one at a time. It
// returns one batch in the final schema and the lane's schema.
func settleAll(t *testing.T, e *Evolver, lane string, recs []streamd.Record, cuts []int, staleFirst bool) *streamd.Batch {
	t.Helper()
	var segs [][]streamd.Record
	start := 0
	for _, c := range cuts {
		segs = append(segs, recs[start:c])
		start = c
	}
	segs = append(segs, recs[start:])
	var out *streamd.Batch
	add := func(b *streamd.Batch) {
		b, err := e.Settle(lane, b)
		if err != nil {
			t.Fatalf("Settle: %v", err)
		}
		if !b.Accounted() {
			t.Fatalf("settled batch not accounted: read %d rows %d dead %d", b.Read, b.Len(), len(b.Dead))
		}
		if out == nil {
			out = streamd.NewBatch(b.Schema, lane)
		}
		if out.Schema != b.Schema {
			if out, err = e.Widen(out, b.Schema); err != nil {
				t.Fatalf("Widen: %v", err)
			}
		}
		out.Append(b)
	}
	if staleFirst {
		var bs []*streamd.Batch
		for _, s := range segs {
			bs = append(bs, e.Process(lane, nil, s))
		}
		for _, b := range bs {
			add(b)
		}
	} else {
		for _, s := range segs {
			add(e.Process(lane, nil, s))
		}
	}
	return out
}

// render is a batch as text: schema, rows as JSON, dead letters.
func render(b *streamd.Batch) string {
	var sb strings.Builder
	sb.WriteString(b.Schema.Fingerprint())
	sb.WriteByte('\n')
	for i := range b.Len() {
		sb.Write(streamd.AppendRowJSON(nil, b, i))
		sb.WriteByte('\n')
	}
	for _, d := range b.Dead {
		fmt.Fprintf(&sb, "dead %s: %s\n", d.Pos, d.Error)
	}
	fmt.Fprintf(&sb, "read %d [%s, %s]\n", b.Read, b.From, b.To)
	return sb.String()
}

func newEvolver(t *testing.T, opts EvolveOptions) *Evolver {
	t.Helper()
	e, err := NewEvolver(opts)
	if err != nil {
		t.Fatalf("NewEvolver: %v", err)
	}
	return e
}

func records(lines ...string) []streamd.Record {
	recs := make([]streamd.Record, len(lines))
	for i, l := range lines {
		recs[i] = rec(int64(i), l)
	}
	return recs
}

func TestEvolverInfers(t *testing.T) {
	tests := []struct {
		name   string
		opts   EvolveOptions
		lines  []string
		schema string // fingerprint
		rows   []string
		dead   []string // substrings of the reasons, in order
	}{
		{
			name:   "types from the first value",
			lines:  []string{`{"id":"a","n":1,"x":1.5,"ok":true,"tags":["a"],"o":{"k":1},"nothing":null}`},
			schema: "id:string,n:int64,x:float64,ok:bool,tags:json,o:json",
			rows:   []string{`{"id":"a","n":1,"x":1.5,"ok":true,"tags":["a"],"o":{"k":1}}`},
		},
		{
			name:   "new field becomes a new column; earlier rows are null",
			lines:  []string{`{"id":"a"}`, `{"id":"b","region":"eu"}`, `{"id":"c"}`},
			schema: "id:string,region:string",
			rows:   []string{`{"id":"a","region":null}`, `{"id":"b","region":"eu"}`, `{"id":"c","region":null}`},
		},
		{
			name:   "int64 widens to float64",
			lines:  []string{`{"q":2}`, `{"q":2.5}`, `{"q":3}`},
			schema: "q:float64",
			rows:   []string{`{"q":2}`, `{"q":2.5}`, `{"q":3}`},
		},
		{
			name:   "a value that fits no type is dead-lettered and changes nothing",
			lines:  []string{`{"q":2}`, `{"q":"lots","new":1}`, `{"q":true}`, `{"q":4}`},
			schema: "q:int64",
			rows:   []string{`{"q":2}`, `{"q":4}`},
			dead:   []string{`column "q": cannot cast`, `column "q": cannot cast`},
		},
		{
			name:   "numbers and booleans in a string column keep their text",
			lines:  []string{`{"s":"x"}`, `{"s":12}`, `{"s":false}`},
			schema: "s:string",
			rows:   []string{`{"s":"x"}`, `{"s":"12"}`, `{"s":"false"}`},
		},
		{
			name:   "a key that cannot name a column",
			lines:  []string{`{"a":1}`, `{"a":2,"b.c":3}`, `{"a":3}`},
			schema: "a:int64",
			rows:   []string{`{"a":1}`, `{"a":3}`},
			dead:   []string{`field "b.c" cannot become a column: contains '.'`},
		},
		{
			name:   "column limit",
			opts:   EvolveOptions{MaxColumns: 2},
			lines:  []string{`{"a":1,"b":2}`, `{"a":1,"c":3}`, `{"b":5}`},
			schema: "a:int64,b:int64",
			rows:   []string{`{"a":1,"b":2}`, `{"a":null,"b":5}`},
			dead:   []string{`field "c" would add a column beyond the inferred schema's limit of 2 columns`},
		},
		{
			name:   "nothing to infer from yet",
			lines:  []string{`{}`, `{"a":null}`, `not json`, `{"a":1}`, `{}`},
			schema: "a:int64",
			rows:   []string{`{"a":1}`, `{"a":null}`},
			dead:   []string{"no non-null field", "no non-null field", "malformed JSON"},
		},
		{
			name:   "malformed records are dead-lettered with the scanner's reason",
			lines:  []string{`{"a":1}`, `{"a":`, `[1]`},
			schema: "a:int64",
			rows:   []string{`{"a":1}`},
			dead:   []string{"malformed JSON", "malformed JSON"},
		},
		{
			name:   "seed columns come first",
			opts:   EvolveOptions{Seed: []streamd.Field{{Name: "region", Type: streamd.Type{Kind: streamd.KindString}}}},
			lines:  []string{`{"id":1,"region":"eu"}`, `{"id":2,"region":7}`},
			schema: "region:string,id:int64",
			rows:   []string{`{"region":"eu","id":1}`, `{"region":"7","id":2}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEvolver(t, tt.opts)
			b := settleAll(t, e, "l", records(tt.lines...), nil, false)
			if got := b.Schema.Fingerprint(); got != tt.schema {
				t.Errorf("schema %s, want %s", got, tt.schema)
			}
			if got := e.LaneSchema("l").Fingerprint(); got != tt.schema {
				t.Errorf("lane schema %s, want %s", got, tt.schema)
			}
			var rows []string
			for i := range b.Len() {
				rows = append(rows, string(streamd.AppendRowJSON(nil, b, i)))
			}
			if strings.Join(rows, "\n") != strings.Join(tt.rows, "\n") {
				t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(tt.rows, "\n"))
			}
			if len(b.Dead) != len(tt.dead) {
				t.Fatalf("dead letters %+v, want %d", b.Dead, len(tt.dead))
			}
			for i, d := range b.Dead {
				if !strings.Contains(d.Error, tt.dead[i]) {
					t.Errorf("dead letter %d: %q, want it to contain %q", i, d.Error, tt.dead[i])
				}
			}
		})
	}
}

// evolvingStream generates records whose schema evolves: new fields now and
// then, an int field that turns fractional, values of the wrong type, null
// fields, malformed lines.
func evolvingStream(n int, seed uint64) []streamd.Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	recs := make([]streamd.Record, n)
	for i := range n {
		var sb strings.Builder
		fmt.Fprintf(&sb, `{"id":%d`, i)
		// field f<k> appears from record 100k on, in about half the records
		for k := 0; k*100 <= i && k < 12; k++ {
			if rng.IntN(2) == 0 {
				continue
			}
			switch k % 4 {
			case 0:
				fmt.Fprintf(&sb, `,"f%d":%d`, k, rng.IntN(1000))
			case 1:
				fmt.Fprintf(&sb, `,"f%d":"s%d"`, k, rng.IntN(50))
			case 2:
				fmt.Fprintf(&sb, `,"f%d":null`, k)
			case 3:
				fmt.Fprintf(&sb, `,"f%d":{"x":%d}`, k, rng.IntN(9))
			}
		}
		switch {
		case i > 700 && rng.IntN(10) == 0:
			sb.WriteString(`,"amount":12.25`) // widens amount
		case rng.IntN(3) == 0:
			fmt.Fprintf(&sb, `,"amount":%d`, rng.IntN(100))
		case rng.IntN(40) == 0:
			sb.WriteString(`,"amount":"n/a"`) // conflict once int64/float64
		}
		sb.WriteString("}")
		line := sb.String()
		if rng.IntN(150) == 0 {
			line = line[:len(line)/2] // malformed
		}
		recs[i] = rec(int64(i), line)
	}
	return recs
}

// TestEvolverDeterministic: the schema, rows and dead letters do not depend
// on how the records are cut into segments nor on decode workers racing
// ahead of the settled schema.
func TestEvolverDeterministic(t *testing.T) {
	recs := evolvingStream(1500, 1)
	want := render(settleAll(t, newEvolver(t, EvolveOptions{}), "l", recs, nil, false))
	if !strings.Contains(want, "amount:float64") || !strings.Contains(want, "f11:") {
		t.Fatalf("stream did not evolve as intended:\n%.300s", want)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := range 12 {
		var cuts []int
		for c := 1 + rng.IntN(40); c < len(recs); c += 1 + rng.IntN(200) {
			cuts = append(cuts, c)
		}
		stale := trial%2 == 0
		got := render(settleAll(t, newEvolver(t, EvolveOptions{}), "l", recs, cuts, stale))
		if got != want {
			t.Fatalf("trial %d (%d segments, stale %v): output differs from one segment:\n%s", trial, len(cuts)+1, stale, firstDiff(got, want))
		}
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n got  %s\n want %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(al), len(bl))
}

// TestEvolverRestore: a lane restored from a snapshot continues exactly as
// one that never stopped.
func TestEvolverRestore(t *testing.T) {
	recs := evolvingStream(1200, 3)
	whole := newEvolver(t, EvolveOptions{})
	settleAll(t, whole, "l", recs[:600], nil, false)
	wantTail := render(settleAll(t, whole, "l", recs[600:], []int{50, 300}, false))

	first := newEvolver(t, EvolveOptions{})
	settleAll(t, first, "l", recs[:600], []int{10, 90, 400}, true)
	st, err := first.Snapshot("l")
	if err != nil {
		t.Fatal(err)
	}
	second := newEvolver(t, EvolveOptions{})
	if err := second.Restore("l", st); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := render(settleAll(t, second, "l", recs[600:], nil, true)); got != wantTail {
		t.Fatalf("restored lane differs:\n%s", firstDiff(got, wantTail))
	}
	// Other lanes are independent and start from the seed.
	if got := second.LaneSchema("other").Fingerprint(); got != "" {
		t.Errorf("other lane schema %q, want empty", got)
	}
	second.Forget("l")
	if got := second.LaneSchema("l").Fingerprint(); got != "" {
		t.Errorf("forgotten lane schema %q, want empty", got)
	}
}

func TestEvolverRestoreAddsNewSeedColumns(t *testing.T) {
	first := newEvolver(t, EvolveOptions{})
	settleAll(t, first, "l", records(`{"id":1,"region":"eu"}`), nil, false)
	st, err := first.Snapshot("l")
	if err != nil {
		t.Fatal(err)
	}
	str := streamd.Type{Kind: streamd.KindString}
	second := newEvolver(t, EvolveOptions{Seed: []streamd.Field{{Name: "region", Type: str}, {Name: "day", Type: str}}})
	if err := second.Restore("l", st); err != nil {
		t.Fatal(err)
	}
	if got := second.LaneSchema("l").Fingerprint(); got != "id:int64,region:string,day:string" {
		t.Fatalf("restored schema %s", got)
	}
}

func TestEvolverRestoreRejectsBadState(t *testing.T) {
	e := newEvolver(t, EvolveOptions{})
	for _, st := range []string{`{`, `{"v":2,"columns":[]}`, `{"v":1,"columns":[["a","nope"]]}`, `{"v":1,"columns":[["a","int64"],["a","string"]]}`} {
		if err := e.Restore("l", []byte(st)); !errors.Is(err, ErrEvolveState) {
			t.Errorf("Restore(%s) = %v, want ErrEvolveState", st, err)
		}
	}
}

func TestEvolverWidenRejectsNarrowing(t *testing.T) {
	e := newEvolver(t, EvolveOptions{})
	b := settleAll(t, e, "l", records(`{"a":1.5,"b":"x"}`), nil, false)
	for _, fields := range [][]streamd.Field{
		{{Name: "a", Type: streamd.Type{Kind: streamd.KindInt64}}, {Name: "b", Type: streamd.Type{Kind: streamd.KindString}}},
		{{Name: "a", Type: streamd.Type{Kind: streamd.KindFloat64}}},
	} {
		if _, err := e.Widen(b, &streamd.Schema{Fields: fields}); !errors.Is(err, ErrEvolveState) {
			t.Errorf("Widen to %v = %v, want ErrEvolveState", fields, err)
		}
	}
}

func TestNewEvolverRejectsBadSeed(t *testing.T) {
	for _, opts := range []EvolveOptions{
		{Seed: []streamd.Field{{Name: "a.b", Type: streamd.Type{Kind: streamd.KindString}}}},
		{Seed: []streamd.Field{{Name: "a", Type: streamd.Type{Kind: streamd.KindString}}, {Name: "b", Type: streamd.Type{Kind: streamd.KindString}}}, MaxColumns: 1},
	} {
		if _, err := NewEvolver(opts); !errors.Is(err, ErrSpec) {
			t.Errorf("NewEvolver(%+v) = %v, want ErrSpec", opts, err)
		}
	}
}
