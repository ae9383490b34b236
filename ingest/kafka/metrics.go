package kafka

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// metrics are the source's own gauges plus franz-go's kprom hooks.
type metrics struct {
	reg prometheus.Registerer
	lag *prometheus.GaugeVec // topic, partition
}

// newMetrics registers the lag gauge; it returns nil metrics (every method
// a no-op) when reg is nil.
func newMetrics(reg prometheus.Registerer, pipeline string) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	var constLabels prometheus.Labels
	if pipeline != "" {
		constLabels = prometheus.Labels{"pipeline": pipeline}
	}
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace:   "streamd",
		Subsystem:   "kafka",
		Name:        "partition_lag_records",
		Help:        "Records of an owned partition not yet committed by this pipeline: the fetch high watermark (last stable offset under read_committed) minus the next offset to commit.",
		ConstLabels: constLabels,
	}, []string{"topic", "partition"})
	if err := reg.Register(lag); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("register kafka metrics: %w", err)
		}
		lag = are.ExistingCollector.(*prometheus.GaugeVec)
	}
	return &metrics{reg: reg, lag: lag}, nil
}

// kprom returns the franz-go client hooks, or nil without a registry.
func (m *metrics) kprom(pipeline string) kgo.Hook {
	if m == nil {
		return nil
	}
	opts := []kprom.Opt{kprom.Registerer(m.reg), kprom.Subsystem("kafka")}
	if pipeline != "" {
		opts = append(opts, kprom.WithStaticLabel(prometheus.Labels{"pipeline": pipeline}))
	}
	return kprom.NewMetrics("streamd", opts...)
}

func (m *metrics) setLag(topic string, partition int32, lag int64) {
	if m == nil {
		return
	}
	if lag < 0 {
		lag = 0
	}
	m.lag.WithLabelValues(topic, strconv.Itoa(int(partition))).Set(float64(lag))
}

func (m *metrics) dropLag(topic string, partition int32) {
	if m == nil {
		return
	}
	m.lag.DeleteLabelValues(topic, strconv.Itoa(int(partition)))
}
