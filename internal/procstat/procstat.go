package procstat

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// Watch polls /proc/<pid>/status every interval until stop is called and
// returns the largest VmHWM seen, in bytes. The last read happens at most
// interval before stop; a process that already exited keeps the last value.
func Watch(pid int, interval time.Duration) (stop func() int64) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peak int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if v := hwm(pid); v > peak {
				peak = v
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// hwm returns VmHWM of pid in bytes, 0 if it can't be read.
func hwm(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Bytes()
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(string(f[0]), 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
