package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/internal/testenv"
)

// checkLane asserts that recs are consecutive offsets from first with the
// values makeRecords gives partition part of parts.
func checkLane(t *testing.T, lane string, recs []streamd.Record, first int64, n int) {
	t.Helper()
	if len(recs) != n {
		t.Fatalf("lane %s: %d records, want %d", lane, len(recs), n)
	}
	for i, r := range recs {
		if want := first + int64(i); r.Pos.Offset != want {
			t.Fatalf("lane %s: record %d at offset %d, want %d", lane, i, r.Pos.Offset, want)
		}
	}
}

func TestConsumeSixPartitions(t *testing.T) {
	k := testenv.Kafka(t)
	k.CreateTopic(t, "sales", 6)
	before := time.Now().Add(-time.Second)
	produce(t, k, makeRecords("sales", 6, 600, 0))
	src, err := New(testConfig(k, "g6", "sales"))
	if err != nil {
		t.Fatal(err)
	}
	h := runSource(t, src, newResumer(), nil)
	testenv.WaitFor(t, 30*time.Second, "600 records", func() bool { return h.count() >= 600 })
	for p := range 6 {
		lane := fmt.Sprintf("sales/%d", p)
		recs := h.records(lane)
		checkLane(t, lane, recs, 0, 100)
		for i, r := range recs {
			if want := fmt.Sprintf(`{"i":%d}`, i*6+p); string(r.Data) != want {
				t.Fatalf("lane %s offset %d: value %s, want %s", lane, r.Pos.Offset, r.Data, want)
			}
			if r.Time < before.UnixMicro() || r.Time > time.Now().UnixMicro() {
				t.Fatalf("lane %s offset %d: time %d is not the record timestamp in µs", lane, r.Pos.Offset, r.Time)
			}
		}
	}
	if err := h.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Shutdown releases every owned lane before leaving the group.
	h.mu.Lock()
	defer h.mu.Unlock()
	got := map[string]bool{}
	for _, r := range h.revokes {
		got[r.lane] = true
	}
	if len(got) != 6 {
		t.Fatalf("shutdown released %d lanes (%v), want 6", len(got), got)
	}
}

func TestStartPositions(t *testing.T) {
	k := testenv.Kafka(t)
	adm := kadm.NewClient(k.Client(t))
	for _, tc := range []struct {
		name  string
		start string
		// checkpoint and group offsets per partition (-1: none)
		store, group [3]int64
		// want is the first offset each partition must deliver; -2 means
		// "the end at start time" (latest): only new records.
		want [3]int64
	}{
		{"checkpoint wins over group", StartEarliest, [3]int64{4, 9, 0}, [3]int64{7, 2, -1}, [3]int64{5, 10, 1}},
		{"group offset when no checkpoint", StartEarliest, [3]int64{-1, 3, -1}, [3]int64{6, -1, 8}, [3]int64{6, 4, 8}},
		{"earliest when neither", StartEarliest, [3]int64{-1, -1, -1}, [3]int64{-1, -1, -1}, [3]int64{0, 0, 0}},
		{"latest when neither", StartLatest, [3]int64{-1, 2, -1}, [3]int64{-1, -1, 5}, [3]int64{-2, 3, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "start-" + strings.ReplaceAll(tc.name, " ", "-")
			group := topic + "-g"
			k.CreateTopic(t, topic, 3)
			produce(t, k, makeRecords(topic, 3, 60, 0)) // offsets 0..19 per partition
			res := newResumer()
			offs := kadm.Offsets{}
			for p := range 3 {
				if tc.store[p] >= 0 {
					res.set(LaneName(topic, int32(p)), tc.store[p])
				}
				if tc.group[p] >= 0 {
					offs.AddOffset(topic, int32(p), tc.group[p], -1)
				}
			}
			if len(offs) > 0 {
				if err := adm.CommitAllOffsets(context.Background(), group, offs); err != nil {
					t.Fatal(err)
				}
			}
			cfg := testConfig(k, group, topic)
			cfg.Start = tc.start
			src, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			h := runSource(t, src, res, nil)
			testenv.WaitFor(t, 30*time.Second, "assignment", func() bool {
				res.mu.Lock()
				defer res.mu.Unlock()
				return len(res.calls) == 3
			})
			// Keep producing until every partition delivered a record past
			// the initial 20, so "latest" has something to show.
			next := 60
			testenv.WaitFor(t, 30*time.Second, "records on every partition", func() bool {
				for p := range 3 {
					rs := h.records(LaneName(topic, int32(p)))
					if len(rs) == 0 || rs[len(rs)-1].Pos.Offset < 20 {
						produce(t, k, makeRecords(topic, 3, 3, next))
						next += 3
						return false
					}
				}
				return true
			})
			for p := range 3 {
				rs := h.records(LaneName(topic, int32(p)))
				first := rs[0].Pos.Offset
				if tc.want[p] == -2 {
					if first < 20 {
						t.Errorf("partition %d: latest start delivered old offset %d", p, first)
					}
				} else if first != tc.want[p] {
					t.Errorf("partition %d: first offset %d, want %d", p, first, tc.want[p])
				}
				for i := 1; i < len(rs); i++ {
					if rs[i].Pos.Offset != rs[i-1].Pos.Offset+1 {
						t.Fatalf("partition %d: offsets %d then %d", p, rs[i-1].Pos.Offset, rs[i].Pos.Offset)
					}
				}
			}
			if err := h.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRevokeHandshake(t *testing.T) {
	k := testenv.Kafka(t)
	k.CreateTopic(t, "rv", 6)
	produce(t, k, makeRecords("rv", 6, 600, 0))
	res := newResumer() // shared, like a shared checkpoint store
	srcA, err := New(testConfig(k, "grv", "rv"))
	if err != nil {
		t.Fatal(err)
	}
	a := runSource(t, srcA, res, func(h *harness) {
		h.commitOnRevoke = true
		h.releaseDelay = 300 * time.Millisecond // a flush in progress
	})
	testenv.WaitFor(t, 30*time.Second, "A reads everything", func() bool { return a.count() >= 600 })

	srcB, err := New(testConfig(k, "grv", "rv"))
	if err != nil {
		t.Fatal(err)
	}
	b := runSource(t, srcB, res, nil)
	produceMore := 600
	testenv.WaitFor(t, 45*time.Second, "B owns some partitions", func() bool {
		produce(t, k, makeRecords("rv", 6, 6, produceMore))
		produceMore += 6
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.firstAt) >= 2
	})

	a.mu.Lock()
	revoked := map[string]revokeEvent{}
	for _, r := range a.revokes {
		revoked[r.lane] = r
	}
	a.mu.Unlock()
	if len(revoked) == 0 {
		t.Fatal("A was never asked to release a lane")
	}
	b.mu.Lock()
	bFirst := map[string]time.Time{}
	for lane, at := range b.firstAt {
		bFirst[lane] = at
	}
	b.mu.Unlock()
	for lane, at := range bFirst {
		rv, ok := revoked[lane]
		if !ok {
			t.Errorf("B reads %s, which A never released", lane)
			continue
		}
		if at.Before(rv.releasedAt) {
			t.Errorf("B got %s at %v, before A released it at %v", lane, at, rv.releasedAt)
		}
		// B resumes exactly after what A committed in its handshake.
		if first := b.records(lane)[0].Pos.Offset; first != rv.lastOffset+1 {
			t.Errorf("B starts %s at %d, want %d (A committed %d)", lane, first, rv.lastOffset+1, rv.lastOffset)
		}
		// A sent nothing of the lane after releasing it.
		for _, r := range a.records(lane) {
			if r.Pos.Offset > rv.lastOffset {
				t.Errorf("A delivered %s offset %d after releasing at %d", lane, r.Pos.Offset, rv.lastOffset)
				break
			}
		}
	}
	// The handshake committed the released lanes' group offsets.
	got := k.GroupOffsets(t, "grv")
	for lane := range bFirst {
		tp, p, _ := ParseLane(lane)
		if want := revoked[lane].lastOffset + 1; got[tp][p] < want {
			t.Errorf("group offset of %s = %d, want >= %d", lane, got[tp][p], want)
		}
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestCommittedGroupOffsetsAndMetrics(t *testing.T) {
	k := testenv.Kafka(t)
	k.CreateTopic(t, "cm", 2)
	produce(t, k, makeRecords("cm", 2, 40, 0)) // 20 per partition
	reg := prometheus.NewRegistry()
	cfg := testConfig(k, "gcm", "cm")
	cfg.Registerer, cfg.Pipeline = reg, "sales"
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := runSource(t, src, newResumer(), nil)
	testenv.WaitFor(t, 30*time.Second, "40 records", func() bool { return h.count() >= 40 })

	// Nothing committed yet: lag is the whole partition, no group offsets.
	if lag := gaugeValue(t, reg, "streamd_kafka_partition_lag_records", "cm", "0"); lag != 20 {
		t.Errorf("lag before commit = %v, want 20", lag)
	}
	if got := k.GroupOffsets(t, "gcm"); len(got["cm"]) != 0 {
		t.Errorf("group offsets before any commit: %v", got)
	}
	src.Committed(context.Background(), "cm/0", streamd.Position{Offset: 11})
	src.Committed(context.Background(), "cm/0", streamd.Position{Offset: 4}) // older: ignored
	src.Committed(context.Background(), "cm/1", streamd.Position{Offset: 19})
	src.Committed(context.Background(), "other/3", streamd.Position{Offset: 99}) // not owned: ignored
	testenv.WaitFor(t, 10*time.Second, "group offsets", func() bool {
		got := k.GroupOffsets(t, "gcm")
		return got["cm"][0] == 12 && got["cm"][1] == 20
	})
	if got := k.GroupOffsets(t, "gcm"); len(got["other"]) != 0 {
		t.Errorf("committed a lane this member does not own: %v", got["other"])
	}
	if lag := gaugeValue(t, reg, "streamd_kafka_partition_lag_records", "cm", "0"); lag != 8 {
		t.Errorf("lag of cm/0 = %v, want 8 (20 - 12)", lag)
	}
	if lag := gaugeValue(t, reg, "streamd_kafka_partition_lag_records", "cm", "1"); lag != 0 {
		t.Errorf("lag of cm/1 = %v, want 0", lag)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var kprom bool
	for _, mf := range mfs {
		if mf.GetName() == "streamd_kafka_connects_total" {
			kprom = true
		}
	}
	if !kprom {
		t.Error("kprom metrics (streamd_kafka_connects_total) not registered")
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

// gaugeValue returns the value of a gauge with labels topic, partition.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name, topic, partition string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "topic") == topic && label(m, "partition") == partition {
				if label(m, "pipeline") != "sales" {
					t.Errorf("%s lacks the pipeline label", name)
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{topic=%q,partition=%q}", name, topic, partition)
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestPoisonRecordsPassThrough(t *testing.T) {
	k := testenv.Kafka(t)
	k.CreateTopic(t, "poison", 1)
	bin := []byte{0xff, 0x00, 0xfe, '{'}
	recs := []*kgo.Record{
		{Topic: "poison", Value: []byte(`{"ok":1}`)},
		{Topic: "poison", Value: nil}, // tombstone
		{Topic: "poison", Value: bin, Key: bin},
		{Topic: "poison", Value: []byte(`{"truncated":`)},
		{Topic: "poison", Value: []byte(strings.Repeat("x", 900<<10))}, // large
		{Topic: "poison", Value: []byte(`{"ok":2}`)},
	}
	produce(t, k, recs)
	src, err := New(testConfig(k, "gp", "poison"))
	if err != nil {
		t.Fatal(err)
	}
	h := runSource(t, src, newResumer(), nil)
	testenv.WaitFor(t, 30*time.Second, "6 records", func() bool { return h.count() >= 6 })
	got := h.records("poison/0")
	checkLane(t, "poison/0", got, 0, 6)
	for i, r := range got {
		if string(r.Data) != string(recs[i].Value) || r.Err != "" {
			t.Errorf("record %d: data %.20q err %q, want the value as produced", i, r.Data, r.Err)
		}
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestResumeFailureIsFatal(t *testing.T) {
	k := testenv.Kafka(t)
	k.CreateTopic(t, "rf", 1)
	res := newResumer()
	res.err = errors.New("checkpoint store unreachable")
	src, err := New(testConfig(k, "grf", "rf"))
	if err != nil {
		t.Fatal(err)
	}
	h := runSource(t, src, res, nil)
	select {
	case err := <-h.done:
		if err == nil || !strings.Contains(err.Error(), "checkpoint store unreachable") {
			t.Fatalf("Run = %v, want the resume error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not fail on a failing Resumer")
	}
}

func TestUnreachableBrokerFailsRun(t *testing.T) {
	cfg := Config{Brokers: []string{fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}, Topics: []string{"x"}, Group: "g",
		ConnectTimeout: 2 * time.Second, Logger: testLogger()}
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = src.Run(context.Background(), newResumer(), make(chan streamdChunk))
	if err == nil || !strings.Contains(err.Error(), "connect to brokers") {
		t.Fatalf("Run = %v, want a connect error", err)
	}
	if err := src.Run(context.Background(), newResumer(), make(chan streamdChunk)); !errors.Is(err, ErrAlreadyRan) {
		t.Fatalf("second Run = %v, want ErrAlreadyRan", err)
	}
}

func TestBufferedBytesStayBounded(t *testing.T) {
	k := testenv.Kafka(t)
	k.CreateTopic(t, "bp", 2)
	const n, size = 4000, 4 << 10 // 16 MiB backlog
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := []byte(strings.Repeat(fmt.Sprintf("%08d", i), size/8))
		recs[i] = &kgo.Record{Topic: "bp", Partition: int32(i % 2), Value: v}
	}
	// Small producer batches: a broker returns whole batches, so the
	// batch size is the granularity of the bound.
	k.Produce(t, recs, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(64<<10))
	cfg := testConfig(k, "gbp", "bp")
	cfg.MaxBufferedBytes = 1 << 20
	cfg.PollRecords, cfg.ChunkRecords = 64, 32
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan streamdChunk) // the pipeline is stuck: nobody reads
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, newResumer(), out) }()
	c := <-out // one chunk, then the pipeline stalls
	if len(c.Records) == 0 {
		t.Fatal("first chunk is empty")
	}
	time.Sleep(2 * time.Second) // give the client every chance to over-fetch
	src.mu.Lock()
	cl, q := src.run.cl, src.run.q
	src.mu.Unlock()
	q.mu.Lock()
	queued, queuedRecs := q.bytes, 0
	for _, it := range q.items {
		queuedRecs += len(it.p.Records)
	}
	q.mu.Unlock()
	// An eighth for the fetch-ahead queue (plus one poll over it), a
	// quarter for two fetches of an eighth each, plus at most one record
	// batch over the partition limit.
	t.Logf("client buffers %d bytes, %d records; %d bytes, %d records queued",
		cl.BufferedFetchBytes(), cl.BufferedFetchRecords(), queued, queuedRecs)
	if got, limit := cl.BufferedFetchBytes()+int64(queued), int64(cfg.MaxBufferedBytes+cfg.PollRecords*size+64<<10); got > limit {
		t.Fatalf("client and queue buffer %d bytes with the pipeline stalled, want <= %d", got, limit)
	}
	if queued == 0 {
		t.Error("nothing queued ahead of the stalled pipeline")
	}
	if got := cl.BufferedFetchRecords() + int64(queuedRecs); got >= n/2 {
		t.Fatalf("client and queue hold %d of %d records: fetching did not pause", got, n)
	}
	cancel()
	go func() {
		for c := range out {
			if c.Released != nil {
				close(c.Released)
			}
		}
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(out)
}
