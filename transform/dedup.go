package transform

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
)

// DedupSpec configures the dedup step.
type DedupSpec struct {
	// Keys are the columns whose values together identify a record.
	Keys []string
	// TTL is how long, in event time, a key is remembered (default 24h).
	// Longer catches later re-deliveries but keeps more keys.
	TTL time.Duration
	// MaxKeys bounds the keys remembered per lane (default 1,000,000,
	// about 40 bytes of memory and 18 bytes of checkpoint state each).
	// When a new key would exceed it, the oldest remembered key is evicted
	// first and counted in streamd_dedup_evictions_total; a re-delivery of
	// an evicted key is then kept.
	MaxKeys int
}

// Dedup defaults.
const (
	DefaultDedupTTL     = 24 * time.Hour
	DefaultDedupMaxKeys = 1_000_000
)

// dedupStage drops rows whose key was seen within the TTL.
//
// Time is event time: each lane keeps a watermark, the largest row event
// time it has seen, and stamps a key with the watermark when the key is
// first seen; the key is forgotten once the watermark has moved on by more
// than TTL. Stamping with the watermark rather than the row's own event
// time keeps re-deliveries of late or out-of-order records (a replay of
// shuffled history) deduplicated, and keeps the stamps in insertion order. Everything depends only
// on the lane's rows in position order and the restored state, so a redo
// decides the same. Keys are remembered as 128-bit FNV-1a hashes of their
// typed values.
type dedupStage struct {
	schema    *streamd.Schema
	keys      []int
	keyNames  string
	ttl       int64 // µs
	maxKeys   int
	evictions prometheus.Counter
}

func compileDedup(in *streamd.Schema, d *DedupSpec, opts ChainOptions) (stage, error) {
	cols, err := lookup(in, d.Keys, "dedup keys")
	if err != nil {
		return nil, err
	}
	ttl := d.TTL
	if ttl == 0 {
		ttl = DefaultDedupTTL
	}
	if ttl < 0 {
		return nil, fmt.Errorf("dedup: negative ttl %v: %w", ttl, ErrSpec)
	}
	maxKeys := d.MaxKeys
	if maxKeys == 0 {
		maxKeys = DefaultDedupMaxKeys
	}
	if maxKeys < 0 {
		return nil, fmt.Errorf("dedup: negative max_keys %d: %w", maxKeys, ErrSpec)
	}
	vec := register(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamd_dedup_evictions_total",
		Help: "Dedup keys evicted before their TTL because the per-lane max_keys bound was reached.",
	}, []string{"pipeline"}))
	return &dedupStage{schema: in, keys: cols, keyNames: strings.Join(d.Keys, ","), ttl: int64(ttl / time.Microsecond),
		maxKeys: maxKeys, evictions: vec.WithLabelValues(opts.Pipeline)}, nil
}

func (s *dedupStage) out() *streamd.Schema { return s.schema }

func (s *dedupStage) identity() string { return "dedup[" + s.keyNames + "]" }

func (s *dedupStage) newState() laneState { return newKeySet() }

// keySet remembers hashed keys with the event time they were first seen,
// in insertion order.
type keySet struct {
	seen map[[16]byte]int64
	fifo []keyEntry
	head int
	wm   int64 // watermark: the largest event time seen
	h    hash.Hash
	key  []byte
	sum  [16]byte
}

type keyEntry struct {
	h [16]byte
	t int64
}

func newKeySet() *keySet {
	return &keySet{seen: map[[16]byte]int64{}, wm: math.MinInt64, h: fnv.New128a()}
}

// hashRow hashes the values of cols in row j.
func (k *keySet) hashRow(b *streamd.Batch, cols []int, j int) [16]byte {
	k.key = appendKey(k.key[:0], b, cols, j)
	k.h.Reset()
	k.h.Write(k.key)
	k.h.Sum(k.sum[:0])
	return k.sum
}

// appendKey appends an unambiguous encoding of the values of cols in row j.
func appendKey(dst []byte, b *streamd.Batch, cols []int, j int) []byte {
	for _, ci := range cols {
		c := &b.Cols[ci]
		if !c.Valid[j] {
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, 1)
		switch streamd.StorageOf(c.Type) {
		case streamd.StoreInt32:
			dst = binary.LittleEndian.AppendUint32(dst, uint32(c.Int32[j]))
		case streamd.StoreInt64:
			dst = binary.LittleEndian.AppendUint64(dst, uint64(c.Int64[j]))
		case streamd.StoreFloat64:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(c.Float64[j]))
		case streamd.StoreBool:
			if c.Bool[j] {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		case streamd.StoreBytes:
			v := c.Bytes.At(j)
			dst = binary.AppendUvarint(dst, uint64(len(v)))
			dst = append(dst, v...)
		}
	}
	return dst
}

// advance moves the watermark to t (if later) and returns the time to
// stamp a row with: t, or the watermark when t is unknown (0).
func (k *keySet) advance(t int64) int64 {
	if t != 0 && t > k.wm {
		k.wm = t
	}
	if t == 0 {
		if k.wm == math.MinInt64 {
			return 0
		}
		return k.wm
	}
	return t
}

// expire forgets keys first seen before the watermark minus ttl.
func (k *keySet) expire(ttl int64) {
	if k.wm == math.MinInt64 {
		return
	}
	limit := k.wm - ttl
	for k.head < len(k.fifo) && k.fifo[k.head].t < limit {
		k.popFront()
	}
}

func (k *keySet) popFront() bool {
	e := k.fifo[k.head]
	k.head++
	live := false
	if t, ok := k.seen[e.h]; ok && t == e.t {
		delete(k.seen, e.h)
		live = true
	}
	if k.head > 1024 && k.head*2 > len(k.fifo) {
		n := copy(k.fifo, k.fifo[k.head:])
		k.fifo = k.fifo[:n]
		k.head = 0
	}
	return live
}

// check reports whether h was seen within ttl of the watermark, and
// remembers it (stamped t) if not. It returns the evictions it caused.
func (k *keySet) check(h [16]byte, t, ttl int64, maxKeys int) (dup bool, evicted int) {
	if first, ok := k.seen[h]; ok && (k.wm == math.MinInt64 || first >= k.wm-ttl) {
		return true, 0
	}
	k.seen[h] = t
	k.fifo = append(k.fifo, keyEntry{h: h, t: t})
	for len(k.seen) > maxKeys && k.head < len(k.fifo) {
		if k.popFront() {
			evicted++
		}
	}
	return false, evicted
}

func (s *dedupStage) apply(rc *runCtx, b *streamd.Batch, st laneState) {
	k := st.(*keySet)
	evicted := 0
	for j := 0; j < b.Len(); j++ {
		k.advance(b.EventTime[j])
		stamp := k.wm
		if stamp == math.MinInt64 {
			stamp = 0
		}
		k.expire(s.ttl)
		dup, ev := k.check(k.hashRow(b, s.keys, j), stamp, s.ttl, s.maxKeys)
		evicted += ev
		if dup {
			rc.deduplicated(b, j)
		}
	}
	if evicted > 0 {
		s.evictions.Add(float64(evicted))
	}
}

// encode: uvarint version 1, varint watermark, uvarint count, then per
// live key in insertion order its 16 hash bytes and the varint of its time.
func (k *keySet) encode(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, 1)
	dst = binary.AppendVarint(dst, k.wm)
	dst = binary.AppendUvarint(dst, uint64(len(k.seen)))
	prev := int64(0)
	for _, e := range k.fifo[k.head:] {
		if t, ok := k.seen[e.h]; !ok || t != e.t {
			continue
		}
		dst = append(dst, e.h[:]...)
		dst = binary.AppendVarint(dst, e.t-prev)
		prev = e.t
	}
	return dst
}

func (k *keySet) decode(src []byte) error {
	*k = *newKeySet()
	v, n := binary.Uvarint(src)
	if n <= 0 || v != 1 {
		return fmt.Errorf("key set version: %w", ErrState)
	}
	src = src[n:]
	wm, n := binary.Varint(src)
	if n <= 0 {
		return fmt.Errorf("key set watermark: %w", ErrState)
	}
	k.wm, src = wm, src[n:]
	cnt, n := binary.Uvarint(src)
	if n <= 0 || cnt > uint64(len(src)) {
		return fmt.Errorf("key set count: %w", ErrState)
	}
	src = src[n:]
	k.fifo = make([]keyEntry, 0, cnt)
	prev := int64(0)
	for i := uint64(0); i < cnt; i++ {
		if len(src) < 17 {
			return fmt.Errorf("key set entry %d truncated: %w", i, ErrState)
		}
		var e keyEntry
		copy(e.h[:], src[:16])
		d, n := binary.Varint(src[16:])
		if n <= 0 {
			return fmt.Errorf("key set entry %d time: %w", i, ErrState)
		}
		e.t = prev + d
		prev = e.t
		src = src[16+n:]
		k.fifo = append(k.fifo, e)
		k.seen[e.h] = e.t
	}
	if len(src) != 0 {
		return fmt.Errorf("key set: %d trailing bytes: %w", len(src), ErrState)
	}
	return nil
}
