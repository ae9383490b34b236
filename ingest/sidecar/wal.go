package sidecar

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamd/streamd"
)

// A WAL position packs a segment number and a byte offset into one int64:
// Position{Offset: segment<<segShift | offset}. Offsets are frame starts.
const (
	segShift = 40
	offMask  = 1<<segShift - 1
	// maxSegment is the largest segment number that fits the packing.
	maxSegment = 1<<(63-segShift) - 1
)

// Frame layout: length (uint32, of the data) | CRC-32C (of time and data) |
// arrival time (int64 µs UTC) | data.
const frameHeader = 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Sentinels of the write-ahead log.
var (
	// ErrLogFull is returned by append when the log would pass its disk
	// budget; the HTTP layer answers 503 with Retry-After.
	ErrLogFull = errors.New("write-ahead log is over its disk budget")
	// ErrClosed is returned by append once the log stopped accepting.
	ErrClosed = errors.New("write-ahead log is closed")
	// ErrCorrupt is returned when a frame fails its checksum where the log
	// was known durable.
	ErrCorrupt = errors.New("write-ahead log is corrupt")
)

func packPos(seg uint64, off int64) streamd.Position {
	return streamd.Position{Offset: int64(seg<<segShift) | off}
}

func unpackPos(p streamd.Position) (seg uint64, off int64) {
	return uint64(p.Offset) >> segShift, p.Offset & offMask
}

func segName(seg uint64) string { return fmt.Sprintf("%010d.wal", seg) }

// segment is one live segment file.
type segment struct {
	num  uint64
	size int64 // durable size (sealed segments: final size)
}

// appendReq is one request's records waiting for the group commit.
type appendReq struct {
	recs  [][]byte
	now   int64 // arrival time µs
	bytes int64 // framed size, reserved against the budget
	done  chan appendResult
}

type appendResult struct {
	pos []streamd.Position
	err error
}

// wal is a segmented write-ahead log with one writer goroutine that
// commits every queued request with one fsync (group commit).
type wal struct {
	dir      string
	segBytes int64
	maxBytes int64
	log      *slog.Logger
	m        *metrics

	used atomic.Int64 // bytes of live segments plus reserved appends

	mu        sync.Mutex
	segs      []segment // live segments in order; the last is active while open
	changed   chan struct{}
	committed streamd.Position // last committed position (hasCommit)
	hasCommit bool
	failed    error // set when a write failed: the log accepts nothing more

	reqs     chan *appendReq
	roll     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	active *os.File
	bw     *bufio.Writer
}

// openWAL recovers the log in dir: it deletes segments entirely before the
// committed position, truncates a torn tail of the last segment, and
// starts a new active segment after every existing one (and after the
// committed position's segment, so a wiped directory never reuses
// positions). It starts the writer goroutine.
func openWAL(dir string, segBytes, maxBytes int64, committed streamd.Position, hasCommit bool, m *metrics, log *slog.Logger) (*wal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	w := &wal{
		dir: dir, segBytes: segBytes, maxBytes: maxBytes, log: log, m: m,
		changed: make(chan struct{}), committed: committed, hasCommit: hasCommit,
		reqs: make(chan *appendReq, 1024), roll: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	nums, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	for i, n := range nums {
		p := filepath.Join(dir, segName(n))
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("open wal: %w", err)
		}
		size := fi.Size()
		if i == len(nums)-1 {
			if size, err = recoverTail(p, size); err != nil {
				return nil, fmt.Errorf("open wal: %w", err)
			}
			if size < fi.Size() {
				log.Warn("truncated a torn tail of the write-ahead log (never acknowledged)",
					slog.String("segment", p), slog.Int64("from", fi.Size()), slog.Int64("to", size))
			}
		}
		w.segs = append(w.segs, segment{num: n, size: size})
		w.used.Add(size)
	}
	next := uint64(1)
	if len(nums) > 0 {
		next = nums[len(nums)-1] + 1
	}
	if hasCommit {
		if cs, _ := unpackPos(committed); cs+1 > next {
			next = cs + 1
		}
	}
	w.gcLocked(true)
	if err := w.newActive(next); err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	w.publishGauges()
	go w.writer()
	return w, nil
}

// listSegments returns the segment numbers in dir, sorted.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var nums []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".wal")
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	return nums, nil
}

// recoverTail scans a segment and truncates it after its last whole,
// checksummed frame; it returns the valid size.
func recoverTail(path string, size int64) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 256<<10)
	var off int64
	var hdr [frameHeader]byte
	var data []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			break
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		if off+frameHeader+n > size {
			break
		}
		if int64(cap(data)) < n {
			data = make([]byte, n)
		}
		data = data[:n]
		if _, err := io.ReadFull(br, data); err != nil {
			break
		}
		if frameCRC(hdr[8:16], data) != binary.LittleEndian.Uint32(hdr[4:8]) {
			break
		}
		off += frameHeader + n
	}
	if off < size {
		if err := f.Truncate(off); err != nil {
			return 0, fmt.Errorf("truncate torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			return 0, fmt.Errorf("sync truncated segment: %w", err)
		}
	}
	return off, nil
}

func frameCRC(timeBytes, data []byte) uint32 {
	c := crc32.Update(0, castagnoli, timeBytes)
	return crc32.Update(c, castagnoli, data)
}

// newActive creates segment num as the active one and syncs the directory.
func (w *wal) newActive(num uint64) error {
	if num > maxSegment {
		return fmt.Errorf("create segment %d: segment numbers exhausted (max %d)", num, maxSegment)
	}
	f, err := os.OpenFile(filepath.Join(w.dir, segName(num)), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	w.mu.Lock()
	w.segs = append(w.segs, segment{num: num})
	w.mu.Unlock()
	w.active = f
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(f, 1<<20)
	} else {
		w.bw.Reset(f)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}

// framedSize is the log bytes that recs take.
func framedSize(recs [][]byte) int64 {
	n := int64(0)
	for _, r := range recs {
		n += frameHeader + int64(len(r))
	}
	return n
}

// reserve admits n bytes against the disk budget.
func (w *wal) reserve(n int64) error {
	for {
		u := w.used.Load()
		if u+n > w.maxBytes {
			return ErrLogFull
		}
		if w.used.CompareAndSwap(u, u+n) {
			return nil
		}
	}
}

// append makes recs durable and returns their positions. It blocks until
// the group commit that carries them has been fsynced.
func (w *wal) append(recs [][]byte) ([]streamd.Position, error) {
	w.mu.Lock()
	failed := w.failed
	w.mu.Unlock()
	if failed != nil {
		return nil, failed
	}
	n := framedSize(recs)
	if err := w.reserve(n); err != nil {
		return nil, err
	}
	r := &appendReq{recs: recs, now: time.Now().UnixMicro(), bytes: n, done: make(chan appendResult, 1)}
	select {
	case <-w.stop:
		w.used.Add(-n)
		return nil, ErrClosed
	default:
	}
	select {
	case w.reqs <- r:
	case <-w.stop:
		w.used.Add(-n)
		return nil, ErrClosed
	}
	res := <-r.done
	return res.pos, res.err
}

// close stops the writer after it committed what is queued and closes the
// active segment.
func (w *wal) close() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

// writer is the group-commit loop.
func (w *wal) writer() {
	defer close(w.done)
	defer func() {
		if w.active != nil {
			_ = w.active.Close()
		}
	}()
	var group []*appendReq
	for {
		group = group[:0]
		select {
		case r := <-w.reqs:
			group = append(group, r)
		case <-w.roll:
			w.maybeRoll()
			continue
		case <-w.stop:
			// Commit what is still queued, then stop.
			for {
				select {
				case r := <-w.reqs:
					group = append(group, r)
					continue
				default:
				}
				break
			}
			if len(group) > 0 {
				w.commit(group)
			}
			return
		}
		// Take everything queued meanwhile into the same fsync.
		var bytes int64 = group[0].bytes
	more:
		for bytes < 32<<20 {
			select {
			case r := <-w.reqs:
				group = append(group, r)
				bytes += r.bytes
			default:
				break more
			}
		}
		w.commit(group)
	}
}

// commit writes and fsyncs one group and answers its requests.
func (w *wal) commit(group []*appendReq) {
	w.mu.Lock()
	failed := w.failed
	w.mu.Unlock()
	if failed != nil {
		for _, r := range group {
			w.used.Add(-r.bytes)
			r.done <- appendResult{err: failed}
		}
		return
	}
	results := make([][]streamd.Position, len(group))
	var hdr [frameHeader]byte
	var err error
	w.mu.Lock()
	cur := w.segs[len(w.segs)-1]
	w.mu.Unlock()
	seg, size := cur.num, cur.size
	var sealed []segment // segments finished during this group
write:
	for i, r := range group {
		results[i] = make([]streamd.Position, len(r.recs))
		binary.LittleEndian.PutUint64(hdr[8:16], uint64(r.now))
		for j, rec := range r.recs {
			fl := frameHeader + int64(len(rec))
			if size > 0 && size+fl > w.segBytes {
				// Seal the active segment (its data durable first) and
				// continue in a new one.
				if err = w.flushSync(); err != nil {
					break write
				}
				if err = w.active.Close(); err != nil {
					err = fmt.Errorf("close segment: %w", err)
					break write
				}
				sealed = append(sealed, segment{num: seg, size: size})
				w.setSize(seg, size)
				if err = w.newActive(seg + 1); err != nil {
					break write
				}
				seg, size = seg+1, 0
			}
			binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(rec)))
			binary.LittleEndian.PutUint32(hdr[4:8], frameCRC(hdr[8:16], rec))
			results[i][j] = packPos(seg, size)
			if _, err = w.bw.Write(hdr[:]); err == nil {
				_, err = w.bw.Write(rec)
			}
			if err != nil {
				err = fmt.Errorf("write segment: %w", err)
				break write
			}
			size += fl
		}
	}
	if err == nil {
		err = w.flushSync()
	}
	if err != nil {
		err = fmt.Errorf("append to wal: %w", err)
		w.log.Error("write-ahead log failed; it accepts nothing more until restarted", slog.String("error", err.Error()))
		w.mu.Lock()
		w.failed = err
		ch := w.changed
		w.changed = make(chan struct{})
		w.mu.Unlock()
		close(ch)
		for _, r := range group {
			w.used.Add(-r.bytes)
			r.done <- appendResult{err: err}
		}
		return
	}
	w.setSize(seg, size)
	w.mu.Lock()
	ch := w.changed
	w.changed = make(chan struct{})
	if len(sealed) > 0 {
		w.gcLocked(false)
	}
	w.mu.Unlock()
	close(ch)
	w.publishGauges()
	for i, r := range group {
		w.m.appended(len(r.recs))
		r.done <- appendResult{pos: results[i]}
	}
}

func (w *wal) flushSync() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write segment: %w", err)
	}
	start := time.Now()
	if err := w.active.Sync(); err != nil {
		return fmt.Errorf("fsync segment: %w", err)
	}
	w.m.fsynced(time.Since(start))
	return nil
}

// setSize publishes seg's durable size.
func (w *wal) setSize(seg uint64, size int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.segs) - 1; i >= 0; i-- {
		if w.segs[i].num == seg {
			w.segs[i].size = size
			return
		}
	}
}

// maybeRoll seals a non-empty active segment that is wholly committed, so
// it can be deleted and the disk budget freed while the log is idle.
func (w *wal) maybeRoll() {
	w.mu.Lock()
	cur := w.segs[len(w.segs)-1]
	covered := w.failed == nil && cur.size > 0 && w.coversLocked(cur)
	w.mu.Unlock()
	if !covered {
		return
	}
	if err := w.active.Close(); err != nil {
		w.log.Warn("close committed segment", slog.String("error", err.Error()))
	}
	if err := w.newActive(cur.num + 1); err != nil {
		err = fmt.Errorf("roll wal: %w", err)
		w.log.Error("write-ahead log failed; it accepts nothing more until restarted", slog.String("error", err.Error()))
		w.mu.Lock()
		w.failed = err
		w.mu.Unlock()
		return
	}
	w.mu.Lock()
	w.gcLocked(false)
	ch := w.changed
	w.changed = make(chan struct{})
	w.mu.Unlock()
	close(ch)
	w.publishGauges()
}

// coversLocked reports whether the committed position is at or past the
// last record of s.
func (w *wal) coversLocked(s segment) bool {
	if !w.hasCommit {
		return false
	}
	cs, coff := unpackPos(w.committed)
	if cs != s.num {
		return cs > s.num
	}
	// The committed record is in s: s is covered when that record is its
	// last, which its frame length tells.
	f, err := os.Open(filepath.Join(w.dir, segName(s.num)))
	if err != nil {
		return false
	}
	defer f.Close()
	var hdr [4]byte
	if _, err := f.ReadAt(hdr[:], coff); err != nil {
		return false
	}
	return coff+frameHeader+int64(binary.LittleEndian.Uint32(hdr[:])) >= s.size
}

// commitTo records that everything up to and including pos is durable
// downstream, deletes the segments that holds only such records and asks
// the writer to seal a wholly committed active segment.
func (w *wal) commitTo(pos streamd.Position) {
	w.mu.Lock()
	if w.hasCommit && pos.Compare(w.committed) <= 0 {
		w.mu.Unlock()
		return
	}
	w.committed, w.hasCommit = pos, true
	w.gcLocked(false)
	cur := w.segs[len(w.segs)-1]
	roll := cur.size > 0 && w.coversLocked(cur)
	w.mu.Unlock()
	w.publishGauges()
	if roll {
		select {
		case w.roll <- struct{}{}:
		default:
		}
	}
}

// gcLocked deletes every sealed segment whose records are all committed.
// At open (allSealed) no segment is active yet.
func (w *wal) gcLocked(allSealed bool) {
	keep := w.segs[:0]
	for i, s := range w.segs {
		sealed := i < len(w.segs)-1 || allSealed
		if sealed && w.coversLocked(s) {
			if err := os.Remove(filepath.Join(w.dir, segName(s.num))); err != nil && !errors.Is(err, os.ErrNotExist) {
				w.log.Warn("delete committed wal segment", slog.Uint64("segment", s.num), slog.String("error", err.Error()))
				keep = append(keep, s)
				continue
			}
			w.used.Add(-s.size)
			continue
		}
		keep = append(keep, s)
	}
	w.segs = keep
}

func (w *wal) publishGauges() {
	w.mu.Lock()
	n := len(w.segs)
	w.mu.Unlock()
	w.m.walState(w.used.Load(), n)
}

// state returns the live segments and a channel closed when they change.
func (w *wal) state() ([]segment, chan struct{}, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]segment(nil), w.segs...), w.changed, w.failed
}
