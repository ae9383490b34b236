package outcheck

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Row is one output row: column name → value rendered by Arrow's ValueStr
// ("(null)" for null), plus Hive partition columns taken from the path and
// "_file" naming the file it came from.
type Row map[string]string

// Null is how a null value reads in a Row.
const Null = array.NullValueStr

// ReadParquetDir reads every *.parquet file under dir. It fails if any file
// that ends in .parquet cannot be read whole.
func ReadParquetDir(dir string) ([]Row, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read parquet dir: %w", err)
	}
	sort.Strings(files)
	var rows []Row
	for _, f := range files {
		rs, err := ReadParquetFile(f)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(dir, f)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		for _, r := range rs {
			for _, seg := range parts[:len(parts)-1] {
				if k, v, ok := strings.Cut(seg, "="); ok {
					if uv, err := url.PathUnescape(v); err == nil {
						v = uv
					}
					r[k] = v
				}
			}
			r["_file"] = rel
		}
		rows = append(rows, rs...)
	}
	return rows, nil
}

// openParquet opens one Parquet file for pqarrow; close releases it.
func openParquet(path string) (fr *pqarrow.FileReader, close func() error, err error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, nil, fmt.Errorf("open parquet %s: %w", path, err)
	}
	fr, err = pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		pf.Close()
		return nil, nil, fmt.Errorf("read parquet %s: %w", path, err)
	}
	return fr, pf.Close, nil
}

// ReadParquetFile reads one Parquet file with pqarrow.
func ReadParquetFile(path string) ([]Row, error) {
	fr, closeFile, err := openParquet(path)
	if err != nil {
		return nil, err
	}
	defer closeFile()
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		return nil, fmt.Errorf("read parquet %s: %w", path, err)
	}
	defer tbl.Release()
	n := int(tbl.NumRows())
	rows := make([]Row, n)
	for i := range rows {
		rows[i] = Row{}
	}
	for c := 0; c < int(tbl.NumCols()); c++ {
		col := tbl.Column(c)
		name := col.Name()
		i := 0
		for _, chunk := range col.Data().Chunks() {
			for j := 0; j < chunk.Len(); j++ {
				rows[i][name] = chunk.ValueStr(j)
				i++
			}
		}
	}
	return rows, nil
}

// ReadParquetSchema returns the columns of one Parquet file in order, each
// as "name:arrow type" (e.g. "quantity:int64"), as pqarrow maps them.
func ReadParquetSchema(path string) ([]string, error) {
	fr, closeFile, err := openParquet(path)
	if err != nil {
		return nil, err
	}
	defer closeFile()
	sc, err := fr.Schema()
	if err != nil {
		return nil, fmt.Errorf("read parquet schema %s: %w", path, err)
	}
	out := make([]string, sc.NumFields())
	for i, f := range sc.Fields() {
		out[i] = f.Name + ":" + f.Type.String()
	}
	return out, nil
}

// DeadLetter is one dead-letter line.
type DeadLetter struct {
	Pipeline  string `json:"pipeline"`
	Lane      string `json:"lane"`
	Position  string `json:"position"`
	Error     string `json:"error"`
	Raw       string `json:"raw"`
	RawBase64 string `json:"raw_base64"`
}

// ReadDeadLetters reads every *.jsonl file under dir; a missing dir holds
// no dead letters.
func ReadDeadLetters(dir string) ([]DeadLetter, error) {
	var out []DeadLetter
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if os.IsNotExist(err) && p == dir {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".jsonl") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var dl DeadLetter
			if err := json.Unmarshal(sc.Bytes(), &dl); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			out = append(out, dl)
		}
		return sc.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	return out, nil
}

// TempFiles lists files under dir that a reader would see but that are not
// complete outputs: names that end neither in .parquet nor .jsonl and do not
// start with a dot. Hidden (dot) files are what an interrupted write leaves;
// Athena, Spark and DuckDB skip them, and streamd sweeps old ones at start.
// A finished run leaves none.
func TempFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if os.IsNotExist(err) && p == dir {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") && !strings.HasSuffix(p, ".parquet") && !strings.HasSuffix(p, ".jsonl") {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
