// Package objstoretest is the acceptance suite every sink.ObjectStore
// implementation passes: put, get, list, overwrite, missing objects,
// invalid names, failed and cancelled puts that leave nothing, a large
// object and concurrent puts.
//
// An implementation's test calls Run with a function that returns a fresh,
// empty store for each subtest.
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/streamd/streamd/sink"
)

// LargeSize is the size of the large object the suite writes: over two
// parts of the smallest S3 multipart part size (5 MiB).
const LargeSize = 12<<20 + 12345

// Run runs the acceptance suite. newStore must return an empty store each
// time it is called; the suite calls it once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) sink.ObjectStore) {
	t.Helper()
	t.Run("PutGet", func(t *testing.T) { testPutGet(t, newStore(t)) })
	t.Run("Missing", func(t *testing.T) { testMissing(t, newStore(t)) })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, newStore(t)) })
	t.Run("List", func(t *testing.T) { testList(t, newStore(t)) })
	t.Run("ListStops", func(t *testing.T) { testListStops(t, newStore(t)) })
	t.Run("InvalidNames", func(t *testing.T) { testInvalidNames(t, newStore(t)) })
	t.Run("FailedPutLeavesNothing", func(t *testing.T) { testFailedPut(t, newStore(t)) })
	t.Run("CancelledPutLeavesNothing", func(t *testing.T) { testCancelledPut(t, newStore(t), 64<<10) })
	t.Run("CancelledLargePutLeavesNothing", func(t *testing.T) { testCancelledPut(t, newStore(t), LargeSize) })
	t.Run("CancelledBeforePut", func(t *testing.T) { testCancelledBefore(t, newStore(t)) })
	t.Run("Large", func(t *testing.T) { testLarge(t, newStore(t)) })
	t.Run("ConcurrentPuts", func(t *testing.T) { testConcurrent(t, newStore(t)) })
}

// RandomBytes returns n bytes from a generator seeded with seed.
func RandomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// MustPut puts data under name and fails the test on error.
func MustPut(t testing.TB, s sink.ObjectStore, name string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), name, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

// MustGet reads the whole object name and fails the test on error.
func MustGet(t testing.TB, s sink.ObjectStore, name string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", name, err)
	}
	return b
}

// MustList returns every name under prefix and fails the test on error.
func MustList(t testing.TB, s sink.ObjectStore, prefix string) []string {
	t.Helper()
	names := []string{}
	if err := s.List(context.Background(), prefix, func(n string) error {
		names = append(names, n)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return names
}

// AssertMissing fails the test unless Get reports sink.ErrNotExist for name.
func AssertMissing(t testing.TB, s sink.ObjectStore, name string) {
	t.Helper()
	rc, err := s.Get(context.Background(), name)
	if err == nil {
		b, _ := io.ReadAll(rc)
		rc.Close()
		t.Fatalf("Get(%q) found an object of %d bytes, want sink.ErrNotExist", name, len(b))
	}
	if !errors.Is(err, sink.ErrNotExist) {
		t.Fatalf("Get(%q) error = %v, want sink.ErrNotExist", name, err)
	}
}

func testPutGet(t *testing.T, s sink.ObjectStore) {
	cases := []struct {
		name string
		data []byte
	}{
		{"top.jsonl", []byte("{\"a\":1}\n")},
		{"a/b/c/deep.parquet", RandomBytes(1, 10000)},
		{"empty", nil},
		{"k=v/date=2024-01-02/part-0.parquet", RandomBytes(2, 333)},
	}
	for _, c := range cases {
		MustPut(t, s, c.name, c.data)
	}
	for _, c := range cases {
		if got := MustGet(t, s, c.name); !bytes.Equal(got, c.data) {
			t.Errorf("Get(%q) = %d bytes, want the %d bytes put", c.name, len(got), len(c.data))
		}
	}
}

func testMissing(t *testing.T, s sink.ObjectStore) {
	AssertMissing(t, s, "nothing")
	AssertMissing(t, s, "no/such/dir/object")
	MustPut(t, s, "dir/obj", []byte("x"))
	AssertMissing(t, s, "dir")
	AssertMissing(t, s, "dir/obj/below")
	AssertMissing(t, s, "dir/ob")
	if got := MustList(t, s, "nothing"); len(got) != 0 {
		t.Errorf("List(nothing) = %q, want none", got)
	}
}

func testOverwrite(t *testing.T, s sink.ObjectStore) {
	MustPut(t, s, "o/x", RandomBytes(3, 5000))
	want := RandomBytes(4, 100)
	MustPut(t, s, "o/x", want)
	if got := MustGet(t, s, "o/x"); !bytes.Equal(got, want) {
		t.Fatalf("after overwrite Get = %d bytes, want the second content (%d bytes)", len(got), len(want))
	}
	if got := MustList(t, s, ""); !slices.Equal(got, []string{"o/x"}) {
		t.Fatalf("List after overwrite = %q, want [o/x]", got)
	}
}

func testList(t *testing.T, s sink.ObjectStore) {
	names := []string{"y", "x/b/c", "x.b", "x/a", "xa", "x/b/a", "a/z/1.parquet"}
	for i, n := range names {
		MustPut(t, s, n, []byte(n+fmt.Sprint(i)))
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a/z/1.parquet", "x.b", "x/a", "x/b/a", "x/b/c", "xa", "y"}},
		{"x", []string{"x.b", "x/a", "x/b/a", "x/b/c", "xa"}},
		{"x/", []string{"x/a", "x/b/a", "x/b/c"}},
		{"x/b", []string{"x/b/a", "x/b/c"}},
		{"x/b/c", []string{"x/b/c"}},
		{"x/b/c/", []string{}},
		{"a/z/", []string{"a/z/1.parquet"}},
		{"q", []string{}},
		{"q/r/", []string{}},
	}
	for _, c := range cases {
		if got := MustList(t, s, c.prefix); !slices.Equal(got, c.want) {
			t.Errorf("List(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
}

func testListStops(t *testing.T, s sink.ObjectStore) {
	for _, n := range []string{"a", "b", "c"} {
		MustPut(t, s, n, []byte(n))
	}
	stop := errors.New("stop here")
	var seen []string
	err := s.List(context.Background(), "", func(n string) error {
		seen = append(seen, n)
		if n == "b" {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("List error = %v, want the callback's error", err)
	}
	if !slices.Equal(seen, []string{"a", "b"}) {
		t.Fatalf("List visited %q, want [a b]", seen)
	}
}

func testInvalidNames(t *testing.T, s sink.ObjectStore) {
	for _, n := range []string{"", ".", "..", "../x", "a/../../x", "/abs", "a//b", "a/", "./a", `a\..\b`} {
		if err := s.Put(context.Background(), n, bytes.NewReader([]byte("x"))); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", n)
		}
		if _, err := s.Get(context.Background(), n); err == nil {
			t.Errorf("Get(%q) succeeded, want an error", n)
		}
	}
	if got := MustList(t, s, ""); len(got) != 0 {
		t.Fatalf("invalid puts left objects: %q", got)
	}
}

// failReader yields n bytes of data, then fails with err.
type failReader struct {
	data []byte
	err  error
}

func (f *failReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func testFailedPut(t *testing.T, s sink.ObjectStore) {
	boom := errors.New("reader broke")
	for _, size := range []int{0, 1000, LargeSize / 2} {
		name := fmt.Sprintf("f/new-%d", size)
		err := s.Put(context.Background(), name, &failReader{data: RandomBytes(5, size), err: boom})
		if !errors.Is(err, boom) {
			t.Fatalf("Put with a failing reader (%d bytes first) = %v, want it to wrap the reader's error", size, err)
		}
		AssertMissing(t, s, name)
	}
	old := RandomBytes(6, 777)
	MustPut(t, s, "f/old", old)
	if err := s.Put(context.Background(), "f/old", &failReader{data: RandomBytes(7, 100), err: boom}); !errors.Is(err, boom) {
		t.Fatalf("failing overwrite = %v, want the reader's error", err)
	}
	if got := MustGet(t, s, "f/old"); !bytes.Equal(got, old) {
		t.Fatalf("a failed overwrite changed the object (%d bytes, want %d)", len(got), len(old))
	}
	if got := MustList(t, s, ""); !slices.Equal(got, []string{"f/old"}) {
		t.Fatalf("List after failed puts = %q, want [f/old]", got)
	}
}

// cancelReader cancels its context once after bytes have been read and
// keeps yielding data, as a slow producer would.
type cancelReader struct {
	r      io.Reader
	after  int
	read   int
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += n
	if c.read >= c.after {
		c.cancel()
	}
	return n, err
}

func testCancelledPut(t *testing.T, s sink.ObjectStore, size int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := RandomBytes(8, size)
	err := s.Put(ctx, "c/obj", &cancelReader{r: bytes.NewReader(data), after: size / 2, cancel: cancel})
	if err == nil {
		t.Fatal("Put with a context cancelled mid-stream succeeded")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Put error = %v, want it to wrap context.Canceled", err)
	}
	AssertMissing(t, s, "c/obj")
	if got := MustList(t, s, ""); len(got) != 0 {
		t.Fatalf("cancelled Put left %q", got)
	}
}

func testCancelledBefore(t *testing.T, s sink.ObjectStore) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Put(ctx, "pre", bytes.NewReader([]byte("x")))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context = %v, want context.Canceled", err)
	}
	AssertMissing(t, s, "pre")
}

func testLarge(t *testing.T, s sink.ObjectStore) {
	data := RandomBytes(9, LargeSize)
	// A reader without Seek or Len: the store must stream it.
	if err := s.Put(context.Background(), "big/obj.parquet", io.MultiReader(bytes.NewReader(data))); err != nil {
		t.Fatalf("Put large: %v", err)
	}
	if got := MustGet(t, s, "big/obj.parquet"); !bytes.Equal(got, data) {
		t.Fatalf("large object read back %d bytes differing from the %d put", len(got), len(data))
	}
}

func testConcurrent(t *testing.T, s sink.ObjectStore) {
	const distinct, same = 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, distinct+same)
	for i := range distinct {
		wg.Go(func() {
			errs <- s.Put(context.Background(), fmt.Sprintf("p/%02d", i), bytes.NewReader(RandomBytes(uint64(100+i), 50000+i)))
		})
	}
	for i := range same {
		wg.Go(func() {
			errs <- s.Put(context.Background(), "p/same", bytes.NewReader(RandomBytes(uint64(200+i), 70000)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Put: %v", err)
		}
	}
	for i := range distinct {
		if got := MustGet(t, s, fmt.Sprintf("p/%02d", i)); !bytes.Equal(got, RandomBytes(uint64(100+i), 50000+i)) {
			t.Errorf("p/%02d differs from what was put", i)
		}
	}
	got := MustGet(t, s, "p/same")
	ok := false
	for i := range same {
		ok = ok || bytes.Equal(got, RandomBytes(uint64(200+i), 70000))
	}
	if !ok {
		t.Errorf("p/same (%d bytes) is none of the contents put concurrently", len(got))
	}
	if names := MustList(t, s, "p/"); len(names) != distinct+1 {
		t.Errorf("List(p/) = %d names, want %d: %q", len(names), distinct+1, names)
	}
}
