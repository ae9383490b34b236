package procstat_test

import (
	"os"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/procstat"
)

func TestWatchSeesOwnPeak(t *testing.T) {
	stop := procstat.Watch(os.Getpid(), time.Millisecond)
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	time.Sleep(20 * time.Millisecond)
	peak := stop()
	if peak < 64<<20 {
		t.Fatalf("peak %d bytes after touching 64 MiB", peak)
	}
	_ = buf[len(buf)-1]
	if got := procstat.Watch(1<<30, time.Millisecond)(); got != 0 {
		t.Fatalf("a missing process reads as %d", got)
	}
}
