package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
)

// Follow mode (Config.Follow) tails each configured path as it grows,
// through rotation. The design:
//
//   - The lane is the configured path: the logical file, whatever inode
//     is behind it now.
//   - A generation is one stretch of bytes that starts at offset 0: a new
//     inode behind the path (rename-and-create), or the same inode
//     truncated (copytruncate). Generations are numbered 1, 2, ... per
//     lane and a record's position is Position{Seq: "<generation>",
//     Offset: <byte offset of the line start>}, which orders by
//     generation, then offset.
//   - The Resumer returns only the committed position, so the map from a
//     generation to its file identity (device, inode; for a copytruncated
//     generation also the identity of the copy) is kept in a small state
//     file, <StateDir>/<lane token>.follow.json, written (temp, fsync,
//     rename) before any record of a new generation is handed on.
//
// Rotation by rename: when the path names another inode (or none), the
// old file, still open, is read to its end, given one more poll interval
// for a writer that has not reopened yet, and its last line is handed on
// even without a line break; then the new file starts a new generation.
//
// Copytruncate: when the file is shorter than the offset read so far, a
// sibling whose bytes just before that offset equal the last bytes read
// is taken as the copy and read on from the same offset, as the same
// generation; the truncated file then starts a new generation at 0.
// Lines written between logrotate's copy and its truncate are lost (as
// logrotate documents for copytruncate); without a matching copy, the
// lines of the old generation not read before the truncate are lost too,
// and a warning says so.
//
// Limits: rotated files must stay in the same directory, under a name
// starting with the path's base name, uncompressed, until read (logrotate's
// delaycompress); if the path rotates more than once while streamd is
// down, only the oldest unfinished and the current file are read; a
// copytruncate while streamd is down, or an inode number reused by a new
// file after the old was deleted, is recognised only when the file is then
// shorter than the committed offset (otherwise reading resumes at that
// offset of the new content: no content fingerprint is kept yet); a
// reader that lags so far that the writer refills a truncated file past
// the read offset between two of its reads cannot see the truncation;
// follow mode reads local JSON-lines files only.

// DefaultPollInterval is how often a followed file is checked for growth
// and rotation.
const DefaultPollInterval = 250 * time.Millisecond

// fileID identifies an inode.
type fileID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

func idOf(fi os.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{Dev: uint64(st.Dev), Ino: st.Ino}
	}
	return fileID{}
}

// generation maps one generation to its file.
type generation struct {
	Gen  uint64  `json:"gen"`
	ID   fileID  `json:"id"`
	Copy *fileID `json:"copy,omitempty"` // the copytruncate copy holding its rest
}

// followState is a lane's persisted generation map.
type followState struct {
	Lane string       `json:"lane"`
	Gens []generation `json:"gens"`
}

// keepGens bounds the generations remembered per lane.
const keepGens = 64

func (st *followState) find(gen uint64) *generation {
	for i := range st.Gens {
		if st.Gens[i].Gen == gen {
			return &st.Gens[i]
		}
	}
	return nil
}

// latestFor returns the newest generation living on id, 0 if none.
func (st *followState) latestFor(id fileID) uint64 {
	var g uint64
	for _, x := range st.Gens {
		if x.ID == id && x.Gen > g {
			g = x.Gen
		}
	}
	return g
}

func (st *followState) maxGen() uint64 {
	var g uint64
	for _, x := range st.Gens {
		g = max(g, x.Gen)
	}
	return g
}

// follower tails one lane.
type follower struct {
	s     *Source
	lane  string
	state string // state file path
	st    followState

	gen    uint64
	f      *os.File
	id     fileID
	off    int64  // next byte to read
	tail   []byte // the last bytes read, to recognise a copytruncate copy
	part   []byte // an incomplete last line
	partAt int64
	long   int // bytes of an over-long line beyond part (discarded)
	buf    []byte
}

func (s *Source) follow(ctx context.Context, resume ingest.Resumer, out chan<- ingest.Chunk) error {
	if err := os.MkdirAll(s.cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(s.cfg.Paths))
	for _, p := range s.cfg.Paths {
		fw := &follower{s: s, lane: p, state: filepath.Join(s.cfg.StateDir, streamd.LaneToken(p)+".follow.json"), buf: make([]byte, 256<<10)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer fw.close()
			if err := fw.run(ctx, resume, out); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("follow %s: %w", fw.lane, err)
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func (fw *follower) close() {
	if fw.f != nil {
		fw.f.Close()
		fw.f = nil
	}
}

func (fw *follower) load() error {
	b, err := os.ReadFile(fw.state)
	if errors.Is(err, os.ErrNotExist) {
		fw.st = followState{Lane: fw.lane}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read follow state: %w", err)
	}
	if err := json.Unmarshal(b, &fw.st); err != nil {
		return fmt.Errorf("read follow state %s: %w", fw.state, err)
	}
	if fw.st.Lane != fw.lane {
		return fmt.Errorf("read follow state %s: it belongs to lane %q", fw.state, fw.st.Lane)
	}
	return nil
}

func (fw *follower) save() error {
	if n := len(fw.st.Gens); n > keepGens {
		fw.st.Gens = append([]generation(nil), fw.st.Gens[n-keepGens:]...)
	}
	b, err := json.Marshal(fw.st)
	if err != nil {
		return fmt.Errorf("write follow state: %w", err)
	}
	tmp := fw.state + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write follow state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, fw.state)
	}
	if err == nil {
		if d, derr := os.Open(filepath.Dir(fw.state)); derr == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("write follow state: %w", err)
	}
	return nil
}

// candidates lists the path and its rotated siblings (same directory,
// name starting with the base name), newest first after the path.
func (fw *follower) candidates() []string {
	dir, base := filepath.Split(fw.lane)
	if dir == "" {
		dir = "."
	}
	ents, _ := os.ReadDir(dir)
	type cand struct {
		p   string
		mod time.Time
	}
	var cs []cand
	for _, e := range ents {
		if e.Name() == base || !strings.HasPrefix(e.Name(), base) || e.IsDir() || strings.HasSuffix(e.Name(), ".gz") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			cs = append(cs, cand{filepath.Join(dir, e.Name()), fi.ModTime()})
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].mod.After(cs[j].mod) })
	out := []string{fw.lane}
	for _, c := range cs {
		out = append(out, c.p)
	}
	return out
}

// openID opens the file with identity id among the candidates.
func (fw *follower) openID(id fileID) (*os.File, error) {
	for _, p := range fw.candidates() {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err == nil && idOf(fi) == id {
			return f, nil
		}
		f.Close()
	}
	return nil, os.ErrNotExist
}

// start positions the follower from the committed position.
func (fw *follower) start(ctx context.Context, resume ingest.Resumer) error {
	if err := fw.load(); err != nil {
		return err
	}
	pos, ok, err := resume.Resume(ctx, fw.lane)
	if err != nil {
		return err
	}
	var gen uint64
	skip := false
	var off int64
	if ok {
		if gen, err = strconv.ParseUint(pos.Seq, 10, 64); err != nil || pos.Seq == "" {
			return fmt.Errorf("resume at %s: not a follow-mode position (was the lane read without follow?)", pos)
		}
		off, skip = pos.Offset, true
	} else if len(fw.st.Gens) > 0 {
		gen = fw.st.Gens[0].Gen
	}
	for ; gen > 0 && gen <= fw.st.maxGen(); gen, off, skip = gen+1, 0, false {
		g := fw.st.find(gen)
		if g == nil {
			continue
		}
		f := fw.locate(g)
		if f == nil {
			fw.s.log.Warn("the file of a followed generation is gone; its lines after the committed offset are lost",
				slog.String("lane", fw.lane), slog.Uint64("generation", gen), slog.Int64("offset", off))
			continue
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() < off {
			f.Close()
			fw.s.log.Warn("a followed generation's file is shorter than the committed offset (truncated or a reused inode); skipping it",
				slog.String("lane", fw.lane), slog.Uint64("generation", gen), slog.Int64("offset", off))
			continue
		}
		fw.f, fw.gen, fw.off, fw.id = f, gen, off, g.ID
		if skip {
			return fw.skipLine()
		}
		return nil
	}
	return nil // nothing open: run waits for the path and starts a new generation
}

// locate opens generation g's file: its inode while no later generation
// lives on it, else its copytruncate copy; nil when gone.
func (fw *follower) locate(g *generation) *os.File {
	if fw.st.latestFor(g.ID) == g.Gen {
		if f, err := fw.openID(g.ID); err == nil {
			return f
		}
	}
	if g.Copy != nil {
		if f, err := fw.openID(*g.Copy); err == nil {
			return f
		}
	}
	return nil
}

// advance moves to the next generation already in the state (recorded
// before a restart, so its records keep their positions); it reports
// false when there is none and a new generation must start.
func (fw *follower) advance() bool {
	for _, g := range fw.st.Gens {
		if g.Gen <= fw.gen {
			continue
		}
		if f := fw.locate(&g); f != nil {
			fw.close()
			fw.f, fw.id, fw.gen, fw.off = f, g.ID, g.Gen, 0
			fw.tail, fw.part, fw.long = fw.tail[:0], fw.part[:0], 0
			return true
		}
		fw.s.log.Warn("the file of a followed generation is gone; its lines are lost",
			slog.String("lane", fw.lane), slog.Uint64("generation", g.Gen))
		fw.gen = g.Gen
	}
	return false
}

// skipLine moves past the line starting at fw.off (the committed one).
func (fw *follower) skipLine() error {
	for {
		n, err := fw.f.ReadAt(fw.buf, fw.off)
		if i := bytes.IndexByte(fw.buf[:n], '\n'); i >= 0 {
			fw.off += int64(i + 1)
			fw.tail = append(fw.tail[:0], fw.buf[max(0, i+1-64):i+1]...)
			return nil
		}
		fw.off += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				// The committed line was the last, without a line break
				// (handed on at a rotation).
				return nil
			}
			return fmt.Errorf("skip committed line: %w", err)
		}
	}
}

// newGeneration starts generation max+1 on f (at offset 0) and persists it.
func (fw *follower) newGeneration(f *os.File, id fileID) error {
	g := generation{Gen: fw.st.maxGen() + 1, ID: id}
	fw.st.Gens = append(fw.st.Gens, g)
	if err := fw.save(); err != nil {
		return err
	}
	if fw.f != nil && fw.f != f {
		fw.f.Close()
	}
	fw.f, fw.id, fw.gen, fw.off = f, id, g.Gen, 0
	fw.tail, fw.part, fw.long = fw.tail[:0], fw.part[:0], 0
	return nil
}

func (fw *follower) run(ctx context.Context, resume ingest.Resumer, out chan<- ingest.Chunk) error {
	if err := fw.start(ctx, resume); err != nil {
		return err
	}
	poll := fw.s.cfg.PollInterval
	rotatedAt := time.Time{} // when the path was seen naming another file
	for {
		if fw.f == nil {
			f, err := os.Open(fw.lane)
			if err == nil {
				fi, err := f.Stat()
				if err != nil {
					f.Close()
					return fmt.Errorf("stat: %w", err)
				}
				if err := fw.newGeneration(f, idOf(fi)); err != nil {
					f.Close()
					return err
				}
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("open: %w", err)
			}
		}
		got := false
		if fw.f != nil {
			n, err := fw.readNew(ctx, out)
			if err != nil {
				return err
			}
			got = n > 0
		}
		if got {
			rotatedAt = time.Time{}
			continue
		}
		if fw.f != nil {
			// Nothing new: truncated, rotated, or just idle?
			fi, err := fw.f.Stat()
			if err != nil {
				return fmt.Errorf("stat: %w", err)
			}
			if fi.Size() < fw.off {
				if err := fw.truncated(ctx, out); err != nil {
					return err
				}
				continue
			}
			pfi, err := os.Stat(fw.lane)
			switch {
			case err == nil && idOf(pfi) == fw.id:
				rotatedAt = time.Time{}
			case err != nil && !errors.Is(err, os.ErrNotExist):
				return fmt.Errorf("stat: %w", err)
			case rotatedAt.IsZero():
				// Give a writer that has not reopened yet one more poll.
				rotatedAt = time.Now()
			case time.Since(rotatedAt) >= poll && err == nil:
				if err := fw.flushPartial(ctx, out); err != nil {
					return err
				}
				if fw.advance() {
					rotatedAt = time.Time{}
					continue
				}
				nf, err := os.Open(fw.lane)
				if err != nil {
					continue // rotated again meanwhile: try next round
				}
				nfi, err := nf.Stat()
				if err != nil {
					nf.Close()
					return fmt.Errorf("stat: %w", err)
				}
				if err := fw.newGeneration(nf, idOf(nfi)); err != nil {
					nf.Close()
					return err
				}
				rotatedAt = time.Time{}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// truncated handles a copytruncate: finish the generation from its copy
// if one is found, then start a new generation at offset 0 of the same
// inode.
func (fw *follower) truncated(ctx context.Context, out chan<- ingest.Chunk) error {
	cur, curID := fw.f, fw.id
	if copyF, copyID, ok := fw.findCopy(); ok {
		g := fw.st.find(fw.gen)
		g.Copy = &copyID
		if err := fw.save(); err != nil {
			copyF.Close()
			return err
		}
		fw.f = copyF
		for {
			n, err := fw.readNew(ctx, out)
			if err != nil {
				copyF.Close()
				fw.f = cur
				return err
			}
			if n == 0 {
				break
			}
		}
		err := fw.flushPartial(ctx, out)
		copyF.Close()
		fw.f = cur
		if err != nil {
			return err
		}
	} else {
		fw.s.log.Warn("followed file was truncated (copytruncate) and no copy of it was found; lines written after the last read are lost",
			slog.String("lane", fw.lane), slog.Uint64("generation", fw.gen), slog.Int64("offset", fw.off))
	}
	if fw.advance() {
		return nil
	}
	return fw.newGeneration(cur, curID)
}

// findCopy looks for a sibling holding the truncated generation: at least
// fw.off bytes, the last bytes read found just before fw.off.
func (fw *follower) findCopy() (*os.File, fileID, bool) {
	if len(fw.tail) == 0 && fw.off > 0 {
		return nil, fileID{}, false
	}
	for _, p := range fw.candidates()[1:] {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() < fw.off || idOf(fi) == fw.id {
			f.Close()
			continue
		}
		b := make([]byte, len(fw.tail))
		if _, err := f.ReadAt(b, fw.off-int64(len(b))); err == nil && bytes.Equal(b, fw.tail) {
			return f, idOf(fi), true
		}
		f.Close()
	}
	return nil, fileID{}, false
}

// readNew reads what was appended since fw.off and hands on its complete
// lines; it returns the bytes read.
func (fw *follower) readNew(ctx context.Context, out chan<- ingest.Chunk) (int, error) {
	total := 0
	genSeq := strconv.FormatUint(fw.gen, 10)
	// A tailed file grows a little at a time: start chunk buffers small
	// (records alias whichever array held them when they were added).
	newCB := func() *chunkBuilder { return &chunkBuilder{lane: fw.lane, buf: make([]byte, 0, 64<<10)} }
	cb := newCB()
	limit := fw.s.cfg.MaxRecordSize
	flush := func() error {
		if len(cb.recs) == 0 {
			return nil
		}
		err := send(ctx, out, cb.finish(false))
		cb = newCB()
		return err
	}
	for {
		// A file shorter than what was read was truncated: stop here so
		// the caller handles it before the writer refills past fw.off.
		if fi, err := fw.f.Stat(); err == nil && fi.Size() < fw.off {
			return total, flush()
		}
		n, err := fw.f.ReadAt(fw.buf, fw.off)
		if n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				return total, fmt.Errorf("read: %w", err)
			}
			return total, flush()
		}
		data := fw.buf[:n]
		start := fw.off
		fw.off += int64(n)
		total += n
		fw.tail = append(fw.tail, data[max(0, len(data)-64):]...)
		if len(fw.tail) > 64 {
			fw.tail = append(fw.tail[:0], fw.tail[len(fw.tail)-64:]...)
		}
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				if len(fw.part) == 0 && fw.long == 0 {
					fw.partAt = start
				}
				fw.appendPart(data, limit)
				break
			}
			line := data[:i]
			at := start
			if len(fw.part) > 0 || fw.long > 0 {
				fw.appendPart(line, limit)
				line, at = fw.part, fw.partAt
			}
			fw.emit(cb, genSeq, line, at, limit)
			fw.part, fw.long = fw.part[:0], 0
			start += int64(i + 1)
			data = data[i+1:]
			if len(cb.recs) >= fw.s.cfg.ChunkRecords || len(cb.buf) >= chunkBytes {
				if err := flush(); err != nil {
					return total, err
				}
			}
		}
	}
}

func (fw *follower) appendPart(b []byte, limit int) {
	room := limit + 1 - len(fw.part) // keep one byte past max to know it is over
	if room > 0 {
		k := min(room, len(b))
		fw.part = append(fw.part, b[:k]...)
		b = b[k:]
	}
	fw.long += len(b)
}

// emit adds one line (without its break) at offset at.
func (fw *follower) emit(cb *chunkBuilder, gen string, line []byte, at int64, limit int) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	full := len(line) + fw.long
	if full <= limit && len(bytes.TrimSpace(line)) == 0 {
		return
	}
	if full > limit {
		line = line[:min(len(line), limit)]
	}
	rec := cb.add(line, at)
	rec.Pos.Seq = gen
	if full > limit {
		rec.Err = fmt.Sprintf("record of %d bytes exceeds max_record_size %d bytes (raw holds its first %d bytes)", full, limit, len(line))
	}
}

// flushPartial hands on a generation's last line that never got a line
// break (the file was rotated away).
func (fw *follower) flushPartial(ctx context.Context, out chan<- ingest.Chunk) error {
	if len(fw.part) == 0 && fw.long == 0 {
		return nil
	}
	cb := newChunkBuilder(fw.lane, nil)
	fw.emit(cb, strconv.FormatUint(fw.gen, 10), fw.part, fw.partAt, fw.s.cfg.MaxRecordSize)
	fw.part, fw.long = fw.part[:0], 0
	if len(cb.recs) == 0 {
		return nil
	}
	return send(ctx, out, cb.finish(false))
}
