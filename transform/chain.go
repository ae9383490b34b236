package transform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
)

// ChainOptions configures a Chain (and the metrics of stateless quality
// steps compiled into a Program).
type ChainOptions struct {
	// Pipeline is the pipeline name, the "pipeline" label of the metrics.
	Pipeline string
	// Registerer receives the operators' metrics (default: none are
	// registered; the counters still work). A collector already registered
	// by another Chain of the same registerer is shared.
	Registerer prometheus.Registerer
	// Logger receives state warnings (default: discard).
	Logger *slog.Logger
}

// ErrState is wrapped by Chain.Restore for state bytes it cannot decode.
var ErrState = errors.New("malformed operator state")

// laneState is one stateful stage's state for one lane.
type laneState interface {
	// encode appends the state's compact binary form to dst.
	encode(dst []byte) []byte
	// decode replaces the state with what encode produced.
	decode(src []byte) error
}

// statefulStage is a stage that keeps per-lane state.
type statefulStage interface {
	stage
	// identity names the stage's configuration for matching saved state
	// after a config change: a stage whose identity changed starts empty.
	identity() string
	newState() laneState
}

// Chain runs a list of steps — typically the tail of a pipeline's
// transforms from its first stateful step, see SplitSteps — on each lane's
// batches in position order. It implements pipeline.Operator: the state of
// every stateful step of a lane is saved by Snapshot (committed with each
// batch) and loaded by Restore, so a redone batch is decided exactly as
// the first attempt.
//
// Rows removed by the chain are counted in the batch (Filtered,
// Deduplicated) or dead-lettered with the row rendered as JSON
// (streamd.AppendRowJSON) as raw, so the batch stays reconciled.
type Chain struct {
	in, out *streamd.Schema
	stages  []stage
	ids     []string // per stage: its state identity, "" when stateless
	log     *slog.Logger

	mu    sync.Mutex
	lanes map[string]*chainLane
}

type chainLane struct {
	states []laneState // per stage; nil for stateless stages
	w      worker
	rc     runCtx
	raw    []byte
}

// NewChain compiles steps against the input schema in (the schema of the
// Program that feeds the chain, Program.Schema()). It does no I/O.
func NewChain(in *streamd.Schema, steps []Step, opts ChainOptions) (*Chain, error) {
	stages, out, err := compileSteps(in, steps, opts)
	if err != nil {
		return nil, fmt.Errorf("new chain: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Chain{in: in, out: out, stages: stages, log: log, lanes: map[string]*chainLane{}, ids: make([]string, len(stages))}
	seen := map[string]int{}
	for i, s := range stages {
		if ss, ok := s.(statefulStage); ok {
			id := ss.identity()
			if n := seen[id]; n > 0 {
				c.ids[i] = fmt.Sprintf("%s#%d", id, n)
			} else {
				c.ids[i] = id
			}
			seen[id]++
		}
	}
	return c, nil
}

// Schema returns the schema of the batches the chain emits.
func (c *Chain) Schema() *streamd.Schema { return c.out }

func (c *Chain) lane(name string) *chainLane {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lanes[name]
	if l == nil {
		l = &chainLane{states: make([]laneState, len(c.stages))}
		for i, s := range c.stages {
			if ss, ok := s.(statefulStage); ok {
				l.states[i] = ss.newState()
			}
		}
		c.lanes[name] = l
	}
	return l
}

// stateMagic starts every encoded chain state: "streamd chain state v1".
var stateMagic = []byte("SDC1")

// Restore implements pipeline.Operator: it sets the lane's state from a
// Snapshot. nil state means a fresh lane. A saved stage state whose
// configuration no longer matches (the step was changed or removed) is
// dropped with a warning and that stage starts empty.
func (c *Chain) Restore(lane string, state []byte) error {
	c.Forget(lane)
	l := c.lane(lane)
	if len(state) == 0 {
		return nil
	}
	if len(state) < len(stateMagic) || string(state[:len(stateMagic)]) != string(stateMagic) {
		return fmt.Errorf("restore lane %q: bad header: %w", lane, ErrState)
	}
	rest := state[len(stateMagic):]
	n, k := binary.Uvarint(rest)
	if k <= 0 {
		return fmt.Errorf("restore lane %q: bad stage count: %w", lane, ErrState)
	}
	rest = rest[k:]
	byID := map[string][]byte{}
	for i := uint64(0); i < n; i++ {
		id, r, err := readChunk(rest)
		if err != nil {
			return fmt.Errorf("restore lane %q: stage %d: %w", lane, i, err)
		}
		body, r, err := readChunk(r)
		if err != nil {
			return fmt.Errorf("restore lane %q: stage %d: %w", lane, i, err)
		}
		rest = r
		byID[string(id)] = body
	}
	if len(rest) != 0 {
		return fmt.Errorf("restore lane %q: %d trailing bytes: %w", lane, len(rest), ErrState)
	}
	used := 0
	for i, id := range c.ids {
		if id == "" {
			continue
		}
		body, ok := byID[id]
		if !ok {
			c.log.Warn("no saved state for operator; it starts empty", slog.String("lane", lane), slog.String("operator", id))
			continue
		}
		used++
		if err := l.states[i].decode(body); err != nil {
			return fmt.Errorf("restore lane %q: %s: %w", lane, id, err)
		}
	}
	if used != len(byID) {
		c.log.Warn("saved state of operators no longer configured was dropped", slog.String("lane", lane), slog.Int("dropped", len(byID)-used))
	}
	return nil
}

func readChunk(b []byte) (chunk, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, fmt.Errorf("truncated: %w", ErrState)
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

// Apply implements pipeline.Operator: it runs the steps on the lane's next
// batch, in place.
func (c *Chain) Apply(lane string, b *streamd.Batch) error {
	if b.Schema.Fingerprint() != c.in.Fingerprint() {
		return fmt.Errorf("apply chain on lane %q: batch schema %s, want %s", lane, b.Schema.Fingerprint(), c.in.Fingerprint())
	}
	l := c.lane(lane)
	l.rc.w = &l.w
	l.rc.raw = func(b *streamd.Batch, j int) []byte {
		l.raw = streamd.AppendRowJSON(l.raw[:0], b, j)
		return l.raw
	}
	runStages(&l.rc, c.stages, l.states, b)
	if b.Len() == 0 {
		reshape(b, c.out)
	}
	setEventTime(b)
	return nil
}

// setEventTime takes the row event times from a timestamp column named
// event_time when a step produced one (parse_time).
func setEventTime(b *streamd.Batch) {
	ci := b.Schema.Index("event_time")
	if ci < 0 || b.Schema.Fields[ci].Type.Kind != streamd.KindTimestamp {
		return
	}
	col := &b.Cols[ci]
	for i, ok := range col.Valid {
		if ok {
			b.EventTime[i] = col.Int64[i]
		}
	}
}

// Snapshot implements pipeline.Operator: the lane's state as of the last
// Apply, in a versioned, length-prefixed binary form: "SDC1", the number of
// stateful stages, then per stage its identity and its state, each
// prefixed by its uvarint length.
func (c *Chain) Snapshot(lane string) ([]byte, error) {
	l := c.lane(lane)
	out := append([]byte(nil), stateMagic...)
	n := 0
	for _, id := range c.ids {
		if id != "" {
			n++
		}
	}
	out = binary.AppendUvarint(out, uint64(n))
	var body []byte
	for i, id := range c.ids {
		if id == "" {
			continue
		}
		out = binary.AppendUvarint(out, uint64(len(id)))
		out = append(out, id...)
		body = l.states[i].encode(body[:0])
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	return out, nil
}

// Forget implements pipeline.Operator: it drops the lane's state.
func (c *Chain) Forget(lane string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.lanes, lane)
}

// register registers c on r, or returns the collector already registered
// under the same description.
func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if r == nil {
		return c
	}
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(C); ok {
				return ex
			}
		}
	}
	return c
}
