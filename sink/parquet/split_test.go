package parquet

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/streamd/streamd"
)

// blobBatch builds n rows of (id int64, region string, payload binary)
// whose payloads are pseudo-random (incompressible) bytes of payload
// length, seeded by seed.
func blobBatch(tb testing.TB, seed uint64, first, n, payload int, regions ...string) *streamd.Batch {
	tb.Helper()
	b := streamd.NewBatch(mustSchema(tb, "id:int64", "region:string", "payload:binary"), "blobs/0")
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	buf := make([]byte, payload)
	for i := range n {
		id := int64(first + i)
		b.Cols[0].AppendInt64(id)
		if len(regions) == 0 {
			b.Cols[1].AppendBytes([]byte("all"))
		} else {
			b.Cols[1].AppendBytes([]byte(regions[i%len(regions)]))
		}
		_, _ = rng.Read(buf)
		b.Cols[2].AppendBytes(buf)
		b.NoteRead(streamd.Position{Offset: id}, payload)
		b.AddRowMeta(streamd.Position{Offset: id}, 0)
	}
	return b
}

func TestSplitRows(t *testing.T) {
	b := blobBatch(t, 1, 0, 100, 100)
	enc, err := NewEncoder(b.Schema, EncoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	z := enc.newSizer(b)
	rows := allRows(100)
	total := z.total(rows, 0)
	cases := []struct {
		name   string
		rows   []int
		target int64
		want   int
	}{
		{"fits", rows, total, 1},
		{"just over", rows, total - 1, 2},
		{"thirds", rows, (total + 2) / 3, 3},
		{"more parts than rows", rows[:3], 1, 3},
		{"one row", rows[:1], 1, 1},
		{"subset", []int{3, 9, 27, 81}, 1, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tot := z.total(c.rows, 0)
			runs := splitRows(z, c.rows, tot, c.target)
			if len(runs) != c.want {
				t.Fatalf("%d runs, want %d", len(runs), c.want)
			}
			var joined []int
			for i, r := range runs {
				if len(r) == 0 {
					t.Fatalf("run %d empty", i)
				}
				joined = append(joined, r...)
			}
			if fmt.Sprint(joined) != fmt.Sprint(c.rows) {
				t.Fatalf("runs do not concatenate to the rows: %v", runs)
			}
			if len(runs) > 1 && len(c.rows) > len(runs) {
				for i, r := range runs {
					// Equal shares within one row's size.
					if got, share := z.total(r, 0), tot/int64(len(runs)); got > share+z.row(r[0])*2 || got < share-z.row(r[0])*2 {
						t.Errorf("run %d: %d bytes, share %d", i, got, share)
					}
				}
			}
		})
	}
}

func TestSinkSplitsLargePartitions(t *testing.T) {
	b := blobBatch(t, 2, 1000, 600, 500, "EU", "US", "US") // US ≈ 2/3 of the bytes
	in := intentOf(b)
	opts := Options{PartitionBy: []string{"region"}, TargetFileBytes: 100 << 10, RowGroupRows: 50, RowGroupBytes: 16 << 10}
	write := func() *memStore {
		m := newMemStore()
		s, err := New(m, "sales", opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(context.Background(), in, b); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := write()
	base := "sales-" + streamd.LaneToken(in.Lane) + "-" + in.From.String() + "-" + in.To.String()
	// EU: 200 rows ≈ 103 KB → 2 files; US: 400 rows ≈ 206 KB → 3 files.
	want := []string{
		"region=EU/" + base + "-p0001.parquet", "region=EU/" + base + "-p0002.parquet",
		"region=US/" + base + "-p0001.parquet", "region=US/" + base + "-p0002.parquet", "region=US/" + base + "-p0003.parquet",
	}
	if got := m.names(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("objects %q, want %q", got, want)
	}
	// Rows: every id once, in order within a partition, across parts.
	next := map[string]int64{}
	rowsSeen := 0
	for _, name := range want {
		region := strings.TrimPrefix(strings.Split(name, "/")[0], "region=")
		tbl, rdr := readBack(t, m.get(t, name))
		if rdr.NumRowGroups() < 2 {
			t.Errorf("%s: %d row groups, want the byte target to cut several", name, rdr.NumRowGroups())
		}
		for i := range int(tbl.NumRows()) {
			var id int64
			fmt.Sscan(cell(t, tbl, "id", i), &id)
			if id <= next[region] && next[region] != 0 {
				t.Fatalf("%s: id %d after %d", name, id, next[region])
			}
			next[region] = id
			rowsSeen++
		}
	}
	if rowsSeen != b.Len() {
		t.Fatalf("read %d rows, want %d", rowsSeen, b.Len())
	}
	// Same batch, same files, byte for byte.
	if !equalObjects(maps(m), maps(write())) {
		t.Fatal("a redo of the split batch differs")
	}
	// A target above the partition keeps the plain name.
	opts.TargetFileBytes = 1 << 30
	m = write()
	if got := m.names(); len(got) != 2 || !strings.HasSuffix(got[0], base+".parquet") {
		t.Fatalf("unsplit objects %q", got)
	}
	// Negative: never split.
	opts.TargetFileBytes = -1
	if got := write().names(); len(got) != 2 {
		t.Fatalf("objects with splitting off: %q", got)
	}
}

func TestEncodeRowGroupBytes(t *testing.T) {
	b := blobBatch(t, 3, 0, 100, 1000)
	var buf bytes.Buffer
	if err := Encode(&buf, b, nil, EncoderOptions{RowGroupBytes: 10 << 10}); err != nil {
		t.Fatal(err)
	}
	_, rdr := readBack(t, buf.Bytes())
	// ≈1014 bytes per row: a 10 KiB target closes a group every 11 rows.
	if got := rdr.NumRowGroups(); got != 10 {
		t.Fatalf("%d row groups, want 10", got)
	}
	if got := rdr.MetaData().RowGroup(0).NumRows(); got != 11 {
		t.Fatalf("first row group has %d rows, want 11", got)
	}
}
