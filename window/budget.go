package window

import (
	"sync"
)

// Budget is the process-wide memory budget for buffered data (open and
// flushing batches of every lane of every pipeline). Each lane holds an
// Account and reports what it buffers. Past the high-water mark (70% of the
// limit) the budget asks the lane with the largest batch it can still close
// to close it early (ReasonMemory) instead of growing; at the limit, lanes
// stop reading until flushes have freed memory (Full), so memory stays
// bounded whatever the input rate.
type Budget struct {
	limit int64
	high  int64

	mu       sync.Mutex
	total    int64
	accounts map[*Account]struct{}
}

// NewBudget returns a budget of limit bytes; limit ≤ 0 means unlimited.
func NewBudget(limit int64) *Budget {
	return &Budget{limit: limit, high: limit / 10 * 7, accounts: map[*Account]struct{}{}}
}

// Limit returns the budget in bytes (≤ 0: unlimited).
func (b *Budget) Limit() int64 { return b.limit }

// Used returns the bytes all accounts report.
func (b *Budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

// Free returns the bytes left under the limit (a large number when unlimited).
func (b *Budget) Free() int64 {
	if b.limit <= 0 {
		return 1 << 62
	}
	return max(0, b.limit-b.Used())
}

// Full reports whether the buffered bytes reached the limit: a lane should
// not read more until they drop.
func (b *Budget) Full() bool {
	if b.limit <= 0 {
		return false
	}
	return b.Used() >= b.limit
}

// Account is one lane's share of a Budget.
type Account struct {
	b        *Budget
	used     int64 // everything the lane buffers (open + flushing)
	open     int64 // the part in its open batch
	closable bool  // the lane's open batch can still be closed early
	flush    chan struct{}
}

// Account opens an account; Close it when the lane stops.
func (b *Budget) Account() *Account {
	a := &Account{b: b, flush: make(chan struct{}, 1)}
	b.mu.Lock()
	b.accounts[a] = struct{}{}
	b.mu.Unlock()
	return a
}

// Set reports that the lane now buffers n bytes in all, open of them in
// its open batch. Past the high-water mark the closable account with the
// largest open batch is asked to flush (see FlushRequested).
func (a *Account) Set(n, open int64) {
	b := a.b
	b.mu.Lock()
	b.total += n - a.used
	a.used, a.open = n, open
	target := b.target()
	b.mu.Unlock()
	if target != nil {
		select {
		case target.flush <- struct{}{}:
		default:
		}
	}
}

// SetClosable reports whether the lane has an open batch it could close
// early (its window holds records not yet handed on).
func (a *Account) SetClosable(ok bool) {
	b := a.b
	b.mu.Lock()
	a.closable = ok
	target := b.target()
	b.mu.Unlock()
	if target != nil {
		select {
		case target.flush <- struct{}{}:
		default:
		}
	}
}

// target returns the account to ask for an early flush, or nil when below
// the high-water mark or no lane can close anything. b.mu is held.
func (b *Budget) target() *Account {
	if b.limit <= 0 || b.total < b.high {
		return nil
	}
	var best *Account
	for acc := range b.accounts {
		if acc.closable && acc.open > 0 && (best == nil || acc.open > best.open) {
			best = acc
		}
	}
	return best
}

// FlushRequested delivers a value when the budget asks this lane to close
// its open batch early.
func (a *Account) FlushRequested() <-chan struct{} { return a.flush }

// Close releases the account's bytes.
func (a *Account) Close() {
	a.Set(0, 0)
	a.b.mu.Lock()
	delete(a.b.accounts, a)
	a.b.mu.Unlock()
}
