package kinesis

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"

	"github.com/streamd/streamd"
)

// kplMagic starts every record the Kinesis Producer Library aggregated.
var kplMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// errCorrupt is wrapped by deaggregation errors.
var errCorrupt = errors.New("corrupt KPL aggregate")

// deaggregate appends the user records of one Kinesis record to dst: the
// record itself (Sub 0) when it is not a KPL aggregate, else each
// sub-record with Sub = its index. Sub-records at or before skip (a
// position inside this aggregate that was already committed) are left out.
// A corrupted aggregate (bad MD5 or protobuf) becomes one record with Err
// set and the raw bytes as Data, to be dead-lettered.
func deaggregate(dst []streamd.Record, data []byte, seq string, t int64, skip *streamd.Position) []streamd.Record {
	keep := func(sub int32) bool {
		return skip == nil || (streamd.Position{Seq: seq, Sub: sub}).Compare(*skip) > 0
	}
	if len(data) < len(kplMagic)+md5.Size || !bytes.Equal(data[:len(kplMagic)], kplMagic) {
		if keep(0) {
			dst = append(dst, streamd.Record{Data: data, Pos: streamd.Position{Seq: seq}, Time: t})
		}
		return dst
	}
	body := data[len(kplMagic) : len(data)-md5.Size]
	sum := md5.Sum(body)
	if !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		if keep(0) {
			dst = append(dst, streamd.Record{Data: data, Pos: streamd.Position{Seq: seq}, Time: t,
				Err: fmt.Sprintf("kinesis record %s: %v: MD5 mismatch", seq, errCorrupt)})
		}
		return dst
	}
	subs, err := parseAggregate(body)
	if err != nil {
		if keep(0) {
			dst = append(dst, streamd.Record{Data: data, Pos: streamd.Position{Seq: seq}, Time: t,
				Err: fmt.Sprintf("kinesis record %s: %v", seq, err)})
		}
		return dst
	}
	for i, d := range subs {
		if keep(int32(i)) {
			dst = append(dst, streamd.Record{Data: d, Pos: streamd.Position{Seq: seq, Sub: int32(i)}, Time: t})
		}
	}
	return dst
}

// parseAggregate reads the protobuf AggregatedRecord
//
//	message AggregatedRecord {
//	  repeated string partition_key_table = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes data = 3;
//	  repeated Tag tags = 4;
//	}
//
// and returns each Record's data (aliasing b). Unknown fields are skipped;
// a record index pointing outside the partition key table is an error.
func parseAggregate(b []byte) ([][]byte, error) {
	var keys int
	var out [][]byte
	var pkIdx []uint64
	for len(b) > 0 {
		num, typ, n := tag(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: bad field tag", errCorrupt)
		}
		b = b[n:]
		if num == 3 && typ == 2 {
			msg, rest, err := lengthDelimited(b)
			if err != nil {
				return nil, err
			}
			b = rest
			data, pk, ok, err := parseSubRecord(msg)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("%w: record %d has no partition key index or data", errCorrupt, len(out))
			}
			out = append(out, data)
			pkIdx = append(pkIdx, pk)
			continue
		}
		if num == 1 && typ == 2 {
			keys++
		}
		rest, err := skipField(b, typ)
		if err != nil {
			return nil, err
		}
		b = rest
	}
	for i, k := range pkIdx {
		if k >= uint64(keys) {
			return nil, fmt.Errorf("%w: record %d uses partition key %d of %d", errCorrupt, i, k, keys)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no records", errCorrupt)
	}
	return out, nil
}

// parseSubRecord returns a Record's data and partition key index; ok is
// false when either required field is missing.
func parseSubRecord(b []byte) (data []byte, pk uint64, ok bool, err error) {
	var havePK, haveData bool
	for len(b) > 0 {
		num, typ, n := tag(b)
		if n <= 0 {
			return nil, 0, false, fmt.Errorf("%w: bad field tag in record", errCorrupt)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == 0:
			v, m := uvarint(b)
			if m <= 0 {
				return nil, 0, false, fmt.Errorf("%w: bad partition key index", errCorrupt)
			}
			pk, havePK, b = v, true, b[m:]
		case num == 3 && typ == 2:
			d, rest, err := lengthDelimited(b)
			if err != nil {
				return nil, 0, false, err
			}
			data, haveData, b = d, true, rest
		default:
			rest, err := skipField(b, typ)
			if err != nil {
				return nil, 0, false, err
			}
			b = rest
		}
	}
	return data, pk, havePK && haveData, nil
}

// uvarint decodes a protobuf varint; n <= 0 on malformed input.
func uvarint(b []byte) (v uint64, n int) {
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		v |= uint64(c&0x7f) << (7 * uint(i))
		if c < 0x80 {
			if i == 9 && c > 1 {
				return 0, -1
			}
			return v, i + 1
		}
	}
	return 0, -1
}

// tag decodes a field tag into its number and wire type.
func tag(b []byte) (num uint64, typ uint8, n int) {
	v, n := uvarint(b)
	if n <= 0 || v>>3 == 0 {
		return 0, 0, -1
	}
	return v >> 3, uint8(v & 7), n
}

func lengthDelimited(b []byte) (field, rest []byte, err error) {
	l, n := uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, nil, fmt.Errorf("%w: truncated length-delimited field", errCorrupt)
	}
	return b[n : n+int(l)], b[n+int(l):], nil
}

// skipField skips a field's value of wire type typ.
func skipField(b []byte, typ uint8) ([]byte, error) {
	switch typ {
	case 0:
		_, n := uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: bad varint", errCorrupt)
		}
		return b[n:], nil
	case 1:
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: truncated fixed64", errCorrupt)
		}
		return b[8:], nil
	case 2:
		_, rest, err := lengthDelimited(b)
		return rest, err
	case 5:
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: truncated fixed32", errCorrupt)
		}
		return b[4:], nil
	}
	return nil, fmt.Errorf("%w: unsupported wire type %d", errCorrupt, typ)
}
