package kinesis

import "github.com/prometheus/client_golang/prometheus"

// Aggregate builds a KPL aggregated record with the test's independent
// protowire encoder.
func Aggregate(keys []string, datas [][]byte) []byte { return aggregate(keys, datas, false) }

// Metrics exposes the source's counters to the tests.
type Metrics struct{ Read, Corrupt, Lost, Throttled *prometheus.CounterVec }

// Metrics returns the source's counters.
func (s *Source) Metrics() Metrics {
	return Metrics{Read: s.m.read, Corrupt: s.m.corrupt, Lost: s.m.lost, Throttled: s.m.throttled}
}
