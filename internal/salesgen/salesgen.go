package salesgen

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

// Regions are the values of the region column.
var Regions = []string{"EU-WEST", "EU-CENTRAL", "US-EAST", "US-WEST", "AP-SOUTH"}

// Kind says what a generated record is.
type Kind uint8

// The kinds of generated records.
const (
	Good       Kind = iota // written
	Filtered               // quantity <= 0: removed by the filter "quantity > 0"
	Malformed              // not JSON: dead-lettered
	Uncastable             // quantity is not a number: dead-lettered naming quantity
)

// Options shape the generated records; a zero rate means none of that kind.
type Options struct {
	Seed int64
	// FirstID numbers the first record's transaction_id (T%09d).
	FirstID int
	// Every how many records one is filtered / malformed / uncastable.
	FilteredEvery, MalformedEvery, UncastableEvery int
}

// Truth describes one generated record.
type Truth struct {
	ID       string
	Kind     Kind
	Region   string
	Quantity int
	// PriceCents is unit_price × 100.
	PriceCents int64
}

// Write writes n records as JSON lines to w and returns their truths.
func Write(w io.Writer, n int, o Options) ([]Truth, error) {
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x5a1e5))
	truths := make([]Truth, 0, n)
	buf := make([]byte, 0, 256)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("T%09d", o.FirstID+i)
		t := Truth{ID: id, Kind: Good, Region: Regions[rng.IntN(len(Regions))],
			Quantity: 1 + rng.IntN(20), PriceCents: 100 + rng.Int64N(99900)}
		k := i + 1
		switch {
		case o.MalformedEvery > 0 && k%o.MalformedEvery == 0:
			t.Kind = Malformed
		case o.UncastableEvery > 0 && k%o.UncastableEvery == 0:
			t.Kind = Uncastable
		case o.FilteredEvery > 0 && k%o.FilteredEvery == 0:
			t.Kind = Filtered
			t.Quantity = -rng.IntN(3)
		}
		day := 1 + rng.IntN(28)
		buf = buf[:0]
		buf = append(buf, `{"transaction_id":"`...)
		buf = append(buf, id...)
		buf = append(buf, `","customer_id":"C`...)
		buf = strconv.AppendInt(buf, int64(10000+rng.IntN(90000)), 10)
		buf = append(buf, `","product_id":"P`...)
		buf = strconv.AppendInt(buf, int64(100+rng.IntN(900)), 10)
		buf = append(buf, `","quantity":`...)
		if t.Kind == Uncastable {
			buf = append(buf, `"lots"`...)
		} else {
			buf = strconv.AppendInt(buf, int64(t.Quantity), 10)
		}
		buf = append(buf, `,"unit_price":"`...)
		buf = strconv.AppendInt(buf, t.PriceCents/100, 10)
		buf = append(buf, '.')
		buf = append(buf, byte('0'+t.PriceCents%100/10), byte('0'+t.PriceCents%10))
		buf = append(buf, `","transaction_date":"2026-03-`...)
		buf = append(buf, byte('0'+day/10), byte('0'+day%10))
		buf = append(buf, `","event_time":"2026-03-`...)
		buf = append(buf, byte('0'+day/10), byte('0'+day%10))
		buf = append(buf, `T10:11:12.123Z","region":"`...)
		buf = append(buf, t.Region...)
		buf = append(buf, `"}`...)
		if t.Kind == Malformed {
			buf = buf[:len(buf)-9] // cut inside the last string: not JSON
		}
		buf = append(buf, '\n')
		if _, err := w.Write(buf); err != nil {
			return nil, fmt.Errorf("write sales: %w", err)
		}
		truths = append(truths, t)
	}
	return truths, nil
}
