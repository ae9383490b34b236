package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"

	"github.com/streamd/streamd/internal/outcheck"
	"github.com/streamd/streamd/internal/testenv"
)

// streamdBin is built from ../../../cmd/streamd for these tests.
var streamdBin string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithStreamd(m, &streamdBin)) }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is one streamd process.
type proc struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

// start runs streamd and waits until the sidecar answers /healthz.
func start(t *testing.T, cfg, addr string) *proc {
	t.Helper()
	cmd := exec.Command(streamdBin, "run", "--config", cfg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, out: &out, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			t.Fatalf("streamd exited before it listened: %v\n%s", err, out.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("streamd did not listen on %s within 20s\n%s", addr, out.String())
	return nil
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

func (p *proc) term(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("streamd after SIGTERM: %v\n%s", err, p.out.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("streamd did not stop within 40s of SIGTERM\n%s", p.out.String())
	}
}

const config = `state_dir: %[1]s/state
shutdown_timeout: 20s
pipelines:
  - name: events
    source: {type: http, listen: "%[2]s", wal_segment_bytes: 1MiB}
    schema:
      - {name: id, type: int64}
      - {name: p, type: string}
    window: {max_records: 5000, max_age: 500ms}
    sink: {type: parquet, path: %[1]s/out}
    dead_letter: {path: %[1]s/dlq}
`

// putAll puts records {"id":i,"p":...} for i in [0,n) with PutRecordBatch
// in batches of 500, SDK retries off: a failed batch is retried here until
// acknowledged. Batches retried after an ambiguous failure (sent, no
// answer: the append may have happened) are returned; only their records
// may appear twice.
func putAll(ctx context.Context, cl *firehose.Client, n, workers int, acked *atomic.Int64) (map[int]bool, error) {
	type job struct{ from, to int }
	jobs := make(chan job)
	var mu sync.Mutex
	retried := map[int]bool{}
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				recs := make([]fhtypes.Record, 0, j.to-j.from)
				for i := j.from; i < j.to; i++ {
					recs = append(recs, fhtypes.Record{Data: fmt.Appendf(nil, "{\"id\":%d,\"p\":\"%s\"}\n", i, strings.Repeat("v", i%40))})
				}
				for attempt := 0; ; attempt++ {
					if attempt > 1000 || ctx.Err() != nil {
						errc <- fmt.Errorf("batch %d..%d not acknowledged after %d attempts", j.from, j.to, attempt)
						return
					}
					rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					out, err := cl.PutRecordBatch(rctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("events"), Records: recs})
					cancel()
					if err == nil {
						if aws.ToInt32(out.FailedPutCount) != 0 || len(out.RequestResponses) != len(recs) {
							errc <- fmt.Errorf("batch %d..%d: FailedPutCount %d, %d responses", j.from, j.to, aws.ToInt32(out.FailedPutCount), len(out.RequestResponses))
							return
						}
						acked.Add(int64(len(recs)))
						break
					}
					// Certainly not appended: nobody listened, or an error
					// status came back. A 200 whose body was cut (SIGKILL
					// mid-response, a client timeout while reading it) also
					// surfaces as a ResponseError, but the append happened.
					var re *awshttp.ResponseError
					certain := strings.Contains(err.Error(), "connection refused") || (errors.As(err, &re) && re.HTTPStatusCode() >= 400)
					if !certain {
						mu.Lock()
						for i := j.from; i < j.to; i++ {
							retried[i] = true
						}
						mu.Unlock()
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	for i := 0; i < n; i += 500 {
		jobs <- job{i, min(i+500, n)}
	}
	close(jobs)
	wg.Wait()
	close(errc)
	return retried, <-errc
}

// The AWS SDK Firehose client puts 100k records into the sidecar while
// streamd is SIGKILLed twice: every acknowledged record is in the Parquet
// output, and a record appears twice only when its request was retried
// after its acknowledgement was lost.
func TestFirehoseIntoSidecarSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "streamd.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, config, dir, addr), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, cfg, addr)
	cl := firehose.New(firehose.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDSIDECAR", "secret", ""),
		HTTPClient:  awshttp.NewBuildableClient(), RetryMaxAttempts: 1,
	})
	const total = 100000
	var acked atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type result struct {
		retried map[int]bool
		err     error
	}
	done := make(chan result, 1)
	go func() {
		r, err := putAll(ctx, cl, total, 4, &acked)
		done <- result{r, err}
	}()
	kills := 0
	for _, at := range []int64{30000, 65000} {
		for acked.Load() < at && ctx.Err() == nil {
			time.Sleep(2 * time.Millisecond)
		}
		p.kill(t)
		kills++
		p = start(t, cfg, addr)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	// Everything acknowledged is durable; wait until the pipeline wrote it.
	deadline := time.Now().Add(60 * time.Second)
	var rows []outcheck.Row
	for {
		var err error
		if rows, err = outcheck.ReadParquetDir(filepath.Join(dir, "out")); err != nil {
			t.Fatal(err)
		}
		if len(rows) >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	p.term(t)
	if rows, err := outcheck.ReadParquetDir(filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	} else {
		counts := map[string]int{}
		for _, r := range rows {
			counts[r["id"]]++
		}
		dups, allowed := 0, 0
		for i := 0; i < total; i++ {
			id := fmt.Sprint(i)
			c := counts[id]
			switch {
			case c == 0:
				t.Fatalf("acknowledged record %d is not in the output (%d rows)", i, len(rows))
			case c > 1 && !res.retried[i]:
				t.Fatalf("record %d written %d times, though its request was never retried after a lost answer", i, c)
			case c > 1:
				dups += c - 1
			}
			if res.retried[i] {
				allowed++
			}
		}
		if len(counts) != total {
			t.Fatalf("output holds %d distinct ids, want %d", len(counts), total)
		}
		t.Logf("%d SIGKILLs; %d rows; %d records in requests retried after a lost answer; %d duplicates written", kills, len(rows), allowed, dups)
	}
	if tmp, err := outcheck.TempFiles(filepath.Join(dir, "out")); err != nil || len(tmp) > 0 {
		t.Fatalf("temporary files left visible: %v %v", tmp, err)
	}
	dls, err := outcheck.ReadDeadLetters(filepath.Join(dir, "dlq"))
	if err == nil && len(dls) > 0 {
		t.Fatalf("%d dead letters, want none: first %+v", len(dls), dls[0])
	}
}
