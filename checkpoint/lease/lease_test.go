package lease_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/checkpoint/dynamodb"
	"github.com/streamd/streamd/checkpoint/lease"
)

const (
	renew    = 100 * time.Millisecond
	failover = 600 * time.Millisecond
)

func newManager(t *testing.T, table, owner string) *lease.Table {
	t.Helper()
	m, err := lease.NewTable(lease.Config{Client: peer.Client(), Table: table, Pipeline: "p", Owner: owner,
		RenewInterval: renew, FailoverTime: failover})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func shards(n int) []lease.Shard {
	var out []lease.Shard
	for i := 0; i < n; i++ {
		out = append(out, lease.Shard{ID: fmt.Sprintf("shardId-%012d", i)})
	}
	return out
}

// tickUntil ticks every manager once per renew interval (yielding leases as
// a source would: release them at once) until done holds, at most limit.
func tickUntil(t *testing.T, limit time.Duration, ms []*lease.Table, done func() bool) time.Duration {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	for !done() {
		if time.Since(start) > limit {
			var held []string
			for _, m := range ms {
				held = append(held, fmt.Sprintf("%s=%v", m.Owner(), m.Held()))
			}
			t.Fatalf("not reached after %v: %v", limit, held)
		}
		for _, m := range ms {
			ch, err := m.Tick(ctx)
			if err != nil {
				t.Fatalf("tick %s: %v", m.Owner(), err)
			}
			for _, id := range ch.Yield {
				if err := m.Release(ctx, id); err != nil {
					t.Fatalf("release %s: %v", id, err)
				}
			}
		}
		time.Sleep(renew)
	}
	return time.Since(start)
}

func TestBalanceAndFailover(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	a, b := newManager(t, table, "worker-a"), newManager(t, table, "worker-b")
	for _, m := range []*lease.Table{a, b} {
		if err := m.Sync(ctx, shards(4)); err != nil {
			t.Fatal(err)
		}
	}
	// a starts alone and takes everything.
	tickUntil(t, 10*time.Second, []*lease.Table{a}, func() bool { return len(a.Held()) == 4 })
	// b joins: they balance 2/2 through steal requests.
	tickUntil(t, 20*time.Second, []*lease.Table{a, b}, func() bool { return len(a.Held()) == 2 && len(b.Held()) == 2 })
	if overlap := intersect(a.Held(), b.Held()); len(overlap) > 0 {
		t.Fatalf("shards held by both: %v", overlap)
	}
	// Stable: more rounds change nothing.
	for i := 0; i < 5; i++ {
		tickUntil(t, time.Second, []*lease.Table{a, b}, func() bool { return true })
	}
	if len(a.Held()) != 2 || len(b.Held()) != 2 {
		t.Fatalf("balance moved: a=%v b=%v", a.Held(), b.Held())
	}

	// b dies (stops renewing): a takes all within the failover time plus
	// the renew intervals needed to notice.
	took := tickUntil(t, 20*time.Second, []*lease.Table{a}, func() bool { return len(a.Held()) == 4 })
	if limit := failover + 4*renew + 500*time.Millisecond; took > limit {
		t.Errorf("failover took %v, want at most %v", took, limit)
	}
	if took < failover {
		t.Errorf("a took b's leases after %v, before the failover time %v", took, failover)
	}
	// b comes back: its next tick reports every lease lost.
	ch, err := b.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Lost) != 2 {
		t.Fatalf("b's tick after failover: %+v, want 2 lost", ch)
	}
}

func intersect(x, y []string) []string {
	var out []string
	for _, v := range x {
		if slices.Contains(y, v) {
			out = append(out, v)
		}
	}
	return out
}

func TestStolenLeaseIsFenced(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	a, b := newManager(t, table, "worker-a"), newManager(t, table, "worker-b")
	storeA := dynamodb.New(peer.Client(), dynamodb.Config{Table: table})
	storeA.SetFence("p", a)
	storeB := dynamodb.New(peer.Client(), dynamodb.Config{Table: table})
	storeB.SetFence("p", b)
	sh := shards(1)
	if err := a.Sync(ctx, sh); err != nil {
		t.Fatal(err)
	}
	tickUntil(t, 5*time.Second, []*lease.Table{a}, func() bool { return len(a.Held()) == 1 })
	lane := sh[0].ID
	pos := func(n int64) streamd.Position {
		return streamd.Position{Seq: fmt.Sprint(49590338271490256+n) + "000000"}
	}
	first := streamd.Intent{Pipeline: "p", Lane: lane, From: pos(1), To: pos(5)}
	if err := storeA.PutIntent(ctx, first); err != nil {
		t.Fatal(err)
	}
	// b is not the owner: its writes are fenced without touching the table.
	if err := storeB.Commit(ctx, first, nil); !errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("commit by a non-owner = %v, want ErrFenced", err)
	}
	if err := storeA.Commit(ctx, first, nil); err != nil {
		t.Fatal(err)
	}
	// a stalls (a GC pause, a partition) longer than the failover time; b
	// takes the lease.
	second := streamd.Intent{Pipeline: "p", Lane: lane, From: pos(6), To: pos(9)}
	if err := storeA.PutIntent(ctx, second); err != nil {
		t.Fatal(err)
	}
	tickUntil(t, 10*time.Second, []*lease.Table{b}, func() bool { return len(b.Held()) == 1 })
	if err := storeA.Commit(ctx, second, []byte("s")); !errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("commit after the lease was stolen = %v, want ErrFenced", err)
	}
	third := streamd.Intent{Pipeline: "p", Lane: lane, From: pos(10), To: pos(12)}
	if err := storeA.PutIntent(ctx, third); !errors.Is(err, checkpoint.ErrFenced) && !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("intent after the lease was stolen = %v, want ErrFenced", err)
	}
	// The new owner redoes the open intent and commits it.
	st, err := storeB.Load(ctx, "p", lane)
	if err != nil {
		t.Fatal(err)
	}
	if st.Intent == nil || *st.Intent != second || st.Committed != first.To {
		t.Fatalf("state seen by the new owner: %+v", st)
	}
	if err := storeB.PutIntent(ctx, second); err != nil {
		t.Fatal(err)
	}
	if err := storeB.Commit(ctx, second, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, lane); !errors.Is(err, checkpoint.ErrFenced) {
		t.Fatalf("release of a stolen lease = %v, want ErrFenced", err)
	}
}

func TestChildrenAfterParents(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	m := newManager(t, table, "worker-a")
	local := lease.NewLocal()
	// 0 split into 3 and 4; 1 and 2 merged into 5; 5's parent 9 is gone
	// (past retention) and does not block.
	lineage := []lease.Shard{
		{ID: "s0"}, {ID: "s1"}, {ID: "s2"},
		{ID: "s3", Parents: []string{"s0"}}, {ID: "s4", Parents: []string{"s0"}},
		{ID: "s5", Parents: []string{"s1", "s2"}},
		{ID: "s6", Parents: []string{"s9"}},
	}
	for _, tc := range []struct {
		name string
		m    lease.Manager
	}{{"table", m}, {"local", local}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.m.Sync(ctx, lineage); err != nil {
				t.Fatal(err)
			}
			held := func() []string {
				t.Helper()
				if _, err := tc.m.Tick(ctx); err != nil {
					t.Fatal(err)
				}
				return tc.m.Held()
			}
			steps := []struct {
				finish []string
				want   []string
			}{
				{nil, []string{"s0", "s1", "s2", "s6"}},
				{[]string{"s0"}, []string{"s1", "s2", "s3", "s4", "s6"}},
				{[]string{"s1"}, []string{"s2", "s3", "s4", "s6"}}, // s5 waits for both parents
				{[]string{"s2"}, []string{"s3", "s4", "s5", "s6"}},
			}
			for i, st := range steps {
				for _, f := range st.finish {
					if err := tc.m.Finish(ctx, f); err != nil {
						t.Fatalf("step %d: finish %s: %v", i, f, err)
					}
				}
				if got := held(); !slices.Equal(got, st.want) {
					t.Fatalf("step %d: held %v, want %v", i, got, st.want)
				}
			}
			if err := tc.m.Finish(ctx, "s0"); !errors.Is(err, lease.ErrNotHeld) {
				t.Fatalf("finishing a shard not held = %v, want ErrNotHeld", err)
			}
		})
	}
}

func TestNewTableValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  lease.Config
	}{
		{"no client", lease.Config{Table: "t", Pipeline: "p"}},
		{"no table", lease.Config{Client: peer.Client(), Pipeline: "p"}},
		{"no pipeline", lease.Config{Client: peer.Client(), Table: "t"}},
		{"failover too short", lease.Config{Client: peer.Client(), Table: "t", Pipeline: "p", RenewInterval: time.Second, FailoverTime: 2 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := lease.NewTable(tc.cfg); err == nil {
				t.Fatal("NewTable accepted an invalid config")
			}
		})
	}
	m, err := lease.NewTable(lease.Config{Client: peer.Client(), Table: "t", Pipeline: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Owner() == "" || m.Interval() != 2*time.Second {
		t.Fatalf("defaults: owner %q interval %v", m.Owner(), m.Interval())
	}
}
