package streamd

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Position is where a record sits in its lane. Positions are totally ordered
// within a lane and serialise to a stable string (never a float).
//
// Offset is the primary ordinal for sources that number records with an
// integer (a file byte offset, a Kafka offset). Seq carries a decimal
// sequence number for sources whose order key is one (Kinesis and DynamoDB
// Streams sequence numbers, which exceed 64 bits); Sub is the KPL
// sub-sequence inside an aggregated Kinesis record.
type Position struct {
	Offset int64
	Seq    string
	Sub    int32
}

// Compare orders p against q: -1 if p is before q, 0 if equal, +1 if after.
// Seq compares as an unsigned decimal number (shorter is smaller), then
// Offset, then Sub.
func (p Position) Compare(q Position) int {
	if len(p.Seq) != len(q.Seq) {
		if len(p.Seq) < len(q.Seq) {
			return -1
		}
		return 1
	}
	if c := strings.Compare(p.Seq, q.Seq); c != 0 {
		return c
	}
	switch {
	case p.Offset < q.Offset:
		return -1
	case p.Offset > q.Offset:
		return 1
	case p.Sub < q.Sub:
		return -1
	case p.Sub > q.Sub:
		return 1
	}
	return 0
}

// String renders the position in the form ParsePosition reads back:
// "OFFSET" for integer positions, "SEQ" or "SEQ.SUB" for sequence numbers.
// The form is also used in output object names, so it holds only digits and
// dots.
func (p Position) String() string {
	if p.Seq == "" {
		return strconv.FormatInt(p.Offset, 10)
	}
	s := p.Seq
	if p.Offset != 0 {
		s += "~" + strconv.FormatInt(p.Offset, 10)
	}
	if p.Sub != 0 {
		s += "." + strconv.FormatInt(int64(p.Sub), 10)
	}
	return s
}

// ErrBadPosition is returned by ParsePosition for text that String did not produce.
var ErrBadPosition = errors.New("malformed position")

// ParsePosition parses the output of Position.String.
func ParsePosition(s string) (Position, error) {
	if s == "" {
		return Position{}, fmt.Errorf("parse position %q: %w", s, ErrBadPosition)
	}
	if !strings.ContainsAny(s, ".~") && (len(s) < 19 || s[0] == '-') {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Position{}, fmt.Errorf("parse position %q: %w", s, ErrBadPosition)
		}
		return Position{Offset: n}, nil
	}
	var p Position
	if i := strings.IndexByte(s, '.'); i >= 0 {
		n, err := strconv.ParseInt(s[i+1:], 10, 32)
		if err != nil {
			return Position{}, fmt.Errorf("parse position %q: %w", s, ErrBadPosition)
		}
		p.Sub = int32(n)
		s = s[:i]
	}
	if i := strings.IndexByte(s, '~'); i >= 0 {
		n, err := strconv.ParseInt(s[i+1:], 10, 64)
		if err != nil {
			return Position{}, fmt.Errorf("parse position %q: %w", s, ErrBadPosition)
		}
		p.Offset = n
		s = s[:i]
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return Position{}, fmt.Errorf("parse position %q: %w", s, ErrBadPosition)
		}
	}
	p.Seq = s
	return p, nil
}

// Intent is a contiguous, inclusive range of positions of one lane that a
// pipeline is about to write: the unit of a flushed batch, of every output
// name derived for it, and of the commit that follows.
type Intent struct {
	Pipeline string
	Lane     string
	From     Position
	To       Position
}

// Record is one raw record read from a lane.
type Record struct {
	// Data is the record's bytes; it may alias the source's buffer and is
	// valid until the chunk that carries it has been processed.
	Data []byte
	// Pos is the record's position in its lane.
	Pos Position
	// Time is the source's timestamp for the record in µs UTC, 0 if none.
	Time int64
	// Err, when non-empty, says why the source could not deliver the record
	// (for example a line over the size limit); the pipeline dead-letters it
	// with this reason and Data as raw.
	Err string
	// Meta is the record's source metadata (Kafka key, topic, headers),
	// set only by sources asked for it; the decoder fills the matching
	// metadata columns (_kafka_key, ...) from it.
	Meta *RecordMeta
}

// RecordMeta is a message's metadata as a broker keeps it. Byte slices may
// alias the source's buffers, like Record.Data.
type RecordMeta struct {
	Key       []byte
	Topic     string
	Partition int32
	Offset    int64
	// Timestamp is the broker timestamp in µs UTC.
	Timestamp int64
	Headers   []RecordHeader
}

// RecordHeader is one message header.
type RecordHeader struct {
	Key   string
	Value []byte
}

// LaneToken returns a short, file-name-safe, stable token for a lane name,
// used in output object names and state file names. Lane names such as file
// paths or "topic/3" keep their readable tail and gain a hash of the whole
// name, so two lanes never share a token.
func LaneToken(lane string) string {
	h := fnv.New32a()
	h.Write([]byte(lane))
	tail := lane
	if i := strings.LastIndexAny(tail, `/\`); i >= 0 && i < len(tail)-1 {
		tail = tail[i+1:]
	}
	var b strings.Builder
	for _, r := range tail {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return fmt.Sprintf("%s_%08x", b.String(), h.Sum32())
}
