package file

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// lineReader splits a stream into lines, tracking the byte offset of each
// line start and bounding the memory a long line can take.
type lineReader struct {
	r   *bufio.Reader
	max int
	off int64 // offset of the next unread byte
	buf []byte
}

func newLineReader(r io.Reader, max int) *lineReader {
	size := 256 << 10
	if max+1 > size && max < 4<<20 {
		size = max + 1
	}
	return &lineReader{r: bufio.NewReaderSize(r, size), max: max}
}

// next returns the next line without its line break. truncated is true when
// the line exceeded max bytes: line then holds its first max bytes and full
// is its whole length. The returned slice is valid until the next call.
// At the end of the stream it returns (nil, false, 0, io.EOF); a last line
// without a line break is returned with a nil error.
func (lr *lineReader) next() (line []byte, truncated bool, full int, err error) {
	lr.buf = lr.buf[:0]
	for {
		frag, err := lr.r.ReadSlice('\n')
		lr.off += int64(len(frag))
		full += len(frag)
		if len(lr.buf)+len(frag) <= lr.max+2 { // +2: the line break itself
			if len(lr.buf) == 0 && err == nil {
				// Fast path: the whole line is in the reader's buffer.
				line := trimEOL(frag)
				if len(line) <= lr.max {
					return line, false, len(line), nil
				}
				return line[:lr.max], true, len(line), nil
			}
			lr.buf = append(lr.buf, frag...)
		} else if !truncated {
			truncated = true
			room := lr.max - len(lr.buf)
			if room > 0 {
				lr.buf = append(lr.buf, frag[:min(room, len(frag))]...)
			}
		}
		switch {
		case err == nil:
			return lr.finish(truncated, full)
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if full == 0 {
				return nil, false, 0, io.EOF
			}
			return lr.finish(truncated, full)
		default:
			return nil, false, 0, fmt.Errorf("read line: %w", err)
		}
	}
}

func (lr *lineReader) finish(truncated bool, full int) ([]byte, bool, int, error) {
	if !truncated {
		line := trimEOL(lr.buf)
		if len(line) > lr.max {
			return line[:lr.max], true, len(line), nil
		}
		return line, false, len(line), nil
	}
	if len(lr.buf) > lr.max {
		lr.buf = lr.buf[:lr.max]
	}
	return lr.buf, true, full - 1, nil
}

// skipTo reads up to the line starting at off and past it: the reader is
// then positioned at the line after the one at off.
func (lr *lineReader) skipTo(off int64) error {
	if off < lr.off {
		return fmt.Errorf("skip to offset %d: already at %d", off, lr.off)
	}
	if _, err := lr.r.Discard(int(off - lr.off)); err != nil {
		return err
	}
	lr.off = off
	_, _, _, err := lr.next()
	return err
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}
