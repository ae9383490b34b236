package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KcatHint is what a test prints when kcat is missing.
const KcatHint = "run `bash internal/testenv/install-peers.sh` from the repository root (it installs kcat from Debian)"

// KafkaPeer is an in-process kfake cluster listening on 127.0.0.1.
type KafkaPeer struct {
	// Cluster is the running kfake cluster.
	Cluster *kfake.Cluster
	// Addrs are the brokers' host:port addresses.
	Addrs []string
}

// Kafka starts a kfake cluster of one broker on 127.0.0.1 with a group
// minimum session timeout of 1s (so tests can fail over quickly) plus
// opts, and closes it when the test ends.
func Kafka(t testing.TB, opts ...kfake.Opt) *KafkaPeer {
	t.Helper()
	p, err := StartKafka(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartKafka is Kafka without a test: the caller closes the peer.
func StartKafka(opts ...kfake.Opt) (*KafkaPeer, error) {
	base := []kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second)}
	c, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	return &KafkaPeer{Cluster: c, Addrs: c.ListenAddrs()}, nil
}

// Close stops the cluster.
func (p *KafkaPeer) Close() { p.Cluster.Close() }

// Bootstrap returns the brokers as one comma-separated string (kcat -b).
func (p *KafkaPeer) Bootstrap() string { return strings.Join(p.Addrs, ",") }

// Client returns a plain franz-go client of the cluster plus opts, closed
// when the test ends.
func (p *KafkaPeer) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.Addrs...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates topic with the given number of partitions.
func (p *KafkaPeer) CreateTopic(t testing.TB, topic string, partitions int32) {
	t.Helper()
	if err := p.Cluster.CreateTopic(topic, partitions, nil); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// Produce writes recs synchronously (each to its Partition when
// kgo.ManualPartitioner is among opts, else by key hash).
func (p *KafkaPeer) Produce(t testing.TB, recs []*kgo.Record, opts ...kgo.Opt) {
	t.Helper()
	cl := p.Client(t, append([]kgo.Opt{kgo.ProducerLinger(0)}, opts...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records: %v", len(recs), err)
	}
}

// GroupOffsets returns the committed offsets of group, by topic and
// partition.
func (p *KafkaPeer) GroupOffsets(t testing.TB, group string) map[string]map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(p.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of group %s: %v", group, err)
	}
	if err := resp.Error(); err != nil {
		t.Fatalf("fetch offsets of group %s: %v", group, err)
	}
	out := map[string]map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.At
	})
	return out
}

// FindKcat returns the path of the kcat binary, or an error naming the
// install script.
func FindKcat() (string, error) {
	for _, name := range []string{"kcat", "kafkacat"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("find kcat: not on PATH: %s", KcatHint)
}

// Kcat runs kcat with args and stdin, failing the test on error; it
// returns stdout. The run is bounded to a minute.
func Kcat(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	bin, err := FindKcat()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}
