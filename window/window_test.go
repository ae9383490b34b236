package window_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/streamd/streamd/window"
)

func TestOpenClosesAtFirstLimit(t *testing.T) {
	t0 := time.Unix(1000, 0)
	cases := []struct {
		name   string
		policy window.Policy
		add    []int         // raw sizes of records added at t0 + i ms
		step   time.Duration // time between records
		want   window.Reason // reason of the first close
		at     int           // index of the record after which it closes
	}{
		{"Records", window.Policy{MaxRecords: 3, MaxBytes: 1 << 20, MaxAge: time.Hour}, []int{1, 1, 1, 1}, time.Millisecond, window.ReasonRecords, 2},
		{"Bytes", window.Policy{MaxRecords: 100, MaxBytes: 10, MaxAge: time.Hour}, []int{4, 4, 4, 4}, time.Millisecond, window.ReasonBytes, 2},
		{"Age", window.Policy{MaxRecords: 100, MaxBytes: 1 << 20, MaxAge: 5 * time.Second}, []int{1, 1, 1, 1}, 2 * time.Second, window.ReasonAge, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := window.NewOpen(tc.policy)
			for i, n := range tc.add {
				r, closed := o.Add(n, t0.Add(time.Duration(i)*tc.step))
				if closed != (i == tc.at) {
					t.Fatalf("record %d: closed=%v (%s), want close at %d", i, closed, r, tc.at)
				}
				if closed {
					if r != tc.want {
						t.Fatalf("closed for %s, want %s", r, tc.want)
					}
					return
				}
			}
			t.Fatal("never closed")
		})
	}
}

func TestDefaultsAndValidation(t *testing.T) {
	p := window.Policy{}.WithDefaults()
	if p.MaxRecords != window.DefaultMaxRecords || p.MaxBytes != window.DefaultMaxBytes || p.MaxAge != window.DefaultMaxAge {
		t.Fatalf("defaults %+v", p)
	}
	for _, bad := range []window.Policy{{MaxRecords: -1}, {MaxBytes: -1}, {MaxAge: -time.Second}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: want an error", bad)
		}
	}
	o := window.NewOpen(window.Policy{MaxRecords: 2})
	if !o.Empty() || o.Room() != 2 {
		t.Fatalf("new window: empty %v room %d", o.Empty(), o.Room())
	}
	if _, ok := o.Deadline(); ok {
		t.Fatal("an empty window has no deadline")
	}
	o.Add(1, time.Unix(0, 0))
	if d, ok := o.Deadline(); !ok || !d.Equal(time.Unix(0, 0).Add(window.DefaultMaxAge)) {
		t.Fatalf("deadline %v %v", d, ok)
	}
	o.Reset()
	if !o.Empty() {
		t.Fatal("reset window is not empty")
	}
}

// A lane's open batch closes at whichever limit it reaches first.
func ExampleOpen() {
	o := window.NewOpen(window.Policy{MaxRecords: 1000, MaxBytes: 300, MaxAge: time.Minute})
	now := time.Now()
	for i := 0; ; i++ {
		if reason, closed := o.Add(100, now); closed {
			fmt.Println("closed after", i+1, "records:", reason)
			break
		}
	}
	// Output: closed after 3 records: bytes
}
