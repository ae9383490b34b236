// Package telemetry is streamd's operations surface: Prometheus metrics
// fed by the pipeline runtime (Metrics implements pipeline.Observer), the
// HTTP listener that serves /metrics, /healthz and /readyz (Server), the
// process memory budget derived from the configuration, GOMEMLIMIT or the
// container's cgroup (MemoryLimit, ApplyMemoryLimit), transparent huge
// pages for the heap (HugePageHeap), and secret redaction for logs and HTTP
// answers (Redactor, RedactingHandler, ConfigSecrets).
//
// Every metric is registered on a registry the caller injects, never on the
// global one; names follow streamd_<subsystem>_<name>_<unit> and labels are
// bounded (pipeline, reason; lane only where the source's lane count bounds
// it). README.md lists every metric with its meaning.
package telemetry
