package dynamodb_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink"
	ddbsink "github.com/streamd/streamd/sink/dynamodb"
	"github.com/streamd/streamd/sink/sinktest"
)

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (sink.Sink, sinktest.Reader) {
		table := createTable(t, "id:S")
		s, _ := newSink(t, peer.Client(), table, nil)
		return s, tableReader(table)
	}, sinktest.WithPoison(func(r *sinktest.Record) { r.ID = "" }))
}

func write(t *testing.T, s *ddbsink.Sink, b *streamd.Batch) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := s.Write(ctx, streamd.Intent{Pipeline: sinktest.Pipeline, Lane: b.Lane, From: b.From, To: b.To}, b)
	if !b.Accounted() {
		t.Fatalf("batch does not reconcile: read %d rows %d filtered %d dead %d", b.Read, b.Len(), b.Filtered, len(b.Dead))
	}
	return err
}

// TestTypes checks the exact attribute values of every type.
func TestTypes(t *testing.T) {
	sch, _ := streamd.NewSchema(
		streamd.Field{Name: "pk", Type: streamd.Type{Kind: streamd.KindInt64}},
		streamd.Field{Name: "sk", Type: streamd.Type{Kind: streamd.KindDate}},
		streamd.Field{Name: "s", Type: streamd.Type{Kind: streamd.KindString}},
		streamd.Field{Name: "i", Type: streamd.Type{Kind: streamd.KindInt32}},
		streamd.Field{Name: "d", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 12, Scale: 2}},
		streamd.Field{Name: "w", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 38, Scale: 10}},
		streamd.Field{Name: "f", Type: streamd.Type{Kind: streamd.KindFloat64}},
		streamd.Field{Name: "b", Type: streamd.Type{Kind: streamd.KindBool}},
		streamd.Field{Name: "ts", Type: streamd.Type{Kind: streamd.KindTimestamp}},
		streamd.Field{Name: "bin", Type: streamd.Type{Kind: streamd.KindBinary}},
		streamd.Field{Name: "j", Type: streamd.Type{Kind: streamd.KindJSON}},
		streamd.Field{Name: "n", Type: streamd.Type{Kind: streamd.KindString}},
		streamd.Field{Name: "op", Type: streamd.Type{Kind: streamd.KindString}},
	)
	b := streamd.NewBatch(sch, "l")
	pos := streamd.Position{Offset: 1}
	b.NoteRead(pos, 1)
	b.AddRowMeta(pos, 0)
	wide, err := streamd.ParseDecimalWide([]byte("-1234567890123456789012345678.0123456789"), sch.Fields[5].Type)
	if err != nil {
		t.Fatal(err)
	}
	b.Cols[0].AppendInt64(-42)
	b.Cols[1].AppendInt32(20526)
	b.Cols[2].AppendBytes([]byte("héllo \"q\""))
	b.Cols[3].AppendInt32(7)
	b.Cols[4].AppendInt64(1990) // 19.90
	b.Cols[5].AppendBytes(wide[:])
	b.Cols[6].AppendFloat64(0.1)
	b.Cols[7].AppendBool(true)
	b.Cols[8].AppendInt64(1_773_483_072_123_456)
	b.Cols[9].AppendBytes([]byte{0, 1, 0xfe})
	b.Cols[10].AppendBytes([]byte(`{"price":12345678901234567890.123456789,"tags":["a",1,null,true],"empty":{}}`))
	b.Cols[11].AppendNull()
	b.Cols[12].AppendBytes([]byte("insert"))

	table := createTable(t, "pk:N", "sk:S")
	s, _ := newSink(t, peer.Client(), table, func(c *ddbsink.Config) { c.Key = []string{"pk", "sk"} })
	if err := write(t, s, b); err != nil {
		t.Fatal(err)
	}
	out, err := peer.Client().GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberN{Value: "-42"},
			"sk": &types.AttributeValueMemberS{Value: "2026-03-14"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(avMap(out.Item))
	// DynamoDB normalises numbers (19.90 → 19.9); the digits are exact.
	want := `{"b":true,"bin":"AAH+","d":19.9,"f":0.1,"i":7,"j":{"empty":{},"price":12345678901234567890.123456789,"tags":["a",1,null,true]},"pk":-42,"s":"héllo \"q\"","sk":"2026-03-14","ts":"2026-03-14T10:11:12.123456Z","w":-1234567890123456789012345678.0123456789}`
	if string(got) != want {
		t.Fatalf("item\n got %s\nwant %s", got, want)
	}
}

func TestDeadLetters(t *testing.T) {
	sch, _ := streamd.NewSchema(
		streamd.Field{Name: "id", Type: streamd.Type{Kind: streamd.KindString}},
		streamd.Field{Name: "f", Type: streamd.Type{Kind: streamd.KindFloat64}},
		streamd.Field{Name: "j", Type: streamd.Type{Kind: streamd.KindJSON}},
		streamd.Field{Name: "big", Type: streamd.Type{Kind: streamd.KindString}},
	)
	type row struct {
		id   *string
		f    float64
		j    string
		big  int
		dead string
	}
	str := func(s string) *string { return &s }
	rows := []row{
		{id: str("ok"), f: 1.5, j: `{"a":1}`},
		{id: nil, dead: `key column "id" is null`},
		{id: str(""), dead: `key column "id" is empty`},
		{id: str("nan"), f: math.NaN(), dead: `column "f": float64 NaN`},
		{id: str("inf"), f: math.Inf(1), dead: `column "f": float64 +Inf`},
		{id: str("huge"), f: 1e200, dead: `outside DynamoDB's number range`},
		{id: str("badjson"), j: `{"a":`, dead: `column "j": malformed json`},
		{id: str("digits"), j: `[1234567890123456789012345678901234567890]`, dead: `more than 38 significant digits`},
		{id: str("large"), big: 500 << 10, dead: `exceeds the 400 KB item limit`},
		{id: str("ok2"), j: `null`},
	}
	b := streamd.NewBatch(sch, "l")
	for i, r := range rows {
		pos := streamd.Position{Offset: int64(i)}
		b.NoteRead(pos, 1)
		b.AddRowMeta(pos, 0)
		if r.id == nil {
			b.Cols[0].AppendNull()
		} else {
			b.Cols[0].AppendBytes([]byte(*r.id))
		}
		b.Cols[1].AppendFloat64(r.f)
		if r.j == "" {
			b.Cols[2].AppendNull()
		} else {
			b.Cols[2].AppendBytes([]byte(r.j))
		}
		b.Cols[3].AppendBytes([]byte(strings.Repeat("x", r.big)))
	}
	table := createTable(t, "id:S")
	s, reg := newSink(t, peer.Client(), table, nil)
	if err := write(t, s, b); err != nil {
		t.Fatal(err)
	}
	var wantDead []string
	for _, r := range rows {
		if r.dead != "" {
			wantDead = append(wantDead, r.dead)
		}
	}
	if len(b.Dead) != len(wantDead) || b.Len() != 2 {
		t.Fatalf("%d dead, %d rows: %+v", len(b.Dead), b.Len(), b.Dead)
	}
	for i, d := range b.Dead {
		if !strings.Contains(d.Error, wantDead[i]) {
			t.Errorf("dead letter %d: %q, want %q", i, d.Error, wantDead[i])
		}
	}
	items, err := scan(context.Background(), table)
	if err != nil || len(items) != 2 {
		t.Fatalf("%d items, %v", len(items), err)
	}
	if v := counter(t, reg, "streamd_dynamodb_rows_dead_lettered_total", ""); v != float64(len(wantDead)) {
		t.Fatalf("dead metric %v", v)
	}
}

// counter sums the samples of the counter family name in reg whose op
// label is op ("" for any).
func counter(t *testing.T, reg *prometheus.Registry, name, op string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			ok := op == ""
			for _, l := range m.GetLabel() {
				ok = ok || l.GetName() == "op" && l.GetValue() == op
			}
			if ok {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// cdcSchema is the schema of the CDC tests: a DynamoDB Streams-like row.
var cdcSchema, _ = streamd.NewSchema(
	streamd.Field{Name: "id", Type: streamd.Type{Kind: streamd.KindString}},
	streamd.Field{Name: "v", Type: streamd.Type{Kind: streamd.KindInt64}},
	streamd.Field{Name: "amount", Type: streamd.Type{Kind: streamd.KindDecimal, Precision: 12, Scale: 2}},
	streamd.Field{Name: "op", Type: streamd.Type{Kind: streamd.KindString}},
)

// change is one CDC row.
type change struct {
	id     string
	v      int64
	remove bool
}

// model applies changes in order: the table the sink must end with.
type model map[string]change

func (m model) apply(cs []change) {
	for _, c := range cs {
		if c.remove {
			delete(m, c.id)
		} else {
			m[c.id] = c
		}
	}
}

func (m model) rows() []sinktest.Row {
	var out []sinktest.Row
	for _, c := range m {
		out = append(out, sinktest.Row{"id": c.id, "v": json.Number(fmt.Sprint(c.v)), "amount": json.Number(fmt.Sprintf("%d.%02d", c.v/100, c.v%100))})
	}
	return out
}

func cdcBatch(first int, cs []change) *streamd.Batch {
	b := streamd.NewBatch(cdcSchema, "stream/shard-0001")
	for k, c := range cs {
		pos := streamd.Position{Seq: fmt.Sprintf("%021d", first+k)}
		b.NoteRead(pos, 50)
		b.AddRowMeta(pos, 0)
		b.Cols[0].AppendBytes([]byte(c.id))
		b.Cols[1].AppendInt64(c.v)
		b.Cols[2].AppendInt64(c.v)
		op := "modify"
		if c.remove {
			op = "REMOVE"
		}
		b.Cols[3].AppendBytes([]byte(op))
	}
	return b
}

// changes returns n deterministic changes over a key space of keys ids,
// about one in five a removal.
func changes(seed, n, keys int) []change {
	cs := make([]change, n)
	x := uint64(seed)*2654435761 + 1
	for i := range cs {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		cs[i] = change{id: fmt.Sprintf("k%04d", x%uint64(keys)), v: int64(seed*100000 + i), remove: x%5 == 0}
	}
	return cs
}

func TestCDCLastWriteWins(t *testing.T) {
	table := createTable(t, "id:S")
	s, reg := newSink(t, peer.Client(), table, nil)
	m := model{}
	for k := range 4 {
		cs := changes(k+1, 300, 120) // many repeats of a key inside one batch
		m.apply(cs)
		if err := write(t, s, cdcBatch(k*300, cs)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tableReader(table).ReadAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := sinktest.Diff(got, m.rows()); d != "" {
		t.Fatal(d)
	}
	for _, r := range got {
		if _, ok := r["op"]; ok {
			t.Fatal("the op column was written")
		}
	}
	if counter(t, reg, "streamd_dynamodb_items_written_total", "delete") == 0 {
		t.Fatal("no delete counted")
	}
}

// TestThrottlingAndUnprocessed is the proof: behind a proxy that throttles
// 20% of BatchWriteItem calls and withholds half the items of another 30%
// as UnprocessedItems, the table ends exactly as the changes say.
func TestThrottlingAndUnprocessed(t *testing.T) {
	table := createTable(t, "id:S")
	proxy := newFaultProxy(t, 11, 0.2, 0.3)
	s, reg := newSink(t, proxy.client(), table, nil)
	m := model{}
	for k := range 5 {
		cs := changes(k+10, 400, 500)
		m.apply(cs)
		if err := write(t, s, cdcBatch(k*400, cs)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tableReader(table).ReadAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := sinktest.Diff(got, m.rows()); d != "" {
		t.Fatal(d)
	}
	thr, un := counter(t, reg, "streamd_dynamodb_throttles_total", ""), counter(t, reg, "streamd_dynamodb_unprocessed_retries_total", "")
	if thr != float64(proxy.throttled.Load()) || thr == 0 {
		t.Fatalf("throttle metric %v, proxy throttled %d", thr, proxy.throttled.Load())
	}
	if un != float64(proxy.withheld.Load()) || un == 0 {
		t.Fatalf("unprocessed metric %v, proxy withheld %d", un, proxy.withheld.Load())
	}
	t.Logf("%d items in the table; %d calls, %d throttled, %d partial (%d items withheld)",
		len(got), proxy.requests.Load(), proxy.throttled.Load(), proxy.partials.Load(), proxy.withheld.Load())
}

// TestRestartAfterKill writes intents, "crashes" in the middle of one
// (cancel), and redoes from the open intent with a new sink, as the
// pipeline does on start: the table ends exact.
func TestRestartAfterKill(t *testing.T) {
	table := createTable(t, "id:S")
	proxy := newFaultProxy(t, 3, 0.1, 0.2)
	proxy.delay = 5 * time.Millisecond // stretch the write so the crash lands inside it
	intents := make([][]change, 6)
	for k := range intents {
		intents[k] = changes(k+20, 300, 250)
	}
	first, _ := newSink(t, proxy.client(), table, nil)
	for k := range 3 {
		if err := write(t, first, cdcBatch(k*300, intents[k])); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Millisecond)
	b := cdcBatch(3*300, intents[3])
	err := first.Write(ctx, streamd.Intent{Pipeline: sinktest.Pipeline, Lane: b.Lane, From: b.From, To: b.To}, b)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("crashed write: %v, want a context deadline error", err)
	}
	partial, _ := scan(context.Background(), table)
	first.Close(context.Background())

	second, _ := newSink(t, proxy.client(), table, nil) // the restarted process
	m := model{}
	for k := range intents {
		m.apply(intents[k])
		if k < 3 {
			continue
		}
		if err := write(t, second, cdcBatch(k*300, intents[k])); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tableReader(table).ReadAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := sinktest.Diff(got, m.rows()); d != "" {
		t.Fatal(d)
	}
	t.Logf("after the crash the table held %d items; after the redo %d", len(partial), len(got))
}

func TestWriteFailures(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) (ddbsink.API, string)
		tweak func(*ddbsink.Config)
		want  error
	}{
		{
			name: "throttled past the retry timeout",
			setup: func(t *testing.T) (ddbsink.API, string) {
				return newFaultProxy(t, 1, 1, 0).client(), createTable(t, "id:S")
			},
			tweak: func(c *ddbsink.Config) { c.RetryTimeout = 300 * time.Millisecond },
			want:  ddbsink.ErrRetriesExhausted,
		},
		{
			name: "unprocessed past the retry timeout",
			setup: func(t *testing.T) (ddbsink.API, string) {
				p := newFaultProxy(t, 1, 0, 1)
				p.hold = 1
				return p.client(), createTable(t, "id:S")
			},
			tweak: func(c *ddbsink.Config) { c.RetryTimeout = 300 * time.Millisecond },
			want:  ddbsink.ErrRetriesExhausted,
		},
		{
			name: "missing table",
			setup: func(t *testing.T) (ddbsink.API, string) {
				return peer.Client(), "no-such-table"
			},
			want: ddbsink.ErrRejected,
		},
		{
			name: "key schema mismatch",
			setup: func(t *testing.T) (ddbsink.API, string) {
				return peer.Client(), createTable(t, "id:N")
			},
			want: ddbsink.ErrRejected,
		},
		{
			name: "unknown key column",
			setup: func(t *testing.T) (ddbsink.API, string) {
				return peer.Client(), createTable(t, "id:S")
			},
			tweak: func(c *ddbsink.Config) { c.Key = []string{"nope"} },
			want:  ddbsink.ErrBadConfig,
		},
		{
			name: "bool key column",
			setup: func(t *testing.T) (ddbsink.API, string) {
				return peer.Client(), createTable(t, "id:S")
			},
			tweak: func(c *ddbsink.Config) { c.Key = []string{"active"} },
			want:  ddbsink.ErrBadConfig,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, table := tc.setup(t)
			s, _ := newSink(t, client, table, tc.tweak)
			b := sinktest.NewBatch(t, 0, sinktest.Records(0, 60), 0)
			err := write(t, s, b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("write: %v, want %v", err, tc.want)
			}
			if b.Len() != 60 || len(b.Dead) != 0 {
				t.Fatalf("failed write changed the batch: %d rows, %d dead", b.Len(), len(b.Dead))
			}
		})
	}
}

func TestWriteChecks(t *testing.T) {
	table := createTable(t, "id:S")
	s, _ := newSink(t, peer.Client(), table, nil)
	b := sinktest.NewBatch(t, 0, sinktest.Records(0, 3), 0)
	in := sinktest.IntentOf(b)
	in.Pipeline = "other"
	if err := s.Write(context.Background(), in, b); !errors.Is(err, ddbsink.ErrIntentMismatch) {
		t.Fatalf("other pipeline: %v", err)
	}
	s.Close(context.Background())
	if err := s.Write(context.Background(), sinktest.IntentOf(b), b); !errors.Is(err, ddbsink.ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
	if items, _ := scan(context.Background(), table); len(items) != 0 {
		t.Fatalf("%d items written", len(items))
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ok := ddbsink.Config{Pipeline: "p", Client: peer.Client(), Table: "t", Key: []string{"id"}}
	tests := []struct {
		name  string
		tweak func(*ddbsink.Config)
	}{
		{"no pipeline", func(c *ddbsink.Config) { c.Pipeline = "" }},
		{"no client", func(c *ddbsink.Config) { c.Client = nil }},
		{"no table", func(c *ddbsink.Config) { c.Table = "" }},
		{"no key", func(c *ddbsink.Config) { c.Key = nil }},
		{"three keys", func(c *ddbsink.Config) { c.Key = []string{"a", "b", "c"} }},
		{"repeated key", func(c *ddbsink.Config) { c.Key = []string{"a", "a"} }},
		{"op as key", func(c *ddbsink.Config) { c.Key = []string{"op"} }},
		{"negative timeout", func(c *ddbsink.Config) { c.RetryTimeout = -1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.tweak(&c)
			if _, err := ddbsink.New(c); !errors.Is(err, ddbsink.ErrBadConfig) {
				t.Fatalf("New: %v, want ErrBadConfig", err)
			}
		})
	}
	if _, err := ddbsink.New(ok); err != nil {
		t.Fatal(err)
	}
}
