package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamd/streamd/checkpoint"
	ddbstore "github.com/streamd/streamd/checkpoint/dynamodb"
	"github.com/streamd/streamd/internal/config"
)

const checkpointsUsage = `usage: streamd checkpoints --config FILE [--pipeline NAME] [--json]

Lists, per pipeline of the config, the lanes its checkpoint store holds:
the committed position, the open intent (a batch written but not yet
committed, redone on the next start) and the size of the saved operator
state. It reads the store only (state_dir, or the checkpoint.table of a
dynamodb store through the AWS SDK's default configuration); it needs no
database client.
`

// checkpointsTimeout bounds the whole listing (a remote store may hang).
const checkpointsTimeout = 30 * time.Second

// laneView is one lane in the checkpoints listing.
type laneView struct {
	Lane string `json:"lane"`
	// Committed is the committed position, null before the first commit.
	Committed *string `json:"committed"`
	// Intent is the open intent, null when none.
	Intent *intentView `json:"intent"`
	// OpStateBytes is the size of the operator state saved with the commit.
	OpStateBytes int `json:"op_state_bytes"`
}

type intentView struct {
	From string `json:"from"`
	To   string `json:"to"`
}

type pipelineView struct {
	Name  string     `json:"name"`
	Lanes []laneView `json:"lanes"`
}

type checkpointsView struct {
	// Store is "file" or "dynamodb"; Location the state_dir or the table.
	Store     string         `json:"store"`
	Location  string         `json:"location"`
	Pipelines []pipelineView `json:"pipelines"`
}

// runCheckpoints is `streamd checkpoints`. Exit codes: 0 listed, 1 the
// store could not be read, 2 usage or config error.
func runCheckpoints(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("streamd checkpoints", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() { fmt.Fprint(stderr, checkpointsUsage); fset.PrintDefaults() }
	cfgPath := fset.String("config", "", "config file (YAML)")
	only := fset.String("pipeline", "", "list only this pipeline")
	asJSON := fset.Bool("json", false, "print JSON instead of a table")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "streamd checkpoints: unexpected argument %q\n", fset.Arg(0))
		return 2
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "streamd checkpoints: --config is required")
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "streamd: invalid config:\n%v\n", err)
		return 2
	}
	var names []string
	for _, p := range cfg.Pipelines {
		if *only == "" || p.Name == *only {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		var known []string
		for _, p := range cfg.Pipelines {
			known = append(known, p.Name)
		}
		fmt.Fprintf(stderr, "streamd checkpoints: no pipeline %q in %s (have: %s)\n", *only, *cfgPath, strings.Join(known, ", "))
		return 2
	}

	ctx, cancel := context.WithTimeout(context.Background(), checkpointsTimeout)
	defer cancel()
	store, view, err := openCheckpointStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "streamd checkpoints: %v\n", err)
		return 1
	}
	defer store.Close()
	if view.Store == "file" {
		if _, err := os.Stat(cfg.StateDir); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "streamd checkpoints: state_dir %s does not exist (nothing committed yet, or another working directory?)\n", cfg.StateDir)
		}
	}
	for _, name := range names {
		states, err := store.Lanes(ctx, name)
		if err != nil {
			fmt.Fprintf(stderr, "streamd checkpoints: %v\n", err)
			return 1
		}
		view.Pipelines = append(view.Pipelines, pipelineOf(name, states))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(view); err != nil {
			fmt.Fprintf(stderr, "streamd checkpoints: write: %v\n", err)
			return 1
		}
		return 0
	}
	if err := printCheckpoints(stdout, view); err != nil {
		fmt.Fprintf(stderr, "streamd checkpoints: write: %v\n", err)
		return 1
	}
	return 0
}

// openCheckpointStore opens the store the config names without changing
// anything: a missing DynamoDB table is reported, not created.
func openCheckpointStore(ctx context.Context, cfg *config.Config) (checkpoint.Store, checkpointsView, error) {
	store := "file"
	if cfg.Checkpoint != nil && cfg.Checkpoint.Store != "" {
		store = cfg.Checkpoint.Store
	}
	switch store {
	case "file":
		return checkpoint.NewFileStore(cfg.StateDir), checkpointsView{Store: "file", Location: cfg.StateDir, Pipelines: []pipelineView{}}, nil
	case "dynamodb":
		// The SDK's default chain: AWS_REGION, credentials or the task
		// role, AWS_ENDPOINT_URL_DYNAMODB.
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, checkpointsView{}, fmt.Errorf("open checkpoint table %q: load aws config: %w", cfg.Checkpoint.Table, err)
		}
		s := ddbstore.New(dynamodb.NewFromConfig(awsCfg), ddbstore.Config{Table: cfg.Checkpoint.Table})
		return s, checkpointsView{Store: "dynamodb", Location: cfg.Checkpoint.Table, Pipelines: []pipelineView{}}, nil
	}
	return nil, checkpointsView{}, fmt.Errorf("list checkpoints in store %q: not supported in this build (file or dynamodb)", store)
}

func pipelineOf(name string, states []checkpoint.State) pipelineView {
	pv := pipelineView{Name: name, Lanes: []laneView{}}
	for _, st := range states {
		lv := laneView{Lane: st.Lane, OpStateBytes: len(st.OpState)}
		if st.HasCommit {
			c := st.Committed.String()
			lv.Committed = &c
		}
		if st.Intent != nil {
			lv.Intent = &intentView{From: st.Intent.From.String(), To: st.Intent.To.String()}
		}
		pv.Lanes = append(pv.Lanes, lv)
	}
	slices.SortFunc(pv.Lanes, func(a, b laneView) int { return strings.Compare(a.Lane, b.Lane) })
	return pv
}

// printCheckpoints writes the listing as an aligned table.
func printCheckpoints(w io.Writer, v checkpointsView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "# %s store: %s\n", v.Store, v.Location)
	fmt.Fprintln(tw, "PIPELINE\tLANE\tCOMMITTED\tOPEN INTENT\tOP STATE")
	for _, p := range v.Pipelines {
		if len(p.Lanes) == 0 {
			fmt.Fprintf(tw, "%s\t(no lanes checkpointed)\t\t\t\n", p.Name)
			continue
		}
		for _, l := range p.Lanes {
			committed, intent := "-", "-"
			if l.Committed != nil {
				committed = *l.Committed
			}
			if l.Intent != nil {
				intent = "[" + l.Intent.From + ", " + l.Intent.To + "]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d B\n", p.Name, l.Lane, committed, intent, l.OpStateBytes)
		}
	}
	return tw.Flush()
}
