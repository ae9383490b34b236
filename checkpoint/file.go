package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/streamd/streamd"
)

// FileStore is the embedded checkpoint store: one small JSON file per lane
// under dir/<pipeline>/, replaced atomically (write temp, fsync, rename,
// fsync directory) so a crash at any moment leaves either the old or the new
// state. It serves one process; it needs no database.
type FileStore struct {
	dir string

	mu      sync.Mutex
	madeDir map[string]bool
}

// NewFileStore returns a store rooted at dir. It does no I/O; directories
// are created on first write.
func NewFileStore(dir string) *FileStore {
	return &FileStore{dir: dir, madeDir: map[string]bool{}}
}

// laneFile is the on-disk form of a lane's state.
type laneFile struct {
	Lane      string      `json:"lane"`
	Committed string      `json:"committed,omitempty"`
	Intent    *intentFile `json:"intent,omitempty"`
	OpState   []byte      `json:"op_state,omitempty"`
}

type intentFile struct {
	From string `json:"from"`
	To   string `json:"to"`
}

func (s *FileStore) path(pipeline, lane string) string {
	return filepath.Join(s.dir, pipeline, streamd.LaneToken(lane)+".json")
}

// Load implements Store.
func (s *FileStore) Load(_ context.Context, pipeline, lane string) (State, error) {
	st, err := s.read(s.path(pipeline, lane), pipeline)
	if errors.Is(err, fs.ErrNotExist) {
		return State{Lane: lane}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("load checkpoint of lane %q: %w", lane, err)
	}
	if st.Lane != lane {
		return State{}, fmt.Errorf("load checkpoint of lane %q: file belongs to lane %q", lane, st.Lane)
	}
	return st, nil
}

func (s *FileStore) read(path, pipeline string) (State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return State{}, err
	}
	var lf laneFile
	if err := json.Unmarshal(data, &lf); err != nil {
		return State{}, fmt.Errorf("decode %s: %w", path, err)
	}
	st := State{Lane: lf.Lane, OpState: lf.OpState}
	if lf.Committed != "" {
		p, err := streamd.ParsePosition(lf.Committed)
		if err != nil {
			return State{}, fmt.Errorf("decode %s: %w", path, err)
		}
		st.Committed, st.HasCommit = p, true
	}
	if lf.Intent != nil {
		from, err1 := streamd.ParsePosition(lf.Intent.From)
		to, err2 := streamd.ParsePosition(lf.Intent.To)
		if err := errors.Join(err1, err2); err != nil {
			return State{}, fmt.Errorf("decode %s: %w", path, err)
		}
		st.Intent = &streamd.Intent{Pipeline: pipeline, Lane: lf.Lane, From: from, To: to}
	}
	return st, nil
}

// Lanes implements Store.
func (s *FileStore) Lanes(_ context.Context, pipeline string) ([]State, error) {
	dir := filepath.Join(s.dir, pipeline)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list checkpoints of pipeline %q: %w", pipeline, err)
	}
	var out []State
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		st, err := s.read(filepath.Join(dir, e.Name()), pipeline)
		if err != nil {
			return nil, fmt.Errorf("list checkpoints of pipeline %q: %w", pipeline, err)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Lane < out[j].Lane })
	return out, nil
}

// PutIntent implements Store. Putting the intent that is already open is a
// no-op (a redo); any other open intent, or an intent that does not start
// after the committed position, is ErrConflict.
func (s *FileStore) PutIntent(ctx context.Context, in streamd.Intent) error {
	st, err := s.Load(ctx, in.Pipeline, in.Lane)
	if err != nil {
		return fmt.Errorf("put intent: %w", err)
	}
	if st.Intent != nil {
		if st.Intent.From == in.From && st.Intent.To == in.To {
			return nil
		}
		return fmt.Errorf("put intent [%s, %s] on lane %q with [%s, %s] open: %w", in.From, in.To, in.Lane, st.Intent.From, st.Intent.To, ErrConflict)
	}
	if st.HasCommit && in.From.Compare(st.Committed) <= 0 {
		return fmt.Errorf("put intent [%s, %s] on lane %q committed at %s: %w", in.From, in.To, in.Lane, st.Committed, ErrConflict)
	}
	st.Intent = &in
	if err := s.write(in.Pipeline, st); err != nil {
		return fmt.Errorf("put intent: %w", err)
	}
	return nil
}

// Commit implements Store.
func (s *FileStore) Commit(_ context.Context, in streamd.Intent, opState []byte) error {
	st := State{Lane: in.Lane, Committed: in.To, HasCommit: true, OpState: opState}
	if err := s.write(in.Pipeline, st); err != nil {
		return fmt.Errorf("commit lane %q at %s: %w", in.Lane, in.To, err)
	}
	return nil
}

// Close implements Store.
func (s *FileStore) Close() error { return nil }

func (s *FileStore) write(pipeline string, st State) error {
	lf := laneFile{Lane: st.Lane, OpState: st.OpState}
	if st.HasCommit {
		lf.Committed = st.Committed.String()
	}
	if st.Intent != nil {
		lf.Intent = &intentFile{From: st.Intent.From.String(), To: st.Intent.To.String()}
	}
	data, err := json.Marshal(lf)
	if err != nil {
		return err
	}
	dir := filepath.Join(s.dir, pipeline)
	s.mu.Lock()
	made := s.madeDir[dir]
	s.mu.Unlock()
	if !made {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		s.mu.Lock()
		s.madeDir[dir] = true
		s.mu.Unlock()
	}
	return writeFileAtomic(filepath.Join(dir, streamd.LaneToken(st.Lane)+".json"), data)
}

// writeFileAtomic replaces path with data: temp file, fsync, rename, fsync dir.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
