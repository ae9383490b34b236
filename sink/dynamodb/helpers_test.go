package dynamodb_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/internal/testenv"
	ddbsink "github.com/streamd/streamd/sink/dynamodb"
	"github.com/streamd/streamd/sink/sinktest"
)

// peer is the DynamoDB Local every test of the package shares (one JVM);
// each test uses its own tables.
var peer *testenv.DynamoDBPeer

func TestMain(m *testing.M) {
	p, err := testenv.StartDynamoDB()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start DynamoDB Local: %v\n", err)
		os.Exit(1)
	}
	peer = p
	code := m.Run()
	p.Stop()
	os.Exit(code)
}

var tableSeq atomic.Int64

// createTable creates a fresh on-demand table keyed by keys ("name:S").
func createTable(t testing.TB, keys ...string) string {
	t.Helper()
	name := fmt.Sprintf("sinktest-%d-%d", os.Getpid(), tableSeq.Add(1))
	in := &dynamodb.CreateTableInput{TableName: aws.String(name), BillingMode: types.BillingModePayPerRequest}
	for i, k := range keys {
		n, typ := k[:len(k)-2], k[len(k)-1:]
		kt := types.KeyTypeHash
		if i == 1 {
			kt = types.KeyTypeRange
		}
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(n), KeyType: kt})
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: types.ScalarAttributeType(typ)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := peer.Client().CreateTable(ctx, in); err != nil {
		t.Fatalf("create table: %v", err)
	}
	return name
}

// newSink returns a sink on table through client with fast backoff.
func newSink(t testing.TB, client ddbsink.API, table string, tweak func(*ddbsink.Config)) (*ddbsink.Sink, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := ddbsink.Config{
		Pipeline: sinktest.Pipeline, Client: client, Table: table, Key: []string{"id"},
		BackoffBase: time.Millisecond, BackoffMax: 50 * time.Millisecond, RetryTimeout: time.Minute,
		Registerer: reg,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := ddbsink.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, reg
}

// scan returns every item of table (bounded: at most 1000 pages).
func scan(ctx context.Context, table string) ([]map[string]types.AttributeValue, error) {
	var items []map[string]types.AttributeValue
	var start map[string]types.AttributeValue
	for range 1000 {
		out, err := peer.Client().Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return nil, err
		}
		items = append(items, out.Items...)
		if len(out.LastEvaluatedKey) == 0 {
			return items, nil
		}
		start = out.LastEvaluatedKey
	}
	return nil, fmt.Errorf("scan %s: more than 1000 pages", table)
}

// tableReader reads table back as sinktest rows.
func tableReader(table string) sinktest.Reader {
	return sinktest.ReaderFunc(func(ctx context.Context) ([]sinktest.Row, error) {
		items, err := scan(ctx, table)
		if err != nil {
			return nil, err
		}
		rows := make([]sinktest.Row, len(items))
		for i, it := range items {
			rows[i] = sinktest.Row(avMap(it))
		}
		return rows, nil
	})
}

// avValue converts an attribute value to the sinktest form: N as
// json.Number, B as base64, M and L recursively.
func avValue(av types.AttributeValue) any {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return json.Number(v.Value)
	case *types.AttributeValueMemberBOOL:
		return v.Value
	case *types.AttributeValueMemberB:
		return base64.StdEncoding.EncodeToString(v.Value)
	case *types.AttributeValueMemberNULL:
		return nil
	case *types.AttributeValueMemberM:
		return avMap(v.Value)
	case *types.AttributeValueMemberL:
		l := make([]any, len(v.Value))
		for i, e := range v.Value {
			l[i] = avValue(e)
		}
		return l
	}
	return fmt.Sprintf("unsupported %T", av)
}

func avMap(m map[string]types.AttributeValue) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = avValue(v)
	}
	return out
}

// faultProxy sits in front of DynamoDB Local and, for BatchWriteItem only,
// answers 400 ProvisionedThroughputExceededException without forwarding,
// or withholds a random part of the request items from DynamoDB and hands
// them back as UnprocessedItems in the (rewritten, re-checksummed)
// response — what DynamoDB does under partial throttling.
type faultProxy struct {
	URL string

	target   string
	srv      *http.Server
	tr       *http.Transport
	throttle float64
	partial  float64
	hold     float64 // probability that an item of a partial request is withheld
	delay    time.Duration

	mu  sync.Mutex
	rng *rand.Rand

	requests, throttled, partials, withheld atomic.Int64
}

func newFaultProxy(t testing.TB, seed uint64, throttle, partial float64) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{
		URL: "http://" + ln.Addr().String(), target: peer.Endpoint,
		tr:       &http.Transport{DisableCompression: true},
		throttle: throttle, partial: partial, hold: 0.5,
		rng: rand.New(rand.NewPCG(seed, seed+1)),
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(ln)
	t.Cleanup(func() { p.srv.Close(); p.tr.CloseIdleConnections() })
	return p
}

// client returns a DynamoDB client that goes through the proxy.
func (p *faultProxy) client() *dynamodb.Client {
	return dynamodb.NewFromConfig(peer.Config(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL) })
}

func (p *faultProxy) draw() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64()
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	if r.Header.Get("X-Amz-Target") != "DynamoDB_20120810.BatchWriteItem" {
		p.forward(w, r, body, nil)
		return
	}
	p.requests.Add(1)
	x := p.draw()
	switch {
	case x < p.throttle:
		p.throttled.Add(1)
		writeAWSJSON(w, http.StatusBadRequest, []byte(`{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}`))
		return
	case x < p.throttle+p.partial:
		var req struct {
			RequestItems map[string][]json.RawMessage
		}
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		keep := map[string][]json.RawMessage{}
		held := map[string][]json.RawMessage{}
		nkeep := 0
		for table, reqs := range req.RequestItems {
			for _, wr := range reqs {
				if p.draw() < p.hold {
					held[table] = append(held[table], wr)
				} else {
					keep[table] = append(keep[table], wr)
					nkeep++
				}
			}
		}
		for _, h := range held {
			p.withheld.Add(int64(len(h)))
		}
		p.partials.Add(1)
		if nkeep == 0 {
			out, _ := json.Marshal(map[string]any{"UnprocessedItems": held})
			writeAWSJSON(w, http.StatusOK, out)
			return
		}
		newBody, _ := json.Marshal(map[string]any{"RequestItems": keep})
		p.forward(w, r, newBody, held)
	default:
		p.forward(w, r, body, nil)
	}
}

// forward sends body to DynamoDB Local; with held items it merges them
// into the response's UnprocessedItems.
func (p *faultProxy) forward(w http.ResponseWriter, r *http.Request, body []byte, held map[string][]json.RawMessage) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	req.Host = r.Host
	resp, err := p.tr.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if held != nil && resp.StatusCode == http.StatusOK {
		var res map[string]json.RawMessage
		if err := json.Unmarshal(out, &res); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		un := map[string][]json.RawMessage{}
		if raw, ok := res["UnprocessedItems"]; ok {
			json.Unmarshal(raw, &un)
		}
		for table, h := range held {
			un[table] = append(un[table], h...)
		}
		res["UnprocessedItems"], _ = json.Marshal(un)
		out, _ = json.Marshal(res)
	}
	for k, v := range resp.Header {
		if k != "Content-Length" && k != "X-Amz-Crc32" {
			w.Header()[k] = v
		}
	}
	writeAWSJSON(w, resp.StatusCode, out)
}

// writeAWSJSON writes a DynamoDB JSON response with the CRC32 header the
// SDK checks.
func writeAWSJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
