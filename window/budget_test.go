package window_test

import (
	"testing"

	"github.com/streamd/streamd/window"
)

func TestBudgetAsksLargestToFlushAndFills(t *testing.T) {
	b := window.NewBudget(1000)
	small, big := b.Account(), b.Account()
	small.SetClosable(true)
	big.SetClosable(true)
	small.Set(100, 100)
	big.Set(500, 500)
	if b.Used() != 600 || b.Full() {
		t.Fatalf("used %d full %v", b.Used(), b.Full())
	}
	select {
	case <-big.FlushRequested():
		t.Fatal("flush requested below the high-water mark")
	default:
	}
	small.Set(250, 250) // 750 ≥ 700: the largest account is asked to flush
	select {
	case <-big.FlushRequested():
	default:
		t.Fatal("largest account not asked to flush")
	}
	select {
	case <-small.FlushRequested():
		t.Fatal("a smaller account was asked to flush")
	default:
	}
	// A lane whose batch can't be closed any more (its window is empty, the
	// batch is being flushed) is not asked; the next largest is.
	big.SetClosable(false)
	big.Set(800, 0)
	select {
	case <-small.FlushRequested():
	default:
		t.Fatal("the largest closable account was not asked to flush")
	}
	if !b.Full() || b.Free() != 0 {
		t.Fatalf("at %d of 1000: full %v free %d", b.Used(), b.Full(), b.Free())
	}
	big.Close()
	if b.Used() != 250 || b.Full() {
		t.Fatalf("after close used %d", b.Used())
	}
	if u := window.NewBudget(0); u.Full() || u.Free() < 1<<40 {
		t.Fatal("an unlimited budget is never full")
	}
}
