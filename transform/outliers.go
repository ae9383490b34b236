package transform

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
)

// OutlierSpec configures the outliers step.
type OutlierSpec struct {
	// Column is the numeric column checked (int32, int64, float64 or a
	// decimal of precision ≤ 18).
	Column string
	// Method is bounds (fixed Min/Max, stateless), iqr (outside
	// [Q1−K·IQR, Q3+K·IQR] of the rolling window) or zscore (|v−mean| >
	// K·stddev of the rolling window). Default iqr.
	Method string
	// Min and Max are the bounds method's inclusive limits; either may be nil.
	Min, Max *float64
	// K is the iqr (default 1.5) or zscore (default 3) factor.
	K float64
	// Window is how many of the last inlying values per key the rolling
	// statistics cover (default 100). Larger is steadier but slower to follow
	// a drift, and holds 8 bytes per value per key.
	Window int
	// MinSamples is how many values a key's window needs before a value is
	// judged (default 10, at most Window); until then every value is kept.
	MinSamples int
	// By are the columns that key separate windows (default: one window
	// per lane).
	By []string
	// Action is clip (replace by the nearest bound), drop (counted as
	// filtered), dead_letter (default) or flag (set the bool column
	// "<column>_outlier", which is appended to the schema unless it is
	// declared).
	Action string
	// MaxKeys bounds the keyed windows per lane (default 100,000); beyond
	// it the window of the longest-known key is evicted first.
	MaxKeys int
}

// Outlier defaults.
const (
	DefaultOutlierWindow     = 100
	DefaultOutlierMinSamples = 10
	DefaultOutlierMaxKeys    = 100_000
)

func (o *OutlierSpec) method() string {
	if o.Method == "" {
		return "iqr"
	}
	return strings.ToLower(o.Method)
}

type outlierStage struct {
	in, schema *streamd.Schema
	col        int
	typ        streamd.Type
	by         []int
	method     string
	min, max   float64
	k          float64
	window     int
	minSamples int
	action     string
	flagCol    int  // index of the flag column in schema, or -1
	flagNew    bool // the flag column is appended by this stage
	maxKeys    int
	id         string
	detected   prometheus.Counter
	label      string
}

func compileOutliers(in *streamd.Schema, o *OutlierSpec, opts ChainOptions) (stage, error) {
	cols, err := lookup(in, []string{o.Column}, "outliers", streamd.KindInt32, streamd.KindInt64, streamd.KindFloat64, streamd.KindDecimal)
	if err != nil {
		return nil, err
	}
	s := &outlierStage{in: in, schema: in, col: cols[0], typ: in.Fields[cols[0]].Type, method: o.method(),
		min: math.Inf(-1), max: math.Inf(1), k: o.K, window: o.Window, minSamples: o.MinSamples,
		action: strings.ToLower(o.Action), flagCol: -1, maxKeys: o.MaxKeys, label: fmt.Sprintf("outliers %q", o.Column)}
	if s.typ.Wide() {
		return nil, fmt.Errorf("outliers: column %q is %v; wide decimals are not supported: %w", o.Column, s.typ, ErrSpec)
	}
	if len(o.By) > 0 {
		if s.by, err = lookup(in, o.By, "outliers by"); err != nil {
			return nil, err
		}
	}
	switch s.method {
	case "bounds":
		if o.Min == nil && o.Max == nil {
			return nil, fmt.Errorf("outliers: bounds needs min or max: %w", ErrSpec)
		}
		if o.Min != nil {
			s.min = *o.Min
		}
		if o.Max != nil {
			s.max = *o.Max
		}
		if s.min > s.max {
			return nil, fmt.Errorf("outliers: min %v > max %v: %w", s.min, s.max, ErrSpec)
		}
	case "iqr", "zscore":
		if o.Min != nil || o.Max != nil {
			return nil, fmt.Errorf("outliers: min/max apply to method bounds only: %w", ErrSpec)
		}
		if s.k == 0 {
			s.k = 1.5
			if s.method == "zscore" {
				s.k = 3
			}
		}
		if s.k < 0 || math.IsNaN(s.k) {
			return nil, fmt.Errorf("outliers: k must be positive, got %v: %w", s.k, ErrSpec)
		}
		if s.window == 0 {
			s.window = DefaultOutlierWindow
		}
		if s.window < 2 {
			return nil, fmt.Errorf("outliers: window must be at least 2, got %d: %w", s.window, ErrSpec)
		}
		if s.minSamples == 0 {
			s.minSamples = min(DefaultOutlierMinSamples, s.window)
		}
		if s.minSamples < 2 || s.minSamples > s.window {
			return nil, fmt.Errorf("outliers: min_samples must be in [2, window], got %d: %w", s.minSamples, ErrSpec)
		}
		if s.maxKeys == 0 {
			s.maxKeys = DefaultOutlierMaxKeys
		}
		if s.maxKeys < 0 {
			return nil, fmt.Errorf("outliers: negative max_keys: %w", ErrSpec)
		}
	default:
		return nil, fmt.Errorf("outliers: method %q (want bounds, iqr or zscore): %w", o.Method, ErrSpec)
	}
	switch s.action {
	case "":
		s.action = "dead_letter"
	case "clip", "drop", "dead_letter":
	case "flag":
		name := o.Column + "_outlier"
		if ci := in.Index(name); ci >= 0 {
			if in.Fields[ci].Type.Kind != streamd.KindBool {
				return nil, fmt.Errorf("outliers: flag column %q is %v, want bool: %w", name, in.Fields[ci].Type, ErrSpec)
			}
			s.flagCol = ci
		} else {
			fields := append(append([]streamd.Field(nil), in.Fields...), streamd.Field{Name: name, Type: streamd.Type{Kind: streamd.KindBool}})
			s.schema = &streamd.Schema{Fields: fields}
			s.flagCol, s.flagNew = len(fields)-1, true
		}
	default:
		return nil, fmt.Errorf("outliers: action %q (want clip, drop, dead_letter or flag): %w", o.Action, ErrSpec)
	}
	s.id = fmt.Sprintf("outliers[%s,%s,k=%v,w=%d,by=%s]", o.Column, s.method, s.k, s.window, strings.Join(o.By, ","))
	vec := register(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamd_outliers_detected_total",
		Help: "Values the outliers step found outside their bounds, by column and action.",
	}, []string{"pipeline", "column", "action"}))
	s.detected = vec.WithLabelValues(opts.Pipeline, o.Column, s.action)
	return s, nil
}

func (s *outlierStage) out() *streamd.Schema { return s.schema }

func (s *outlierStage) identity() string { return s.id }

func (s *outlierStage) newState() laneState {
	return &windows{byKey: map[string]*rollWin{}, size: s.window}
}

// value returns row j of the checked column as float64.
func (s *outlierStage) value(c *streamd.Column, j int) float64 {
	switch c.Type.Kind {
	case streamd.KindInt32:
		return float64(c.Int32[j])
	case streamd.KindInt64:
		return float64(c.Int64[j])
	case streamd.KindFloat64:
		return c.Float64[j]
	}
	return float64(c.Int64[j]) / math.Pow10(int(c.Type.Scale))
}

// setBound writes bound into row j, rounded towards the inside of the
// range (up for a lower bound, down for an upper one).
func (s *outlierStage) setBound(c *streamd.Column, j int, bound float64, lower bool) {
	round := math.Floor
	if lower {
		round = math.Ceil
	}
	switch c.Type.Kind {
	case streamd.KindInt32:
		c.Int32[j] = int32(math.Max(math.MinInt32, math.Min(math.MaxInt32, round(bound))))
	case streamd.KindInt64:
		c.Int64[j] = clampInt64(round(bound))
	case streamd.KindFloat64:
		c.Float64[j] = bound
	case streamd.KindDecimal:
		v := clampInt64(round(bound * math.Pow10(int(c.Type.Scale))))
		lim := int64(math.Pow10(int(c.Type.Precision))) - 1
		c.Int64[j] = max(-lim, min(lim, v))
	}
}

func clampInt64(f float64) int64 {
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

func (s *outlierStage) apply(rc *runCtx, b *streamd.Batch, st laneState) {
	n := b.Len()
	var flags []bool
	if s.flagCol >= 0 {
		if s.flagNew {
			flags = make([]bool, n)
		} else {
			flags = make([]bool, n)
			copy(flags, b.Cols[s.flagCol].Bool)
		}
	}
	c := &b.Cols[s.col]
	var ws *windows
	if st != nil && s.method != "bounds" {
		ws = st.(*windows)
	}
	found := 0
	for j := 0; j < n; j++ {
		if !c.Valid[j] {
			continue
		}
		v := s.value(c, j)
		lo, hi := s.min, s.max
		var win *rollWin
		judge := true
		if ws != nil {
			win = ws.get(b, s.by, j, s.maxKeys)
			if len(win.sorted) < s.minSamples {
				judge = false
			} else {
				lo, hi = win.bounds(s.method, s.k)
			}
		}
		if !judge || (v >= lo && v <= hi) {
			if win != nil {
				win.add(v)
			}
			continue
		}
		found++
		switch s.action {
		case "clip":
			if v < lo {
				s.setBound(c, j, lo, true)
			} else {
				s.setBound(c, j, hi, false)
			}
		case "drop":
			rc.filtered(b, j)
		case "dead_letter":
			rc.dead(b, j, fmt.Sprintf("%s: value %s outside [%s, %s] (%s)", s.label,
				strconv.FormatFloat(v, 'g', -1, 64), strconv.FormatFloat(lo, 'g', 6, 64), strconv.FormatFloat(hi, 'g', 6, 64), s.method))
		case "flag":
			flags[j] = true
		}
	}
	if found > 0 {
		s.detected.Add(float64(found))
	}
	if s.flagCol >= 0 {
		fc := streamd.Column{Type: streamd.Type{Kind: streamd.KindBool}, Bool: flags, Valid: make([]bool, n)}
		for j := range fc.Valid {
			fc.Valid[j] = true
		}
		if s.flagNew {
			b.Cols = append(b.Cols, fc)
			b.Schema = s.schema
		} else {
			b.Cols[s.flagCol] = fc
		}
	}
}

// windows holds one lane's rolling windows by key, in creation order.
type windows struct {
	byKey map[string]*rollWin
	order []string
	head  int
	size  int
	key   []byte
}

func (ws *windows) get(b *streamd.Batch, by []int, j, maxKeys int) *rollWin {
	ws.key = appendKey(ws.key[:0], b, by, j)
	if w := ws.byKey[string(ws.key)]; w != nil {
		return w
	}
	k := string(ws.key)
	w := &rollWin{cap: ws.size}
	ws.byKey[k] = w
	ws.order = append(ws.order, k)
	for len(ws.byKey) > maxKeys {
		delete(ws.byKey, ws.order[ws.head])
		ws.order[ws.head] = ""
		ws.head++
	}
	if ws.head > 1024 && ws.head*2 > len(ws.order) {
		ws.order = append(ws.order[:0], ws.order[ws.head:]...)
		ws.head = 0
	}
	return w
}

// rollWin is the last values of one key: ring in arrival order, sorted
// for quantiles.
type rollWin struct {
	ring   []float64
	pos    int // next slot to overwrite once full
	sorted []float64
	cap    int
}

func (w *rollWin) add(v float64) {
	if w.cap == 0 {
		panic("rollWin without capacity")
	}
	if len(w.ring) < w.cap {
		w.ring = append(w.ring, v)
	} else {
		old := w.ring[w.pos]
		w.ring[w.pos] = v
		w.pos = (w.pos + 1) % w.cap
		i := sort.SearchFloat64s(w.sorted, old)
		w.sorted = append(w.sorted[:i], w.sorted[i+1:]...)
	}
	i := sort.SearchFloat64s(w.sorted, v)
	w.sorted = append(w.sorted, 0)
	copy(w.sorted[i+1:], w.sorted[i:])
	w.sorted[i] = v
}

func quantile(s []float64, p float64) float64 {
	h := float64(len(s)-1) * p
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (h-lo)*(s[i+1]-s[i])
}

// bounds returns the inlier range of the window; sums run over the sorted
// values so they do not depend on the ring's layout.
func (w *rollWin) bounds(method string, k float64) (lo, hi float64) {
	if method == "iqr" {
		q1, q3 := quantile(w.sorted, 0.25), quantile(w.sorted, 0.75)
		iqr := q3 - q1
		return q1 - k*iqr, q3 + k*iqr
	}
	var sum float64
	for _, v := range w.sorted {
		sum += v
	}
	mean := sum / float64(len(w.sorted))
	var ss float64
	for _, v := range w.sorted {
		ss += (v - mean) * (v - mean)
	}
	sd := math.Sqrt(ss / float64(len(w.sorted)))
	return mean - k*sd, mean + k*sd
}

// encode: uvarint version 1, uvarint key count, then per key in creation
// order: uvarint key length, key, uvarint value count, values oldest first
// as little-endian float64 bits.
func (ws *windows) encode(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(len(ws.byKey)))
	for _, k := range ws.order[ws.head:] {
		w := ws.byKey[k]
		if w == nil {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(len(k)))
		dst = append(dst, k...)
		dst = binary.AppendUvarint(dst, uint64(len(w.ring)))
		for i := range w.ring {
			v := w.ring[(w.pos+i)%len(w.ring)]
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
		}
	}
	return dst
}

func (ws *windows) decode(src []byte) error {
	*ws = windows{byKey: map[string]*rollWin{}, size: ws.size}
	v, n := binary.Uvarint(src)
	if n <= 0 || v != 1 {
		return fmt.Errorf("windows version: %w", ErrState)
	}
	src = src[n:]
	cnt, n := binary.Uvarint(src)
	if n <= 0 || cnt > uint64(len(src)) {
		return fmt.Errorf("windows count: %w", ErrState)
	}
	src = src[n:]
	for i := uint64(0); i < cnt; i++ {
		key, rest, err := readChunk(src)
		if err != nil {
			return fmt.Errorf("window %d key: %w", i, err)
		}
		nv, n := binary.Uvarint(rest)
		if n <= 0 || nv*8 > uint64(len(rest)-n) || nv > uint64(ws.size) {
			return fmt.Errorf("window %d values: %w", i, ErrState)
		}
		rest = rest[n:]
		w := &rollWin{cap: ws.size}
		for k := uint64(0); k < nv; k++ {
			w.add(math.Float64frombits(binary.LittleEndian.Uint64(rest[8*k:])))
		}
		src = rest[8*nv:]
		ws.byKey[string(key)] = w
		ws.order = append(ws.order, string(key))
	}
	if len(src) != 0 {
		return fmt.Errorf("windows: %d trailing bytes: %w", len(src), ErrState)
	}
	return nil
}
