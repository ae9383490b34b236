package deadletter_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/sink"
	"github.com/streamd/streamd/sink/deadletter"
	"github.com/streamd/streamd/sink/objstore"
	"github.com/streamd/streamd/sink/objstore/objstoretest"
	"github.com/streamd/streamd/sink/objstore/s3store"
)

func batch(lane string, dead ...streamd.DeadLetter) *streamd.Batch {
	b := streamd.NewBatch(&streamd.Schema{}, lane)
	for _, d := range dead {
		b.NoteRead(d.Pos, len(d.Raw))
		b.AddDead(d.Pos, d.Error, d.Raw)
	}
	return b
}

func readLines(t *testing.T, data []byte) []deadletter.Line {
	t.Helper()
	var out []deadletter.Line
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l deadletter.Line
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %q is not a dead-letter object: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

func TestWriteLines(t *testing.T) {
	store := objstore.NewLocal(t.TempDir())
	s := deadletter.New(store, "sales")
	lane := "data/in/a.jsonl"
	bad := []byte{0xff, 'x', 0xfe}
	in := streamd.Intent{Pipeline: "sales", Lane: lane, From: streamd.Position{Offset: 0}, To: streamd.Position{Offset: 120}}
	b := batch(lane,
		streamd.DeadLetter{Pos: streamd.Position{Offset: 10}, Error: `cast "amount": not a number`, Raw: []byte(`{"amount":"x<y>"}`)},
		streamd.DeadLetter{Pos: streamd.Position{Offset: 60}, Error: "line too long", Raw: bad},
		streamd.DeadLetter{Pos: streamd.Position{Offset: 90}, Error: "", Raw: []byte("")},
	)
	if err := s.Write(context.Background(), in, b); err != nil {
		t.Fatal(err)
	}
	name := "sales-" + streamd.LaneToken(lane) + "-0-120.jsonl"
	if s.Name(in) != name {
		t.Fatalf("Name = %q, want %q", s.Name(in), name)
	}
	if got := objstoretest.MustList(t, store, ""); len(got) != 1 || got[0] != name {
		t.Fatalf("objects %q, want [%s]", got, name)
	}
	data := objstoretest.MustGet(t, store, name)
	lines := readLines(t, data)
	want := []deadletter.Line{
		{Pipeline: "sales", Lane: lane, Position: "10", Error: `cast "amount": not a number`, Raw: `{"amount":"x<y>"}`},
		{Pipeline: "sales", Lane: lane, Position: "60", Error: "line too long", Raw: "\ufffdx\ufffd", RawBase64: base64.StdEncoding.EncodeToString(bad)},
		{Pipeline: "sales", Lane: lane, Position: "90", Error: deadletter.NoReason, Raw: ""},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), data)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, lines[i], want[i])
		}
	}
	raw, _ := base64.StdEncoding.DecodeString(lines[1].RawBase64)
	if !bytes.Equal(raw, bad) {
		t.Errorf("raw_base64 decodes to %q, want %q", raw, bad)
	}
	if !strings.Contains(string(data), `"raw":"{\"amount\":\"x<y>\"}"`) {
		t.Errorf("raw is not the record as a readable JSON string:\n%s", data)
	}
	if !b.Accounted() || len(b.Dead) != 3 {
		t.Errorf("Write changed the batch")
	}
}

func TestNames(t *testing.T) {
	s := deadletter.New(objstore.NewLocal(t.TempDir()), "cdc")
	cases := []struct {
		in   streamd.Intent
		want string
	}{
		{streamd.Intent{Lane: "orders/3", From: streamd.Position{Offset: 5}, To: streamd.Position{Offset: 9}},
			"cdc-" + streamd.LaneToken("orders/3") + "-5-9.jsonl"},
		{streamd.Intent{Lane: "shardId-000000000001", From: streamd.Position{Seq: "49590338271490256608559692538361571095921575989136588898", Sub: 2}, To: streamd.Position{Seq: "49590338271490256608559692538361571095921575989136588899"}},
			"cdc-" + streamd.LaneToken("shardId-000000000001") + "-49590338271490256608559692538361571095921575989136588898.2-49590338271490256608559692538361571095921575989136588899.jsonl"},
	}
	for _, c := range cases {
		if got := s.Name(c.in); got != c.want {
			t.Errorf("Name(%+v) = %q, want %q", c.in, got, c.want)
		}
		if err := objstore.CheckName(s.Name(c.in)); err != nil {
			t.Errorf("name is not a valid object name: %v", err)
		}
	}
}

func TestNoDeadLettersWritesNothing(t *testing.T) {
	dir := t.TempDir()
	s := deadletter.New(objstore.NewLocal(dir), "p")
	b := streamd.NewBatch(&streamd.Schema{}, "l")
	b.NoteRead(streamd.Position{Offset: 1}, 10)
	b.Filtered++
	if err := s.Write(context.Background(), streamd.Intent{Lane: "l", From: streamd.Position{Offset: 1}, To: streamd.Position{Offset: 1}}, b); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("wrote %d entries for a batch without dead letters", len(entries))
	}
}

func TestRedoIsByteIdentical(t *testing.T) {
	store := objstore.NewLocal(t.TempDir())
	s := deadletter.New(store, "p")
	in := streamd.Intent{Pipeline: "p", Lane: "topic/0", From: streamd.Position{Offset: 100}, To: streamd.Position{Offset: 199}}
	mk := func() *streamd.Batch {
		return batch("topic/0",
			streamd.DeadLetter{Pos: streamd.Position{Offset: 150}, Error: "rule IsComplete(id) failed", Raw: []byte(`{"id":null}`)},
			streamd.DeadLetter{Pos: streamd.Position{Offset: 151}, Error: "bad json", Raw: []byte{0, 1, 2, 0x80}},
		)
	}
	if err := s.Write(context.Background(), in, mk()); err != nil {
		t.Fatal(err)
	}
	first := objstoretest.MustGet(t, store, s.Name(in))
	if err := s.Write(context.Background(), in, mk()); err != nil {
		t.Fatal(err)
	}
	if second := objstoretest.MustGet(t, store, s.Name(in)); !bytes.Equal(first, second) {
		t.Fatalf("redo wrote different bytes:\n%s\n%s", first, second)
	}
	golden := `{"pipeline":"p","lane":"topic/0","position":"150","error":"rule IsComplete(id) failed","raw":"{\"id\":null}"}
{"pipeline":"p","lane":"topic/0","position":"151","error":"bad json","raw":"\u0000\u0001\u0002\ufffd","raw_base64":"AAECgA=="}
`
	if string(first) != golden {
		t.Fatalf("bytes:\n%s\nwant:\n%s", first, golden)
	}
}

func TestWriteFailures(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	dead := batch("l", streamd.DeadLetter{Pos: streamd.Position{Offset: 1}, Error: "e", Raw: []byte("r")})
	in := streamd.Intent{Pipeline: "p", Lane: "l", From: streamd.Position{Offset: 1}, To: streamd.Position{Offset: 1}}
	cases := []struct {
		name  string
		store sink.ObjectStore
		ctx   context.Context
		in    streamd.Intent
		is    error
	}{
		{"unwritable store", objstore.NewLocal(file), context.Background(), in, nil},
		{"cancelled", objstore.NewLocal(dir), cancelled, in, context.Canceled},
		{"other pipeline", objstore.NewLocal(dir), context.Background(), streamd.Intent{Pipeline: "q", Lane: "l"}, deadletter.ErrWrongPipeline},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := deadletter.New(c.store, "p").Write(c.ctx, c.in, dead)
			if err == nil {
				t.Fatal("Write succeeded")
			}
			if !strings.Contains(err.Error(), "write dead letters") {
				t.Errorf("error %q does not say what failed", err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("failed writes left %d entries", len(entries))
	}
}

func TestS3(t *testing.T) {
	peer := testenv.MinIO(t)
	peer.CreateBucket(t, "dlq")
	store := s3store.New(peer.Client(peer.Endpoint), "dlq", "dead/sales")
	s := deadletter.New(store, "sales")
	in := streamd.Intent{Pipeline: "sales", Lane: "a", From: streamd.Position{Offset: 3}, To: streamd.Position{Offset: 4}}
	if err := s.Write(context.Background(), in, batch("a", streamd.DeadLetter{Pos: streamd.Position{Offset: 4}, Error: "e", Raw: []byte("{}")})); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, objstoretest.MustGet(t, store, s.Name(in)))
	if len(lines) != 1 || lines[0].Position != "4" || lines[0].Raw != "{}" {
		t.Fatalf("lines %+v", lines)
	}
}

func BenchmarkEncode(b *testing.B) {
	s := deadletter.New(objstore.NewLocal(b.TempDir()), "p")
	var dead []streamd.DeadLetter
	raw := []byte(`{"id":12345,"name":"some product","amount":"12.50","ts":"2024-05-01T10:00:00Z"}`)
	for i := range 1000 {
		dead = append(dead, streamd.DeadLetter{Pos: streamd.Position{Offset: int64(i)}, Error: "cast amount: not a number", Raw: raw})
	}
	bt := batch("l", dead...)
	in := streamd.Intent{Lane: "l", From: streamd.Position{Offset: 0}, To: streamd.Position{Offset: 999}}
	b.SetBytes(int64(len(raw) * len(dead)))
	for b.Loop() {
		s.Encode(in, bt)
	}
}
