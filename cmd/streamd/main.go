package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/streamd/streamd/internal/config"
	"github.com/streamd/streamd/internal/telemetry"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	// Signals are caught from the first instruction on, so a SIGTERM that
	// arrives while the config loads still means a clean stop.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  streamd run --config FILE [--log-level debug|info|warn|error]
  streamd validate --config FILE
  streamd infer --config FILE [--pipeline NAME] [--sample N] [--nested json|flatten] [--separator _]
  streamd schema --config FILE [--pipeline NAME]
  streamd checkpoints --config FILE [--pipeline NAME] [--json]
  streamd health [--url URL] [--timeout D]
  streamd version
`

// run is main without the process exit, for tests. Exit codes: 0 success,
// 1 runtime failure, 2 usage or config error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("streamd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (YAML)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile to this file when the run ends")
	switch cmd {
	case "infer":
		return runInfer(rest, stdout, stderr)
	case "checkpoints":
		return runCheckpoints(rest, stdout, stderr)
	case "schema":
		return runSchema(ctx, rest, stdout, stderr)
	case "health":
		return runHealth(rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "streamd", versionString())
		return 0
	case "run", "validate":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "streamd: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	if *cfgPath == "" {
		fmt.Fprintf(stderr, "streamd %s: --config is required\n", cmd)
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err == nil {
		err = cfg.CheckRunnable()
	}
	if err != nil {
		fmt.Fprintf(stderr, "streamd: invalid config:\n%v\n", err)
		return 2
	}
	if cmd == "validate" {
		// Compile each pipeline's transforms too: column references are
		// checked against the schema each step sees.
		var errs []error
		for _, pc := range cfg.Pipelines {
			if _, _, err := compileTransforms(pc, nil, slog.New(slog.DiscardHandler)); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			fmt.Fprintf(stderr, "streamd: invalid config:\n%v\n", err)
			return 2
		}
		fmt.Fprintf(stdout, "%s: ok (%d pipelines)\n", *cfgPath, len(cfg.Pipelines))
		return 0
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "streamd run: --log-level: %v\n", err)
		return 2
	}
	red := telemetry.NewRedactor(telemetry.ConfigSecrets(cfg)...)
	log := slog.New(telemetry.NewRedactingHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}), red))
	budget := telemetry.MemoryProbe{}.Detect(int64(cfg.MemoryLimit))
	if budget.Bytes <= 0 {
		budget.Bytes, budget.Source = int64(config.DefaultMemoryLimit), "default"
	}
	goLimit := telemetry.ApplyMemoryLimit(budget.Bytes)
	log.Info("memory budget", slog.Int64("bytes", budget.Bytes), slog.String("source", budget.Source),
		slog.Int64("cgroup_limit", budget.Cgroup), slog.Int64("go_memory_limit", goLimit))
	if budget.Cgroup > 0 && budget.Bytes > budget.Cgroup {
		log.Warn("memory_limit exceeds the container's memory limit",
			slog.Int64("memory_limit", budget.Bytes), slog.Int64("cgroup_limit", budget.Cgroup))
	}
	if cfg.UseHugePages() {
		// Before anything grows the heap: the advised range is where it
		// grows next. The Go limit is normally the smaller; GOMEMLIMIT may
		// be set higher than the budget, or not at all.
		hp, err := telemetry.HugePageHeap(min(goLimit, budget.Bytes))
		switch {
		case err != nil:
			log.Warn("heap huge pages", slog.String("thp_mode", hp.Mode), slog.String("error", err.Error()))
		case hp.Skipped != "":
			log.Info("heap huge pages", slog.String("thp_mode", hp.Mode), slog.String("skipped", hp.Skipped))
		default:
			log.Info("heap huge pages", slog.String("thp_mode", hp.Mode), slog.Int64("bytes", hp.Bytes))
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "streamd run: --cpuprofile: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "streamd run: --cpuprofile: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	// Buffered batches get 60% of the memory budget; the rest is for the
	// runtime, records being decoded, encoders and the GC's headroom, so
	// that memory_limit bounds the whole process.
	if err := runConfig(ctx, cfg, budget.Bytes*6/10, red, log, stderr); err != nil {
		var cfgErr *config.Error
		if errors.As(err, &cfgErr) {
			fmt.Fprintf(stderr, "streamd: invalid config:\n%v\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "streamd: error: %v\n", err)
		return 1
	}
	return 0
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
