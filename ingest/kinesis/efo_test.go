package kinesis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/eventstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/kinesis"
	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pipeline"
	"github.com/streamd/streamd/window"
)

// fanOutFake is a protocol-level fake of the Kinesis API (awsJson1.1 over
// HTTP/1.1) for one stream with one shard (and, with withChild, the one
// child it was resharded into once it closed): ListShards,
// DescribeStreamSummary, RegisterStreamConsumer, DescribeStreamConsumer
// and SubscribeToShard, whose response is the binary event stream
// (initial-response, then SubscribeToShardEvent messages, and exception
// messages when told to fail). kinesalite has no enhanced fan-out.
type fanOutFake struct {
	records    [][]byte
	perEvent   int           // records per event
	closeEvery int           // events per subscription before it ends (0: lifetime only)
	failAfter  int           // send an exception once the subscription reached this record (0: never)
	lifetime   time.Duration // a subscription's longest life (Kinesis: 5 minutes)
	trimmed    int           // records before this one are past retention
	child      [][]byte      // records of the child shard (withChild); all visible

	mu        sync.Mutex
	visible   int // records readable; the shard is closed once all are
	failed    bool
	starts    []string // every subscription's starting position, "TYPE SEQ"
	ends      int      // ChildShards events sent
	childSubs int      // subscriptions to the child shard
	onChild   func()   // called (holding mu) at the first subscription to the child
	describes int
	consumer  bool // registered
}

const (
	fakeShard    = "shardId-000000000000"
	fakeChild    = "shardId-000000000001"
	fakeStream   = "efo"
	fakeStreamAR = "arn:aws:kinesis:us-east-1:000000000000:stream/efo"
	fakeConsumer = "arn:aws:kinesis:us-east-1:000000000000:stream/efo/consumer/c:1"
)

// wholeHashRange is the hash key range of the fake's shards: all of it.
var wholeHashRange = map[string]string{"StartingHashKey": "0", "EndingHashKey": "340282366920938463463374607431768211455"}

func fakeSeq(i int) string { return fmt.Sprintf("4960000000000000000000000000000000000000%014d", i) }

func newFanOutFake(n int) *fanOutFake {
	f := &fanOutFake{perEvent: 7, lifetime: time.Second, visible: n}
	for i := 0; i < n; i++ {
		b, _ := json.Marshal(event{K: "key-00", N: int64(i)})
		f.records = append(f.records, b)
	}
	return f
}

// withChild makes the shard's end a reshard into a child shard holding m
// more records of the same key (n continues from the parent's): the child
// is listed with the parent as its parent.
func (f *fanOutFake) withChild(m int) *fanOutFake {
	for i := 0; i < m; i++ {
		b, _ := json.Marshal(event{K: "key-00", N: int64(len(f.records) + i)})
		f.child = append(f.child, b)
	}
	return f
}

func (f *fanOutFake) setVisible(n int) {
	f.mu.Lock()
	f.visible = n
	f.mu.Unlock()
}

func (f *fanOutFake) snapshot() (starts []string, ends, describes int, failed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.starts...), f.ends, f.describes, f.failed
}

func (f *fanOutFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var in struct {
		ConsumerARN, ConsumerName, ShardId, StreamARN string
		StartingPosition                              struct{ Type, SequenceNumber string }
	}
	if err := json.Unmarshal(body, &in); err != nil {
		fakeError(w, "SerializationException", err.Error())
		return
	}
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "Kinesis_20131202.")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch op {
	case "ListShards":
		shards := []any{map[string]any{"ShardId": fakeShard,
			"HashKeyRange":        wholeHashRange,
			"SequenceNumberRange": map[string]string{"StartingSequenceNumber": fakeSeq(0)}}}
		if f.child != nil {
			shards = append(shards, map[string]any{"ShardId": fakeChild, "ParentShardId": fakeShard,
				"HashKeyRange":        wholeHashRange,
				"SequenceNumberRange": map[string]string{"StartingSequenceNumber": fakeSeq(0)}})
		}
		fakeJSON(w, map[string]any{"Shards": shards})
	case "DescribeStreamSummary":
		fakeJSON(w, map[string]any{"StreamDescriptionSummary": map[string]any{"StreamName": fakeStream, "StreamARN": fakeStreamAR,
			"StreamStatus": "ACTIVE", "RetentionPeriodHours": 24, "StreamCreationTimestamp": 1.7e9, "EnhancedMonitoring": []any{}, "OpenShardCount": 1}})
	case "RegisterStreamConsumer":
		if in.StreamARN != fakeStreamAR || in.ConsumerName != "c" {
			fakeError(w, "ResourceNotFoundException", "no such stream")
			return
		}
		if f.consumer {
			fakeError(w, "ResourceInUseException", "consumer exists")
			return
		}
		f.consumer = true
		fakeJSON(w, map[string]any{"Consumer": map[string]any{"ConsumerName": "c", "ConsumerARN": fakeConsumer, "ConsumerStatus": "CREATING", "ConsumerCreationTimestamp": 1.7e9}})
	case "DescribeStreamConsumer":
		if !f.consumer || in.ConsumerName != "c" {
			fakeError(w, "ResourceNotFoundException", "no such consumer")
			return
		}
		f.describes++
		status := "ACTIVE"
		if f.describes == 1 {
			status = "CREATING"
		}
		fakeJSON(w, map[string]any{"ConsumerDescription": map[string]any{"ConsumerName": "c", "ConsumerARN": fakeConsumer, "ConsumerStatus": status,
			"ConsumerCreationTimestamp": 1.7e9, "StreamARN": fakeStreamAR}})
	case "SubscribeToShard":
		child := in.ShardId == fakeChild && f.child != nil
		if in.ConsumerARN != fakeConsumer || (in.ShardId != fakeShard && !child) {
			fakeError(w, "ResourceNotFoundException", "no such consumer or shard")
			return
		}
		if child {
			if f.childSubs == 0 && f.onChild != nil {
				f.onChild()
			}
			f.childSubs++
			if in.StartingPosition.Type != "TRIM_HORIZON" {
				fakeError(w, "InvalidArgumentException", "the child shard is read from its trim horizon in this fake, got "+in.StartingPosition.Type)
				return
			}
			f.mu.Unlock()
			f.subscribe(w, r, fakeChild, 0)
			f.mu.Lock()
			return
		}
		f.starts = append(f.starts, in.StartingPosition.Type+" "+in.StartingPosition.SequenceNumber)
		next := f.trimmed
		switch in.StartingPosition.Type {
		case "TRIM_HORIZON":
		case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
			fmt.Sscanf(strings.TrimPrefix(in.StartingPosition.SequenceNumber, "4960000000000000000000000000000000000000"), "%d", &next)
			if next < f.trimmed {
				fakeError(w, "InvalidArgumentException", "sequence number "+in.StartingPosition.SequenceNumber+" is past the retention")
				return
			}
			if in.StartingPosition.Type == "AFTER_SEQUENCE_NUMBER" {
				next++
			}
		default:
			fakeError(w, "InvalidArgumentException", "unsupported starting position "+in.StartingPosition.Type)
			return
		}
		f.mu.Unlock()
		f.subscribe(w, r, fakeShard, next)
		f.mu.Lock()
	default:
		fakeError(w, "UnknownOperationException", op)
	}
}

// subscribe writes one subscription's event stream of shard from record
// next.
func (f *fanOutFake) subscribe(w http.ResponseWriter, r *http.Request, shard string, next int) {
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(http.StatusOK)
	enc := eventstream.NewEncoder()
	send := func(msg eventstream.Message) bool {
		if err := enc.Encode(w, msg); err != nil {
			return false
		}
		w.(http.Flusher).Flush()
		return true
	}
	event := func(typ string, payload any) eventstream.Message {
		var m eventstream.Message
		m.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue(eventstream.EventMessageType))
		m.Headers.Set(eventstream.EventTypeHeader, eventstream.StringValue(typ))
		m.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue("application/json"))
		m.Payload, _ = json.Marshal(payload)
		return m
	}
	if !send(event("initial-response", map[string]any{})) {
		return
	}
	deadline := time.Now().Add(f.lifetime)
	events := 0
	for time.Now().Before(deadline) && r.Context().Err() == nil {
		f.mu.Lock()
		records, visible, total := f.records, f.visible, len(f.records)
		if shard == fakeChild {
			records, visible, total = f.child, len(f.child), -1 // open
		}
		fail := f.failAfter > 0 && !f.failed && next >= f.failAfter
		if fail {
			f.failed = true
		}
		f.mu.Unlock()
		switch {
		case fail:
			var m eventstream.Message
			m.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue(eventstream.ExceptionMessageType))
			m.Headers.Set(eventstream.ExceptionTypeHeader, eventstream.StringValue("InternalFailureException"))
			m.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue("application/json"))
			m.Payload = []byte(`{"message":"injected failure"}`)
			send(m)
			return
		case next < visible:
			end := min(next+f.perEvent, visible)
			var recs []any
			for i := next; i < end; i++ {
				recs = append(recs, map[string]any{"SequenceNumber": fakeSeq(i), "Data": records[i], "PartitionKey": "key-00",
					"ApproximateArrivalTimestamp": 1.7e9 + float64(i)})
			}
			next = end
			if !send(event("SubscribeToShardEvent", map[string]any{"Records": recs, "ContinuationSequenceNumber": fakeSeq(end - 1),
				"MillisBehindLatest": (visible - end) * 1000})) {
				return
			}
			events++
			if f.closeEvery > 0 && events%f.closeEvery == 0 {
				return
			}
		case visible == total:
			// The shard is closed and read to its end.
			f.mu.Lock()
			f.ends++
			f.mu.Unlock()
			send(event("SubscribeToShardEvent", map[string]any{"Records": []any{}, "MillisBehindLatest": 0,
				"ChildShards": []any{map[string]any{"ShardId": fakeChild, "ParentShards": []string{fakeShard},
					"HashKeyRange": wholeHashRange}}}))
			return
		default:
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func fakeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(v)
}

func fakeError(w http.ResponseWriter, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

// fakeClient is the real SDK client pointed at the fake (plain HTTP/1.1).
func fakeClient(t *testing.T, f *fanOutFake) *awskinesis.Client {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return awskinesis.New(awskinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})
}

func TestEnhancedFanOut(t *testing.T) {
	const n = 120
	tests := []struct {
		name       string
		efo        kinesis.EnhancedFanOut
		closeEvery int
		failAfter  int
		restartAt  int // the first run sees this many records, is stopped, and a second resumes
		minSubs    int
	}{
		{name: "every record once then child shards", efo: kinesis.EnhancedFanOut{ConsumerName: "c"}, minSubs: 1},
		{name: "subscription closed mid-stream", efo: kinesis.EnhancedFanOut{ConsumerARN: fakeConsumer}, closeEvery: 3, minSubs: n / 7 / 3},
		{name: "error event retried", efo: kinesis.EnhancedFanOut{ConsumerName: "c"}, failAfter: 50, minSubs: 2},
		{name: "restart resumes at the committed record", efo: kinesis.EnhancedFanOut{ConsumerARN: fakeConsumer}, restartAt: 53, minSubs: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFanOutFake(n)
			f.closeEvery, f.failAfter = tc.closeEvery, tc.failAfter
			if tc.restartAt > 0 {
				f.setVisible(tc.restartAt)
			}
			c := fakeClient(t, f)
			if tc.efo.ConsumerARN != "" {
				f.consumer = true // registered beforehand
			}
			dir := t.TempDir()
			data := &memSinkData{byKey: map[string][]row{}}
			run := func() func() error {
				cfg := fastConfig(fakeStream, prometheus.NewRegistry(), testLogger(t))
				cfg.EnhancedFanOut = &tc.efo
				src, err := kinesis.New(c, cfg)
				if err != nil {
					t.Fatal(err)
				}
				return runPipeline(t, pipeline.Config{Name: "efo", Source: src, Processor: newProcessor(t), Sink: newMemSink("a", data),
					Store: checkpoint.NewFileStore(dir), Window: window.Policy{MaxRecords: 20, MaxAge: 50 * time.Millisecond}})
			}
			if tc.restartAt > 0 {
				stop := run()
				testenv.WaitFor(t, 30*time.Second, "the first run's records", func() bool { return data.count() >= tc.restartAt })
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				f.setVisible(n)
			}
			before, _, _, _ := f.snapshot()
			stop := run()
			testenv.WaitFor(t, 30*time.Second, "every record and the shard's end", func() bool {
				_, ends, _, _ := f.snapshot()
				return data.count() >= n && ends >= 1
			})
			// Once the source received the end, it subscribes no more. (The
			// fake may serve the end more than once: it cannot tell whether
			// an HTTP/1.1 client that went away received it.)
			settled, _, _, _ := f.snapshot()
			time.Sleep(300 * time.Millisecond)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			checkExactlyOnceInOrder(t, data.rows(), 1, n)
			starts, _, describes, failed := f.snapshot()
			if len(starts) != len(settled) {
				t.Fatalf("subscribed %d more times after the shard's end (ChildShards)", len(starts)-len(settled))
			}
			if len(starts) < tc.minSubs {
				t.Fatalf("%d subscriptions, want at least %d: %v", len(starts), tc.minSubs, starts)
			}
			if starts[0] != "TRIM_HORIZON " {
				t.Fatalf("first subscription at %q, want TRIM_HORIZON", starts[0])
			}
			if tc.efo.ConsumerName != "" && describes < 2 {
				t.Fatalf("consumer described %d times, want until ACTIVE (2)", describes)
			}
			if tc.failAfter > 0 && !failed {
				t.Fatal("the error event was never sent")
			}
			if tc.restartAt > 0 {
				// The second run starts at the committed record.
				if first := starts[len(before)]; !strings.HasPrefix(first, "AT_SEQUENCE_NUMBER ") {
					t.Fatalf("second run subscribed at %q, want AT_SEQUENCE_NUMBER of the checkpoint", first)
				}
			}
		})
	}
}

// TestEnhancedFanOutChildShard reads a shard that is resharded into a
// child over enhanced fan-out: the child is subscribed to only once the
// parent's records are all written (its lease finished after they were
// committed), from its trim horizon, and the key's records come out once
// each and in order across the two shards.
func TestEnhancedFanOutChildShard(t *testing.T) {
	const n, m = 60, 45
	f := newFanOutFake(n).withChild(m)
	f.consumer = true
	data := &memSinkData{byKey: map[string][]row{}}
	atChild := -1
	f.onChild = func() { atChild = data.count() }
	cfg := fastConfig(fakeStream, prometheus.NewRegistry(), testLogger(t))
	cfg.EnhancedFanOut = &kinesis.EnhancedFanOut{ConsumerARN: fakeConsumer}
	src, err := kinesis.New(fakeClient(t, f), cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := runPipeline(t, pipeline.Config{Name: "efo", Source: src, Processor: newProcessor(t), Sink: newMemSink("a", data),
		Store: checkpoint.NewFileStore(t.TempDir()), Window: window.Policy{MaxRecords: 20, MaxAge: 50 * time.Millisecond}})
	testenv.WaitFor(t, 30*time.Second, "the parent's and the child's records", func() bool { return data.count() >= n+m })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnceInOrder(t, data.rows(), 1, n+m)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ends < 1 || f.childSubs < 1 {
		t.Fatalf("parent ends %d, child subscriptions %d: want the parent read to its end and the child subscribed", f.ends, f.childSubs)
	}
	if atChild < n {
		t.Fatalf("the child was subscribed to with %d of the parent's %d records written: it must wait for the parent to finish", atChild, n)
	}
}

func TestEnhancedFanOutConfigValidated(t *testing.T) {
	c := awskinesis.New(awskinesis.Options{Region: "us-east-1"})
	tests := []struct {
		name   string
		client kinesis.API
		efo    kinesis.EnhancedFanOut
		want   string
	}{
		{name: "neither name nor ARN", client: c, want: "exactly one"},
		{name: "both name and ARN", client: c, efo: kinesis.EnhancedFanOut{ConsumerName: "c", ConsumerARN: fakeConsumer}, want: "exactly one"},
		{name: "client without SubscribeToShard", client: &faulty{c: c}, efo: kinesis.EnhancedFanOut{ConsumerName: "c"}, want: "SubscribeToShard"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kinesis.New(tc.client, kinesis.Config{Stream: "s", EnhancedFanOut: &tc.efo})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestEnhancedFanOutUnknownConsumerFails: a consumer ARN the service does
// not know stops the source with ResourceNotFound instead of retrying
// forever.
func TestEnhancedFanOutUnknownConsumerFails(t *testing.T) {
	f := newFanOutFake(5)
	c := fakeClient(t, f)
	cfg := fastConfig(fakeStream, prometheus.NewRegistry(), testLogger(t))
	cfg.EnhancedFanOut = &kinesis.EnhancedFanOut{ConsumerARN: fakeConsumer + "-gone"}
	src, err := kinesis.New(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = src.Run(ctx, noResume{}, make(chan ingest.Chunk, 16))
	if err == nil || !strings.Contains(err.Error(), "ResourceNotFound") {
		t.Fatalf("Run: %v, want ResourceNotFoundException", err)
	}
}

// TestEnhancedFanOutResume: a checkpoint still in the shard resumes after
// the committed record and reports no loss; one the service refuses (past
// retention) reads from the trim horizon and reports the loss.
func TestEnhancedFanOutResume(t *testing.T) {
	tests := []struct {
		name      string
		trimmed   int
		committed int
		wantFirst int
		wantLoss  float64
	}{
		{name: "checkpoint in the shard", committed: 30, wantFirst: 31},
		{name: "checkpoint past retention", trimmed: 40, committed: 30, wantFirst: 40, wantLoss: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFanOutFake(60)
			f.trimmed, f.consumer = tc.trimmed, true
			cfg := fastConfig(fakeStream, prometheus.NewRegistry(), testLogger(t))
			cfg.EnhancedFanOut = &kinesis.EnhancedFanOut{ConsumerARN: fakeConsumer}
			src, err := kinesis.New(fakeClient(t, f), cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := collect(t, src, fixedResumer{streamd.Position{Seq: fakeSeq(tc.committed)}}, 60-tc.wantFirst)
			if got[0].Pos.Seq != fakeSeq(tc.wantFirst) || len(got) != 60-tc.wantFirst {
				t.Fatalf("got %d records from %s, want %d from %s", len(got), got[0].Pos, 60-tc.wantFirst, fakeSeq(tc.wantFirst))
			}
			if n := value(src.Metrics().Lost.WithLabelValues(fakeStream)); n != tc.wantLoss {
				t.Fatalf("loss events %v, want %v", n, tc.wantLoss)
			}
		})
	}
}
