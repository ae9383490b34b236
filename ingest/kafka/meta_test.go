package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/testenv"
)

func TestMetadataFillsRecordMeta(t *testing.T) {
	k := testenv.Kafka(t)
	k.CreateTopic(t, "meta", 1)
	produce(t, k, []*kgo.Record{
		{Topic: "meta", Partition: 0, Key: []byte("k-0"), Value: []byte(`{"i":0}`), Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t-0")}}},
		{Topic: "meta", Partition: 0, Value: []byte(`{"i":1}`)},
	})
	for _, on := range []bool{true, false} {
		cfg := testConfig(k, "gmeta-"+map[bool]string{true: "on", false: "off"}[on], "meta")
		cfg.Metadata = on
		src, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		h := runSource(t, src, newResumer(), nil)
		testenv.WaitFor(t, 30*time.Second, "2 records", func() bool { return h.count() >= 2 })
		recs := h.records("meta/0")
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		if !on {
			for _, r := range recs {
				if r.Meta != nil {
					t.Fatalf("metadata off, yet record %d carries %+v", r.Pos.Offset, r.Meta)
				}
			}
			continue
		}
		m0, m1 := recs[0].Meta, recs[1].Meta
		if m0 == nil || string(m0.Key) != "k-0" || m0.Topic != "meta" || m0.Partition != 0 || m0.Offset != 0 ||
			m0.Timestamp == 0 || len(m0.Headers) != 1 || m0.Headers[0].Key != "trace" || string(m0.Headers[0].Value) != "t-0" {
			t.Fatalf("record 0 metadata %+v", m0)
		}
		if m1 == nil || m1.Key != nil || m1.Offset != 1 || len(m1.Headers) != 0 {
			t.Fatalf("record 1 metadata %+v", m1)
		}
	}
}
