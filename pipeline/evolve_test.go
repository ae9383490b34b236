package pipeline_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/pipeline"
	"github.com/streamd/streamd/transform"
	"github.com/streamd/streamd/window"
)

// jsonSink keeps each written row as JSON without its null columns, per
// lane in write order, and the schema of each write.
type jsonSink struct {
	mu      sync.Mutex
	rows    map[string][]string
	schemas map[string][]string
}

func (s *jsonSink) Write(_ context.Context, in streamd.Intent, b *streamd.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rows == nil {
		s.rows, s.schemas = map[string][]string{}, map[string][]string{}
	}
	for i := range b.Len() {
		s.rows[in.Lane] = append(s.rows[in.Lane], compactRow(streamd.AppendRowJSON(nil, b, i)))
	}
	s.schemas[in.Lane] = append(s.schemas[in.Lane], b.Schema.Fingerprint())
	return nil
}

func (s *jsonSink) Close(context.Context) error { return nil }

// compactRow drops the null members of a JSON row and renders it with
// sorted keys.
func compactRow(row []byte) string {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(row))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return "undecodable: " + string(row)
	}
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
	out, _ := json.Marshal(m)
	return string(out)
}

// evolvingLines: fields appear over time, amount turns fractional, a few
// values fit no type.
func evolvingLines(n int) []string {
	out := make([]string, n)
	for i := range out {
		line := fmt.Sprintf(`{"id":%d`, i)
		if i >= 40 && i%3 == 0 {
			line += fmt.Sprintf(`,"coupon":"c%d"`, i)
		}
		switch {
		case i%97 == 5:
			line += `,"amount":"n/a"`
		case i > 300 && i%11 == 0:
			line += fmt.Sprintf(`,"amount":%d.5`, i)
		default:
			line += `,"amount":` + strconv.Itoa(i%13)
		}
		if i >= 200 && i%5 == 0 {
			line += `,"tags":["x"]`
		}
		out[i] = line + "}"
	}
	return out
}

// reference decodes a whole lane in one segment.
func reference(t *testing.T, lines []string) (rows []string, dead int, schema string) {
	t.Helper()
	ev, err := transform.NewEvolver(transform.EvolveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]streamd.Record, len(lines))
	for i, l := range lines {
		recs[i] = streamd.Record{Data: []byte(l), Pos: streamd.Position{Offset: int64(i)}}
	}
	b, err := ev.Settle("x", ev.Process("x", nil, recs))
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Len() {
		rows = append(rows, compactRow(streamd.AppendRowJSON(nil, b, i)))
	}
	return rows, len(b.Dead), b.Schema.Fingerprint()
}

// TestEvolverInPipeline: with many decode workers racing on small
// segments, every lane's rows and its committed schema equal a one-segment
// decode of the lane.
func TestEvolverInPipeline(t *testing.T) {
	lanes := map[string][]string{"a": evolvingLines(900), "b": evolvingLines(450)}
	for _, workers := range []int{1, 8} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			ev, err := transform.NewEvolver(transform.EvolveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			out, dl := &jsonSink{}, &memSink{}
			store := checkpoint.NewFileStore(t.TempDir())
			p, err := pipeline.New(pipeline.Config{Name: "t", Source: &sliceSource{lanes: lanes, chunk: 7}, Processor: ev,
				Sink: out, DeadLetter: dl, Store: store, Workers: workers, Window: window.Policy{MaxRecords: 50}})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			var dead int64
			for lane, lines := range lanes {
				want, wantDead, wantSchema := reference(t, lines)
				if fmt.Sprint(out.rows[lane]) != fmt.Sprint(want) {
					t.Fatalf("lane %s: %d rows differ from a one-segment decode (%d rows)", lane, len(out.rows[lane]), len(want))
				}
				dead += int64(wantDead)
				schemas := out.schemas[lane]
				if schemas[len(schemas)-1] != wantSchema || schemas[0] == wantSchema {
					t.Fatalf("lane %s: schemas per window %v, want growing to %s", lane, schemas, wantSchema)
				}
				// The committed state restores the lane's schema.
				if got := committedSchema(t, store, lane); got != wantSchema {
					t.Fatalf("lane %s: committed schema %s, want %s", lane, got, wantSchema)
				}
			}
			if st := p.Stats(); st.DeadLettered != dead || st.Read != 1350 {
				t.Fatalf("stats %+v, want %d dead letters", st, dead)
			}
		})
	}
}

// committedSchema restores the lane's committed schema state into a new
// Evolver and returns its fingerprint.
func committedSchema(t *testing.T, store checkpoint.Store, lane string) string {
	t.Helper()
	st, err := store.Load(context.Background(), "t", lane)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := transform.NewEvolver(transform.EvolveOptions{})
	n, k := binary.Uvarint(st.OpState)
	if k <= 0 {
		t.Fatalf("lane %s: state without a schema frame", lane)
	}
	if err := ev.Restore(lane, st.OpState[k:k+int(n)]); err != nil {
		t.Fatal(err)
	}
	return ev.LaneSchema(lane).Fingerprint()
}

// countOp is an operator whose state is the number of rows it has seen.
type countOp struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countOp) Restore(lane string, st []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	n := 0
	if len(st) > 0 {
		var err error
		if n, err = strconv.Atoi(string(st)); err != nil {
			return err
		}
	}
	c.n[lane] = n
	return nil
}

func (c *countOp) Apply(lane string, b *streamd.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[lane] += b.Len()
	return nil
}

func (c *countOp) Snapshot(lane string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return []byte(strconv.Itoa(c.n[lane])), nil
}

func (c *countOp) Forget(string) {}

// TestEvolverStateBesideOperatorState: the lane's schema and the
// operators' state are committed together and both restored on restart.
func TestEvolverStateBesideOperatorState(t *testing.T) {
	lines := evolvingLines(400)
	store := checkpoint.NewFileStore(t.TempDir())
	run := func(data []string) (*countOp, *transform.Evolver) {
		ev, _ := transform.NewEvolver(transform.EvolveOptions{})
		op := &countOp{}
		p, err := pipeline.New(pipeline.Config{Name: "t", Source: &sliceSource{lanes: map[string][]string{"a": data}, chunk: 9},
			Processor: ev, Operator: op, Sink: &jsonSink{}, DeadLetter: &memSink{}, Store: store, Window: window.Policy{MaxRecords: 60}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		return op, ev
	}
	run(lines[:250])
	op, ev := run(lines)
	want, _, wantSchema := reference(t, lines)
	if op.n["a"] != len(want) {
		t.Fatalf("operator counted %d rows over both runs, want %d (its state was not restored)", op.n["a"], len(want))
	}
	if got := committedSchema(t, store, "a"); got != wantSchema {
		t.Fatalf("schema after restart %s, want %s", got, wantSchema)
	}
	if got := ev.LaneSchema("a").Fingerprint(); got != "" {
		t.Fatalf("the ended lane's schema is still held in memory: %s", got)
	}
}

// TestEvolverCorruptStateFailsLane: a committed state that cannot be read
// stops the pipeline with the reason instead of starting from scratch.
func TestEvolverCorruptStateFailsLane(t *testing.T) {
	ctx := context.Background()
	store := checkpoint.NewFileStore(t.TempDir())
	in := streamd.Intent{Pipeline: "t", Lane: "a", From: streamd.Position{Offset: 0}, To: streamd.Position{Offset: 3}}
	if err := store.PutIntent(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := store.Commit(ctx, in, []byte{0x7f, '{'}); err != nil { // claims 127 bytes of schema state
		t.Fatal(err)
	}
	ev, _ := transform.NewEvolver(transform.EvolveOptions{})
	p, err := pipeline.New(pipeline.Config{Name: "t", Source: &sliceSource{lanes: map[string][]string{"a": evolvingLines(10)}, chunk: 4},
		Processor: ev, Sink: &jsonSink{}, Store: store, Window: window.Policy{MaxRecords: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); err == nil || !bytes.Contains([]byte(err.Error()), []byte("truncated schema state")) {
		t.Fatalf("Run = %v, want the truncated state reported", err)
	}
}
