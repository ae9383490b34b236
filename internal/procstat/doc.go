// Package procstat measures a child process's peak resident memory for
// benchmarks.
//
// getrusage's ru_maxrss is unusable for a child started by os/exec on
// Linux: the child is created with vfork semantics and, at exec, the
// kernel folds the parent's high-water RSS into the child's maxrss, so a
// large benchmark process (one that holds a Kafka broker's data, say)
// inflates the number. Watch instead polls the child's own VmHWM.
package procstat
