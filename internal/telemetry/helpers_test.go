package telemetry_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// series is one gathered sample: its labels and value (a histogram's
// value is its sample count; sum is its sample sum).
type series struct {
	labels map[string]string
	value  float64
	sum    float64
}

// gather returns the series of the named metric family; none when absent.
func gather(t *testing.T, g prometheus.Gatherer, name string) []series {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var out []series
		for _, m := range mf.GetMetric() {
			s := series{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				s.value = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s.value = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				s.value = float64(m.GetHistogram().GetSampleCount())
				s.sum = m.GetHistogram().GetSampleSum()
			default:
				t.Fatalf("metric %s: unexpected type %s", name, mf.GetType())
			}
			out = append(out, s)
		}
		return out
	}
	return nil
}

// value returns the value of the series of name whose labels are exactly
// kv (pairs); it fails the test when there is no such series.
func value(t *testing.T, g prometheus.Gatherer, name string, kv ...string) float64 {
	t.Helper()
	s, ok := find(t, g, name, kv...)
	if !ok {
		t.Fatalf("no series %s%v; have %v", name, kv, gather(t, g, name))
	}
	return s.value
}

func find(t *testing.T, g prometheus.Gatherer, name string, kv ...string) (series, bool) {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		want[kv[i]] = kv[i+1]
	}
	for _, s := range gather(t, g, name) {
		if len(s.labels) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			return s, true
		}
	}
	return series{}, false
}
