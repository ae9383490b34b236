package ddbstreams_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/ingest/ddbstreams"
	"github.com/streamd/streamd/internal/testenv"
)

type change struct {
	Op       string          `json:"op"`
	PK       string          `json:"pk"`
	Ver      json.Number     `json:"ver"`
	Quantity json.Number     `json:"quantity"`
	Seq      string          `json:"sequence_number"`
	Time     string          `json:"event_time"`
	New      json.RawMessage `json:"new_image"`
	Old      json.RawMessage `json:"old_image"`
}

func decode(t testing.TB, g got) change {
	t.Helper()
	var c change
	d := json.NewDecoder(strings.NewReader(string(g.rec.Data)))
	d.UseNumber()
	if err := d.Decode(&c); err != nil {
		t.Fatalf("record %s is not a change: %v", g.rec.Data, err)
	}
	if c.Seq != g.rec.Pos.Seq {
		t.Fatalf("record position %s, sequence_number %s", g.rec.Pos, c.Seq)
	}
	return c
}

func TestNewValidation(t *testing.T) {
	streams := peer.StreamsClient()
	tests := []struct {
		name    string
		tables  ddbstreams.TableAPI
		streams ddbstreams.StreamsAPI
		cfg     ddbstreams.Config
		want    string
	}{
		{"no table", peer.Client(), streams, ddbstreams.Config{}, "table or stream_arn is required"},
		{"bad start", peer.Client(), streams, ddbstreams.Config{Table: "t", Start: "earliest"}, `start "earliest"`},
		{"no streams client", peer.Client(), nil, ddbstreams.Config{Table: "t"}, "streams client is required"},
		{"no table client", nil, streams, ddbstreams.Config{Table: "t"}, "DynamoDB client is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ddbstreams.New(tt.tables, tt.streams, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := ddbstreams.New(nil, streams, ddbstreams.Config{StreamARN: "arn:aws:dynamodb:r:1:table/x/stream/l"}); err != nil {
		t.Fatalf("New with a stream ARN and no table client: %v", err)
	}
}

func TestRunFailsWithoutTableOrStream(t *testing.T) {
	db := peer.Client()
	noStream := fmt.Sprintf("nostream-%d", tableSeq.Add(1))
	if _, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName: aws.String(noStream), BillingMode: dbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: dbtypes.ScalarAttributeTypeS}},
		KeySchema:            []dbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: dbtypes.KeyTypeHash}},
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  ddbstreams.Config
		is   func(error) bool
	}{
		{"missing table", fastConfig("no-such-table"), func(err error) bool {
			var rnf *dbtypes.ResourceNotFoundException
			return errors.As(err, &rnf)
		}},
		{"table without a stream", fastConfig(noStream), func(err error) bool { return errors.Is(err, ddbstreams.ErrNoStream) }},
		{"missing stream arn", ddbstreams.Config{StreamARN: "arn:aws:dynamodb:ddblocal:000000000000:table/x/stream/2020-01-01T00:00:00.000"}, func(err error) bool {
			return err != nil && strings.Contains(err.Error(), "ResourceNotFound")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := ddbstreams.New(db, peer.StreamsClient(), tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = src.Run(ctx, &memResumer{}, nil)
			if ctx.Err() != nil || !tt.is(err) {
				t.Fatalf("Run = %v (ctx %v)", err, ctx.Err())
			}
		})
	}
}

// TestReadResumeAndRollover reads inserts, modifies and removes, follows a
// shard rollover (the child only after the parent ended), and resumes after
// a restart from the committed positions without repeating anything.
func TestReadResumeAndRollover(t *testing.T) {
	db := peer.Client()
	table := createTable(t, db)
	for i := 0; i < 30; i++ {
		put(t, db, table, fmt.Sprintf("k%02d", i), 1, "1.5")
	}
	reg := prometheus.NewRegistry()
	cfg := fastConfig(table)
	cfg.Registerer = reg
	src, err := ddbstreams.New(db, peer.StreamsClient(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := runHarness(t, src, nil)
	testenv.WaitFor(t, 30*time.Second, "30 inserts", func() bool { return len(h.records()) >= 30 })
	peer.TriggerShardRollovers(t)
	for i := 0; i < 10; i++ {
		put(t, db, table, fmt.Sprintf("k%02d", i), 2, "2.5")
	}
	if _, err := db.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(table),
		Key: map[string]dbtypes.AttributeValue{"pk": &dbtypes.AttributeValueMemberS{Value: "k29"}}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "41 changes", func() bool { return len(h.records()) >= 41 })
	h.stop(t)
	// Restart on the same checkpoints: nothing is read twice, new changes are read.
	put(t, db, table, "k05", 3, "3.5")
	src2, err := ddbstreams.New(db, peer.StreamsClient(), fastConfig(table))
	if err != nil {
		t.Fatal(err)
	}
	h2 := runHarness(t, src2, h.res)
	testenv.WaitFor(t, 30*time.Second, "the change after the restart", func() bool { return len(h2.records()) >= 1 })
	time.Sleep(500 * time.Millisecond) // anything repeated would show up now
	all := append(h.records(), h2.records()...)
	if len(all) != 42 {
		t.Fatalf("%d records, want 42", len(all))
	}
	ops := map[string]int{}
	seen := map[string]bool{}
	lanes := map[string]bool{}
	lastByKey := map[string]string{}
	var lastLane string
	for _, g := range all {
		c := decode(t, g)
		ops[c.Op]++
		if seen[c.Seq] {
			t.Fatalf("sequence number %s read twice", c.Seq)
		}
		seen[c.Seq] = true
		lanes[g.lane] = true
		if prev, ok := lastByKey[c.PK]; ok && len(prev) == len(c.Seq) && prev >= c.Seq {
			t.Fatalf("key %s: sequence %s after %s", c.PK, c.Seq, prev)
		}
		lastByKey[c.PK] = c.Seq
		if g.rec.Time == 0 || c.Time == "" {
			t.Fatalf("record without event time: %s", g.rec.Data)
		}
		lastLane = g.lane
	}
	if ops["insert"] != 30 || ops["modify"] != 11 || ops["remove"] != 1 {
		t.Fatalf("ops = %v, want 30 inserts, 11 modifies, 1 remove", ops)
	}
	if len(lanes) != 2 {
		t.Fatalf("read %d shards, want 2 (parent and child): %v", len(lanes), lanes)
	}
	if !h.ended[all[0].lane] {
		t.Fatalf("parent shard %s did not end", all[0].lane)
	}
	if lastLane == all[0].lane {
		t.Fatal("changes after the rollover came from the parent shard")
	}
	if n := metricValue(t, reg, "streamd_ddbstreams_records_read_total"); n != 41 {
		t.Fatalf("records_read_total = %v, want 41", n)
	}
}

// metricValue sums every series of one metric family of reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
		}
	}
	return sum
}

// TestStartLatest reads only what was written after the source started.
func TestStartLatest(t *testing.T) {
	db := peer.Client()
	table := createTable(t, db)
	for i := 0; i < 10; i++ {
		put(t, db, table, fmt.Sprintf("old%d", i), 1, "1")
	}
	counted := &countingStreams{StreamsAPI: peer.StreamsClient()}
	cfg := fastConfig(table)
	cfg.Start = ddbstreams.StartLatest
	src, err := ddbstreams.New(db, counted, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := runHarness(t, src, nil)
	testenv.WaitFor(t, 30*time.Second, "the first GetRecords", func() bool { return counted.getRecords.Load() > 0 })
	for i := 0; i < 5; i++ {
		put(t, db, table, fmt.Sprintf("new%d", i), 1, "1")
	}
	testenv.WaitFor(t, 30*time.Second, "5 new changes", func() bool { return len(h.records()) >= 5 })
	time.Sleep(300 * time.Millisecond)
	recs := h.records()
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5", len(recs))
	}
	for _, g := range recs {
		if c := decode(t, g); !strings.HasPrefix(c.PK, "new") {
			t.Fatalf("start latest read %s", c.PK)
		}
	}
}

// countingStreams counts the GetRecords calls made through a real client.
type countingStreams struct {
	ddbstreams.StreamsAPI
	getRecords atomic.Int64
}

func (c *countingStreams) GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	c.getRecords.Add(1)
	return c.StreamsAPI.GetRecords(ctx, in, opts...)
}

// faultProxy forwards to DynamoDB Local and answers some GetRecords calls
// with a DynamoDB Streams error instead: LimitExceededException every
// throttleEvery-th call, ExpiredIteratorException every expireEvery-th.
type faultProxy struct {
	proxy                      *httputil.ReverseProxy
	calls, throttled, expired  atomic.Int64
	throttleEvery, expireEvery int64
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".GetRecords") {
		n := p.calls.Add(1)
		code := ""
		switch {
		case p.throttleEvery > 0 && n%p.throttleEvery == 0:
			code = "LimitExceededException"
			p.throttled.Add(1)
		case p.expireEvery > 0 && n%p.expireEvery == 0:
			code = "ExpiredIteratorException"
			p.expired.Add(1)
		}
		if code != "" {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.Header().Set("X-Amzn-ErrorType", code)
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":"injected"}`, code)
			return
		}
	}
	p.proxy.ServeHTTP(w, r)
}

// TestThrottlingAndExpiredIterators reads through injected
// LimitExceededException and ExpiredIteratorException answers: every
// change arrives once, in order.
func TestThrottlingAndExpiredIterators(t *testing.T) {
	db := peer.Client()
	table := createTable(t, db)
	target, _ := url.Parse(peer.Endpoint)
	fp := &faultProxy{proxy: httputil.NewSingleHostReverseProxy(target), throttleEvery: 3, expireEvery: 5}
	srv := httptest.NewServer(fp)
	defer srv.Close()
	// No SDK retries: the source's own backoff must handle every fault.
	streams := dynamodbstreams.NewFromConfig(peer.Config(), func(o *dynamodbstreams.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.RetryMaxAttempts = 1
	})
	reg := prometheus.NewRegistry()
	cfg := fastConfig(table)
	cfg.Registerer = reg
	cfg.MaxRecords = 7 // many pages, many faults
	src, err := ddbstreams.New(db, streams, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := runHarness(t, src, nil)
	const n = 120
	for i := 0; i < n; i++ {
		put(t, db, table, fmt.Sprintf("k%03d", i), i, fmt.Sprintf("%d.000000001", i))
	}
	testenv.WaitFor(t, 60*time.Second, "every change", func() bool { return len(h.records()) >= n })
	time.Sleep(300 * time.Millisecond)
	recs := h.records()
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	for i, g := range recs {
		c := decode(t, g)
		if want := fmt.Sprintf("k%03d", i); c.PK != want || c.Quantity.String() != fmt.Sprintf("%d.000000001", i) {
			t.Fatalf("record %d = %s/%s, want %s", i, c.PK, c.Quantity, want)
		}
	}
	if fp.throttled.Load() == 0 || fp.expired.Load() == 0 {
		t.Fatalf("faults injected: throttled %d, expired %d", fp.throttled.Load(), fp.expired.Load())
	}
	if got := metricValue(t, reg, "streamd_ddbstreams_throttled_requests_total"); got < float64(fp.throttled.Load()) {
		t.Fatalf("throttled_requests_total = %v, proxy throttled %d", got, fp.throttled.Load())
	}
}

// TestStreamSwitch disables and re-enables the table's stream while the
// source runs: it reads the old stream to its end, follows the new one,
// and reports the gap with both ARNs.
func TestStreamSwitch(t *testing.T) {
	db := peer.Client()
	table := createTable(t, db)
	var logs logBuffer
	reg := prometheus.NewRegistry()
	cfg := fastConfig(table)
	cfg.Registerer, cfg.Logger = reg, logs.logger()
	src, err := ddbstreams.New(db, peer.StreamsClient(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	oldARN := aws.ToString(desc.Table.LatestStreamArn)
	h := runHarness(t, src, nil)
	for i := 0; i < 20; i++ {
		put(t, db, table, fmt.Sprintf("before%02d", i), 1, "1")
	}
	testenv.WaitFor(t, 30*time.Second, "20 changes", func() bool { return len(h.records()) >= 20 })
	setStream(t, db, table, false)
	for i := 0; i < 5; i++ {
		put(t, db, table, fmt.Sprintf("gap%d", i), 1, "1") // not captured by any stream
	}
	time.Sleep(200 * time.Millisecond)
	setStream(t, db, table, true)
	desc, err = db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	newARN := aws.ToString(desc.Table.LatestStreamArn)
	if newARN == oldARN || newARN == "" {
		t.Fatalf("stream ARN after re-enabling = %q (before %q)", newARN, oldARN)
	}
	for i := 0; i < 20; i++ {
		put(t, db, table, fmt.Sprintf("after%02d", i), 1, "1")
	}
	testenv.WaitFor(t, 30*time.Second, "40 changes", func() bool { return len(h.records()) >= 40 })
	time.Sleep(300 * time.Millisecond)
	recs := h.records()
	if len(recs) != 40 {
		t.Fatalf("%d records, want 40", len(recs))
	}
	for i, g := range recs {
		c := decode(t, g)
		want := fmt.Sprintf("before%02d", i)
		if i >= 20 {
			want = fmt.Sprintf("after%02d", i-20)
		}
		if c.PK != want {
			t.Fatalf("record %d is %s, want %s", i, c.PK, want)
		}
	}
	if got := metricValue(t, reg, "streamd_ddbstreams_stream_switches_total"); got != 1 {
		t.Fatalf("stream_switches_total = %v, want 1", got)
	}
	var found bool
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, oldARN) && strings.Contains(line, newARN) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no error log naming %s and %s:\n%s", oldARN, newARN, logs.String())
	}
}

// TestTrimmedRecordsReportedAsLoss ages the stream past its 24 h retention
// while the source is stopped: on restart the loss is counted and logged,
// and reading goes on with what is left.
func TestTrimmedRecordsReportedAsLoss(t *testing.T) {
	own := testenv.DynamoDB(t) // dilation ages every table of the peer
	db := own.Client()
	table := createTable(t, db)
	for i := 0; i < 10; i++ {
		put(t, db, table, fmt.Sprintf("read%d", i), 1, "1")
	}
	src, err := ddbstreams.New(db, own.StreamsClient(), fastConfig(table))
	if err != nil {
		t.Fatal(err)
	}
	h := runHarness(t, src, nil)
	testenv.WaitFor(t, 30*time.Second, "10 changes", func() bool { return len(h.records()) >= 10 })
	h.stop(t)
	for i := 0; i < 5; i++ {
		put(t, db, table, fmt.Sprintf("trimmed%d", i), 1, "1")
	}
	own.DilateEventTimes(t, 30)
	for i := 0; i < 5; i++ {
		put(t, db, table, fmt.Sprintf("fresh%d", i), 1, "1")
	}
	var logs logBuffer
	reg := prometheus.NewRegistry()
	cfg := fastConfig(table)
	cfg.Registerer, cfg.Logger = reg, logs.logger()
	src2, err := ddbstreams.New(db, own.StreamsClient(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h2 := runHarness(t, src2, h.res)
	testenv.WaitFor(t, 30*time.Second, "5 fresh changes", func() bool { return len(h2.records()) >= 5 })
	time.Sleep(300 * time.Millisecond)
	for _, g := range h2.records() {
		if c := decode(t, g); !strings.HasPrefix(c.PK, "fresh") {
			t.Fatalf("read %s after the trim", c.PK)
		}
	}
	if got := metricValue(t, reg, "streamd_ddbstreams_loss_events_total"); got < 1 {
		t.Fatalf("loss_events_total = %v, want ≥ 1", got)
	}
	if !strings.Contains(logs.String(), "change records lost") || !strings.Contains(logs.String(), `"reason":"trimmed"`) {
		t.Fatalf("no loss logged:\n%s", logs.String())
	}
}
