package parquet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/streamd/streamd"
)

// SchemaDir is the directory, under the sink's root, where the sink records
// the schemas of the files it writes (Options.RecordSchemas). Its name
// starts with an underscore, so Athena, Hive and Spark skip it as hidden.
const SchemaDir = "_streamd_schemas"

// SchemaRecord is the content of one recorded schema: the columns of the
// files written with it, in file order, plus the partition columns, which
// are in the directory names rather than in the files.
type SchemaRecord struct {
	Pipeline    string         `json:"pipeline"`
	Fingerprint string         `json:"fingerprint"`
	Columns     []RecordColumn `json:"columns"`
	PartitionBy []string       `json:"partition_by,omitempty"`
}

// RecordColumn is one column of a SchemaRecord.
type RecordColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Schema returns the record's full schema (partition columns included).
func (r SchemaRecord) Schema() (*streamd.Schema, error) {
	fields := make([]streamd.Field, len(r.Columns))
	for i, c := range r.Columns {
		t, err := streamd.ParseType(c.Type)
		if err != nil {
			return nil, fmt.Errorf("schema record %s: column %q: %w", r.Fingerprint, c.Name, err)
		}
		fields[i] = streamd.Field{Name: c.Name, Type: t}
	}
	return streamd.NewSchema(fields...)
}

// schemaObject returns the name and content of sc's record.
func (s *Sink) schemaObject(sc *streamd.Schema) (string, []byte, error) {
	fp := sc.Fingerprint()
	rec := SchemaRecord{Pipeline: s.pipeline, Fingerprint: fp, PartitionBy: s.opts.PartitionBy}
	for _, f := range sc.Fields {
		rec.Columns = append(rec.Columns, RecordColumn{Name: f.Name, Type: f.Type.String()})
	}
	body, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return "", nil, fmt.Errorf("encode schema record: %w", err)
	}
	sum := sha256.Sum256([]byte(fp))
	return SchemaDir + "/" + s.pipeline + "-" + hex.EncodeToString(sum[:8]) + ".json", append(body, '\n'), nil
}

// recordSchema puts sc's record once per process. Its name and content
// depend only on the schema, so putting it again (another process, a redo)
// rewrites the same object.
func (s *Sink) recordSchema(ctx context.Context, sc *streamd.Schema) error {
	fp := sc.Fingerprint()
	s.mu.Lock()
	done := s.recorded[fp]
	s.mu.Unlock()
	if done {
		return nil
	}
	name, body, err := s.schemaObject(sc)
	if err != nil {
		return err
	}
	if err := s.store.Put(ctx, name, bytes.NewReader(body)); err != nil {
		return fmt.Errorf("record schema %q: %w", name, err)
	}
	s.mu.Lock()
	s.recorded[fp] = true
	s.mu.Unlock()
	return nil
}

// ObjectReader is the part of an object store ReadSchemas needs.
type ObjectReader interface {
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	List(ctx context.Context, prefix string, fn func(name string) error) error
}

// ErrBadRecord is wrapped by ReadSchemas for a schema record it cannot
// read.
var ErrBadRecord = errors.New("bad schema record")

// ReadSchemas returns the schemas recorded for pipeline under the store's
// root, in object name order.
func ReadSchemas(ctx context.Context, store ObjectReader, pipeline string) ([]SchemaRecord, error) {
	var out []SchemaRecord
	prefix := SchemaDir + "/" + pipeline + "-"
	err := store.List(ctx, prefix, func(name string) error {
		if !strings.HasSuffix(name, ".json") {
			return nil
		}
		rc, err := store.Get(ctx, name)
		if err != nil {
			return fmt.Errorf("get %q: %w", name, err)
		}
		defer rc.Close()
		var rec SchemaRecord
		dec := json.NewDecoder(io.LimitReader(rc, 16<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return fmt.Errorf("read %q: %w: %v", name, ErrBadRecord, err)
		}
		if rec.Pipeline != pipeline {
			return nil // another pipeline whose name has this one as prefix
		}
		if _, err := rec.Schema(); err != nil {
			return fmt.Errorf("read %q: %w: %v", name, ErrBadRecord, err)
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read schemas of %q: %w", pipeline, err)
	}
	return out, nil
}
