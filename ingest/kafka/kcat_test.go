package kafka

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/internal/testenv"
)

// TestKcatCompressedBatches has an outside client (kcat, librdkafka)
// produce zstd, snappy, lz4 and gzip batches with keys and the source
// read them back in order.
func TestKcatCompressedBatches(t *testing.T) {
	k := testenv.Kafka(t)
	codecs := []string{"zstd", "snappy", "lz4", "gzip"}
	const per = 500
	for _, codec := range codecs {
		k.CreateTopic(t, "kcat-"+codec, 1)
		var in strings.Builder
		for i := range per {
			fmt.Fprintf(&in, "k%d\t{\"codec\":%q,\"i\":%d}\n", i, codec, i)
		}
		testenv.Kcat(t, []byte(in.String()), "-P", "-b", k.Bootstrap(), "-t", "kcat-"+codec,
			"-z", codec, "-K", "\t", "-X", "linger.ms=50", "-X", "batch.num.messages=100")
	}
	cfg := testConfig(k, "gkcat")
	cfg.Topics, cfg.TopicRegex = nil, "kcat-.*"
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := runSource(t, src, newResumer(), nil)
	testenv.WaitFor(t, 30*time.Second, "every kcat record", func() bool { return h.count() >= per*len(codecs) })
	for _, codec := range codecs {
		lane := LaneName("kcat-"+codec, 0)
		recs := h.records(lane)
		checkLane(t, lane, recs, 0, per)
		for i, r := range recs {
			if want := fmt.Sprintf("{\"codec\":%q,\"i\":%d}", codec, i); string(r.Data) != want {
				t.Fatalf("%s record %d = %s, want %s", lane, i, r.Data, want)
			}
		}
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
}
