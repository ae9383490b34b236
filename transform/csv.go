package transform

import (
	"strconv"

	"github.com/streamd/streamd"
)

// splitCSV splits one CSV line into fields per RFC 4180 (a quoted field may
// hold commas and doubled quotes, but not a line break). The fields are
// left in w.fields as spans of the returned data, which is line itself or,
// when a field holds doubled quotes, w.csvBuf.
func (w *worker) splitCSV(line []byte) ([]byte, string) {
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	w.fields = w.fields[:0]
	data := line
	copied := false
	i := 0
	for {
		if i < len(line) && line[i] == '"' {
			i++
			start := i
			esc := false
			for {
				for i < len(line) && line[i] != '"' {
					i++
				}
				if i >= len(line) {
					return nil, "malformed CSV at byte " + strconv.Itoa(start-1) + ": unterminated quoted field"
				}
				if i+1 < len(line) && line[i+1] == '"' {
					esc = true
					i += 2
					continue
				}
				break
			}
			end := i
			i++ // closing quote
			t := token{kind: kString, quoted: true, start: int32(start), end: int32(end)}
			if esc {
				if !copied {
					w.csvBuf = append(w.csvBuf[:0], line...)
					data = w.csvBuf
					copied = true
				}
				s := len(data)
				for k := start; k < end; k++ {
					data = append(data, line[k])
					if line[k] == '"' {
						k++
					}
				}
				w.csvBuf = data
				t.start, t.end = int32(s), int32(len(data))
			}
			w.fields = append(w.fields, t)
			if i < len(line) && line[i] != ',' {
				return nil, "malformed CSV at byte " + strconv.Itoa(i) + ": unexpected " + strconv.QuoteRune(rune(line[i])) + " after closing quote"
			}
		} else {
			start := i
			for i < len(line) && line[i] != ',' {
				if line[i] == '"' {
					return nil, "malformed CSV at byte " + strconv.Itoa(i) + ": bare '\"' in unquoted field"
				}
				i++
			}
			w.fields = append(w.fields, token{kind: kString, start: int32(start), end: int32(i)})
		}
		if i >= len(line) {
			return data, ""
		}
		i++ // ','
	}
}

// csvHeader maps the fields of a CSV header line to the program's columns.
type csvHeader struct {
	cols [][]int // per header field, the columns it feeds
	err  string
}

func (p *Program) parseHeader(w *worker, header []byte) csvHeader {
	data, msg := w.splitCSV(header)
	if msg != "" {
		return csvHeader{err: "bad CSV header: " + msg}
	}
	if len(w.fields) == 1 && w.fields[0].start == w.fields[0].end {
		return csvHeader{err: "bad CSV header: empty header line"}
	}
	h := csvHeader{cols: make([][]int, len(w.fields))}
	for k, f := range w.fields {
		name := string(trimBlank(data[f.start:f.end]))
		if k == 0 && len(name) >= 3 && name[:3] == "\xef\xbb\xbf" { // UTF-8 byte order mark
			name = name[3:]
		}
		h.cols[k] = p.csvNames[name]
	}
	return h
}

// decodeCSV decodes one CSV line into a new row of b.
func (p *Program) decodeCSV(w *worker, b *streamd.Batch, h *csvHeader, line []byte) string {
	if h.err != "" {
		return h.err
	}
	data, msg := w.splitCSV(line)
	if msg != "" {
		return msg
	}
	if len(w.fields) != len(h.cols) {
		return "malformed CSV: " + strconv.Itoa(len(w.fields)) + " fields, the header has " + strconv.Itoa(len(h.cols))
	}
	toks := w.sc.toks
	clear(toks)
	for k, f := range w.fields {
		if f.start == f.end && !f.quoted {
			continue // empty field: null
		}
		if f.start == f.end {
			// A quoted empty field is an empty string for string columns
			// and null for every other type.
			for _, c := range h.cols[k] {
				if p.cols[c].typ.Kind == streamd.KindString {
					toks[c] = f
				}
			}
			continue
		}
		for _, c := range h.cols[k] {
			toks[c] = f
		}
	}
	return p.appendRow(w, b, data, true)
}
