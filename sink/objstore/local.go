package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/streamd/streamd/sink"
)

// ErrInvalidName is returned for an object name that is empty, absolute,
// not clean (".", "..", empty elements, a trailing slash) or that has the
// form of a temporary file.
var ErrInvalidName = errors.New("invalid object name")

// tmpMarker is part of every temporary file name: ".<base>.tmp-<random>".
const tmpMarker = ".tmp-"

// Local is a sink.ObjectStore over a directory. It is safe for concurrent
// use; concurrent Puts of the same name leave one of the contents whole.
type Local struct {
	dir string
}

var _ sink.ObjectStore = (*Local)(nil)

// NewLocal returns a store rooted at dir. It does no I/O: dir is created by
// the first Put.
func NewLocal(dir string) *Local { return &Local{dir: dir} }

// Dir returns the root directory of the store.
func (l *Local) Dir() string { return l.dir }

// CheckName reports whether name is a valid object name: slash-separated,
// relative, clean, not escaping the root and not shaped like a temporary
// file. The error wraps ErrInvalidName.
func CheckName(name string) error {
	if !fs.ValidPath(name) || name == "." || strings.ContainsRune(name, '\\') {
		return fmt.Errorf("check name %q: %w", name, ErrInvalidName)
	}
	if isTemp(path.Base(name)) {
		return fmt.Errorf("check name %q: looks like a temporary file: %w", name, ErrInvalidName)
	}
	return nil
}

func isTemp(base string) bool {
	return strings.HasPrefix(base, ".") && strings.Contains(base, tmpMarker)
}

// tempName returns a temporary name for base that starts with a dot and
// ends in random digits, so it never ends in an output extension.
func tempName(base string) string {
	if len(base) > 200 {
		base = base[:200]
	}
	return "." + base + tmpMarker + strconv.FormatUint(rand.Uint64(), 36)
}

// Put writes the object name atomically: temp file, fsync, rename, fsync of
// the directory. On any error or cancellation the temp file is removed and
// no object appears under name (an existing object is left as it was).
func (l *Local) Put(ctx context.Context, name string, r io.Reader) error {
	if err := l.put(ctx, name, r); err != nil {
		return fmt.Errorf("put object %q: %w", name, err)
	}
	return nil
}

func (l *Local) put(ctx context.Context, name string, r io.Reader) (err error) {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	final := filepath.Join(l.dir, filepath.FromSlash(name))
	dir := filepath.Dir(final)
	if err := mkdirAll(dir); err != nil {
		return err
	}
	var f *os.File
	var tmp string
	for range 10 {
		tmp = filepath.Join(dir, tempName(filepath.Base(final)))
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = io.Copy(f, ctxReader{ctx: ctx, r: r}); err != nil {
		return fmt.Errorf("write temp file: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync temp file: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close temp file: %w", err)
	}
	if err = ctx.Err(); err != nil {
		return err
	}
	if err = os.Rename(tmp, final); err != nil {
		return fmt.Errorf("rename temp file: %w", err)
	}
	// The object is in place; a failed directory sync must not remove it,
	// but is still reported: durability is not guaranteed.
	if serr := syncDir(dir); serr != nil {
		return serr
	}
	return nil
}

// mkdirAll creates dir and its missing parents, fsyncing the parent of
// every directory it creates so the new entries are durable.
func mkdirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("make directory %q: not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("make directory: %w", err)
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("make directory: %w", err)
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	return nil
}

// ctxReader fails reads once ctx is done, so a cancelled Put stops copying.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Get opens the object name. A missing object (or a directory) yields an
// error wrapping sink.ErrNotExist.
func (l *Local) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := CheckName(name); err != nil {
		return nil, fmt.Errorf("get object %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get object %q: %w", name, err)
	}
	f, err := os.Open(filepath.Join(l.dir, filepath.FromSlash(name)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, notDir) {
			return nil, fmt.Errorf("get object %q: %w", name, sink.ErrNotExist)
		}
		return nil, fmt.Errorf("get object %q: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("get object %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("get object %q: %w", name, sink.ErrNotExist)
	}
	return f, nil
}

// List calls fn with every object name starting with prefix (a plain string
// prefix, as in S3), in lexical order, skipping temporary files. It stops at
// the first error fn returns and returns it. A missing root lists nothing.
func (l *Local) List(ctx context.Context, prefix string, fn func(name string) error) error {
	if err := l.list(ctx, prefix, fn); err != nil {
		return fmt.Errorf("list objects %q: %w", prefix, err)
	}
	return nil
}

func (l *Local) list(ctx context.Context, prefix string, fn func(name string) error) error {
	// Walk only the deepest directory the prefix fully names.
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		start = prefix[:i]
		if !fs.ValidPath(start) {
			return nil // no valid name has this prefix
		}
	}
	root := filepath.Join(l.dir, filepath.FromSlash(start))
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() || isTemp(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(l.dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, notDir) {
			return nil
		}
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(n); err != nil {
			return err
		}
	}
	return nil
}

// Sweep removes the temporary files that Puts interrupted by a crash left
// behind, if they were last modified before olderThan ago, and returns how
// many it removed. Temporary names never end in an output extension and
// start with a dot, so readers skip them even before a sweep. Call it at
// start-up with 0 when this process is the directory's only writer.
func (l *Local) Sweep(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan)
	n := 0
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == l.dir {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !isTemp(d.Name()) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed concurrently
		}
		if info.ModTime().Before(cutoff) || olderThan <= 0 {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("sweep temporary files in %s: %w", l.dir, err)
	}
	return n, nil
}
