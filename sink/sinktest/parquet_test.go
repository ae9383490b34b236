package sinktest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pq "github.com/parquet-go/parquet-go"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/sink"
	"github.com/streamd/streamd/sink/objstore"
	"github.com/streamd/streamd/sink/parquet"
	"github.com/streamd/streamd/sink/sinktest"
)

// TestParquetConformance runs the suite against the Parquet sink over a
// local directory. A Parquet batch is one object put atomically, so a
// failed write must leave nothing visible.
func TestParquetConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (sink.Sink, sinktest.Reader) {
		dir := t.TempDir()
		s, err := parquet.New(objstore.NewLocal(dir), sinktest.Pipeline, parquet.Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(context.Background()) })
		return s, parquetDir(dir)
	}, sinktest.Atomic())
}

// parquetDir reads every *.parquet file under dir with parquet-go, as rows
// of sinktest.Schema. Any other file name (a temporary file) is ignored, as
// readers of the output ignore it; a .parquet file that does not decode
// fails the read.
func parquetDir(dir string) sinktest.Reader {
	return sinktest.ReaderFunc(func(ctx context.Context) ([]sinktest.Row, error) {
		var rows []sinktest.Row
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") {
				return err
			}
			rs, err := readParquet(path)
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			rows = append(rows, rs...)
			return nil
		})
		return rows, err
	})
}

func readParquet(path string) ([]sinktest.Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	pf, err := pq.OpenFile(f, st.Size())
	if err != nil {
		return nil, err
	}
	if n := len(pf.Schema().Columns()); n != len(sinktest.Schema.Fields) {
		return nil, fmt.Errorf("%d columns, want %d", n, len(sinktest.Schema.Fields))
	}
	b := streamd.NewBatch(sinktest.Schema, sinktest.Lane)
	buf := make([]pq.Row, 64)
	for _, rg := range pf.RowGroups() {
		rr := rg.Rows()
		for {
			n, err := rr.ReadRows(buf)
			for _, row := range buf[:n] {
				if err := appendRow(b, row); err != nil {
					rr.Close()
					return nil, err
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rr.Close()
				return nil, err
			}
		}
		rr.Close()
	}
	out := make([]sinktest.Row, b.Len())
	var js []byte
	for i := range out {
		js = streamd.AppendRowJSON(js[:0], b, i)
		if out[i], err = sinktest.DecodeRow(js); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// appendRow adds one Parquet row (one value per flat optional column) to b.
func appendRow(b *streamd.Batch, row pq.Row) error {
	if len(row) != len(b.Cols) {
		return fmt.Errorf("row has %d values, want %d", len(row), len(b.Cols))
	}
	b.AddRowMeta(streamd.Position{}, 0)
	for _, v := range row {
		c := &b.Cols[v.Column()]
		if v.IsNull() {
			c.AppendNull()
			continue
		}
		switch streamd.StorageOf(c.Type) {
		case streamd.StoreInt32:
			c.AppendInt32(v.Int32())
		case streamd.StoreInt64:
			c.AppendInt64(v.Int64())
		case streamd.StoreFloat64:
			c.AppendFloat64(v.Double())
		case streamd.StoreBool:
			c.AppendBool(v.Boolean())
		case streamd.StoreBytes:
			c.AppendBytes(v.ByteArray())
		}
	}
	return nil
}
