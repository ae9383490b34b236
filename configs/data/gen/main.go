//go:build ignore

// Command gen writes the sample input files under configs/data
// deterministically (the same bytes on every run):
//
//	sales-2026-03-14.jsonl     2,000 JSON lines, about 1% malformed or uncastable
//	sales-2026-03-15.jsonl.gz  1,000 JSON lines, gzip-compressed, about 1% bad
//	sales-2026-03-14.csv       500 CSV rows after a header, about 1% bad
//
// Run it from the repository root:
//
//	go run configs/data/gen/main.go -out configs/data
//
// About 2% of the good records have a quantity of zero or less, so the
// example filter "quantity > 0" has something to drop; the bad ones
// exercise the dead letter (broken JSON, uncastable numbers, impossible
// dates, an int32 overflow, a decimal too wide for decimal(10,2)).
package main

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

var regions = []string{"EU-WEST", "EU-CENTRAL", "US-EAST", "US-WEST", "AP-SOUTH"}

// sale is one generated record, before it is rendered.
type sale struct {
	id, customer, product string
	quantity              int
	cents                 int // unit price in cents
	priceAsString         bool
	date                  string
	eventTime             time.Time
	region                string
}

func newSale(r *rand.Rand, day time.Time, seq, n int) sale {
	// Event times spread evenly over the day, with microsecond jitter.
	step := 24 * time.Hour / time.Duration(n)
	et := day.Add(time.Duration(seq)*step + time.Duration(r.IntN(int(step/time.Microsecond)))*time.Microsecond)
	q := 1 + r.IntN(12)
	if r.IntN(50) == 0 { // ~2%: filtered by "quantity > 0"
		q = -r.IntN(3)
	}
	return sale{
		id:            fmt.Sprintf("tx-%s-%06d", day.Format("20060102"), seq+1),
		customer:      fmt.Sprintf("C%05d", 1+r.IntN(5000)),
		product:       fmt.Sprintf("P%04d", 1+r.IntN(300)),
		quantity:      q,
		cents:         99 + r.IntN(49900),
		priceAsString: r.IntN(20) == 0, // "12.50": a string the cast accepts
		date:          day.Format("2006-01-02"),
		eventTime:     et,
		region:        regions[r.IntN(len(regions))],
	}
}

func price(cents int) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }

func (s sale) json() string {
	p := price(s.cents)
	if s.priceAsString {
		p = strconv.Quote(p)
	}
	return fmt.Sprintf(`{"transaction_id":%q,"customer_id":%q,"product_id":%q,"quantity":%d,"unit_price":%s,"transaction_date":%q,"event_time":%q,"region":%q}`,
		s.id, s.customer, s.product, s.quantity, p, s.date, s.eventTime.Format("2006-01-02T15:04:05.000000Z"), s.region)
}

// badJSON renders s broken in one of several ways, chosen by kind.
func (s sale) badJSON(kind int) string {
	ts := s.eventTime.Format("2006-01-02T15:04:05.000000Z")
	switch kind % 8 {
	case 0: // truncated line
		return fmt.Sprintf(`{"transaction_id":%q,"customer_id":%q,"quantity":`, s.id, s.customer)
	case 1: // quantity is not a number
		return fmt.Sprintf(`{"transaction_id":%q,"customer_id":%q,"product_id":%q,"quantity":"three","unit_price":%s,"transaction_date":%q,"event_time":%q,"region":%q}`,
			s.id, s.customer, s.product, price(s.cents), s.date, ts, s.region)
	case 2: // decimal comma
		return fmt.Sprintf(`{"transaction_id":%q,"customer_id":%q,"product_id":%q,"quantity":%d,"unit_price":"12,99","transaction_date":%q,"event_time":%q,"region":%q}`,
			s.id, s.customer, s.product, s.quantity, s.date, ts, s.region)
	case 3: // impossible date
		return fmt.Sprintf(`{"transaction_id":%q,"customer_id":%q,"product_id":%q,"quantity":%d,"unit_price":%s,"transaction_date":"2026-02-30","event_time":%q,"region":%q}`,
			s.id, s.customer, s.product, s.quantity, price(s.cents), ts, s.region)
	case 4: // not a timestamp
		return fmt.Sprintf(`{"transaction_id":%q,"customer_id":%q,"product_id":%q,"quantity":%d,"unit_price":%s,"transaction_date":%q,"event_time":"yesterday","region":%q}`,
			s.id, s.customer, s.product, s.quantity, price(s.cents), s.date, s.region)
	case 5: // int32 overflow
		return fmt.Sprintf(`{"transaction_id":%q,"customer_id":%q,"product_id":%q,"quantity":3000000000,"unit_price":%s,"transaction_date":%q,"event_time":%q,"region":%q}`,
			s.id, s.customer, s.product, price(s.cents), s.date, ts, s.region)
	case 6: // too wide for decimal(10,2)
		return fmt.Sprintf(`{"transaction_id":%q,"customer_id":%q,"product_id":%q,"quantity":%d,"unit_price":123456789.99,"transaction_date":%q,"event_time":%q,"region":%q}`,
			s.id, s.customer, s.product, s.quantity, s.date, ts, s.region)
	default: // not JSON at all
		return "this line is not JSON " + s.id
	}
}

// writeJSONL writes n lines for day; every 100th line (offset by seed) is bad.
func writeJSONL(w io.Writer, seed uint64, day time.Time, n int) error {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	bw := bufio.NewWriter(w)
	bad := 0
	for i := range n {
		s := newSale(r, day, i, n)
		line := s.json()
		if i%100 == 37 {
			line = s.badJSON(bad)
			bad++
		}
		bw.WriteString(line)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

func writeCSV(w io.Writer, seed uint64, day time.Time, n int) error {
	r := rand.New(rand.NewPCG(seed, 0xc5f))
	cw := csv.NewWriter(w)
	cw.Write([]string{"transaction_id", "customer_id", "product_id", "quantity", "unit_price", "transaction_date", "event_time", "region"})
	for i := range n {
		s := newSale(r, day, i, n)
		row := []string{s.id, s.customer, s.product, strconv.Itoa(s.quantity), price(s.cents), s.date, s.eventTime.Format("2006-01-02T15:04:05.000000Z"), s.region}
		switch i % 100 {
		case 41:
			row[3] = "three" // uncastable quantity
		case 91:
			row = row[:5] // too few fields
		}
		cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

func writeFile(path string, gz bool, fill func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer f.Close()
	var w io.Writer = f
	var zw *gzip.Writer
	if gz {
		zw, _ = gzip.NewWriterLevel(f, gzip.BestCompression) // zero ModTime, no name: reproducible
		w = zw
	}
	if err := fill(w); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return fmt.Errorf("close gzip %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

func main() {
	out := flag.String("out", "configs/data", "directory to write the sample files to")
	flag.Parse()
	d14 := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	d15 := d14.AddDate(0, 0, 1)
	steps := []error{
		writeFile(filepath.Join(*out, "sales-2026-03-14.jsonl"), false, func(w io.Writer) error { return writeJSONL(w, 14, d14, 2000) }),
		writeFile(filepath.Join(*out, "sales-2026-03-15.jsonl.gz"), true, func(w io.Writer) error { return writeJSONL(w, 15, d15, 1000) }),
		writeFile(filepath.Join(*out, "sales-2026-03-14.csv"), false, func(w io.Writer) error { return writeCSV(w, 1403, d14, 500) }),
	}
	for _, err := range steps {
		if err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
