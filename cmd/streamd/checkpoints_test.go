package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/checkpoint"
	ddbstore "github.com/streamd/streamd/checkpoint/dynamodb"
	"github.com/streamd/streamd/internal/testenv"
)

// checkpointsConfig writes a two-pipeline config whose state_dir is
// stateDir (plus extra top-level YAML) and returns its path.
func checkpointsConfig(t *testing.T, stateDir, extra string) string {
	t.Helper()
	dir := t.TempDir()
	src := fmt.Sprintf(`state_dir: %s
%s
pipelines:
  - name: sales
    source: {type: file, paths: ["%[3]s/in/*.jsonl"]}
    schema:
      - {name: id, type: string}
    sink: {type: parquet, path: %[3]s/out/sales}
  - name: orders
    source: {type: file, paths: ["%[3]s/in/*.csv"], format: csv}
    schema:
      - {name: id, type: string}
    sink: {type: parquet, path: %[3]s/out/orders}
`, stateDir, extra, dir)
	path := filepath.Join(dir, "streamd.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// seedCheckpoints writes lane states for sales through checkpoint.FileStore:
// a committed lane with operator state, a lane with an open intent after a
// commit, and a lane with only an intent (never committed).
func seedCheckpoints(t *testing.T, stateDir string) {
	t.Helper()
	ctx := context.Background()
	fs := checkpoint.NewFileStore(stateDir)
	pos := func(n int64) streamd.Position { return streamd.Position{Offset: n} }
	steps := []struct {
		in      streamd.Intent
		commit  bool
		opState []byte
	}{
		{streamd.Intent{Pipeline: "sales", Lane: "/data/in/b.jsonl", From: pos(0), To: pos(4095)}, true, []byte("dedup-state-17b")},
		{streamd.Intent{Pipeline: "sales", Lane: "/data/in/a.jsonl", From: pos(0), To: pos(99)}, true, nil},
		{streamd.Intent{Pipeline: "sales", Lane: "/data/in/a.jsonl", From: pos(100), To: pos(250)}, false, nil},
		{streamd.Intent{Pipeline: "sales", Lane: "shard-00000001", From: streamd.Position{Seq: "49590338271490256608559692538361571095921575989136588802"}, To: streamd.Position{Seq: "49590338271490256608559692538361571095921575989136588899", Sub: 2}}, false, nil},
	}
	for _, s := range steps {
		if err := fs.PutIntent(ctx, s.in); err != nil {
			t.Fatal(err)
		}
		if s.commit {
			if err := fs.Commit(ctx, s.in, s.opState); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCheckpointsTable(t *testing.T) {
	stateDir := t.TempDir()
	seedCheckpoints(t, stateDir)
	cfg := checkpointsConfig(t, stateDir, "")
	var out, errb bytes.Buffer
	if code := runCheckpoints([]string{"--config", cfg}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	want := []string{
		`^# file store: ` + regexp.QuoteMeta(stateDir) + `$`,
		`^PIPELINE +LANE +COMMITTED +OPEN INTENT +OP STATE$`,
		`^sales +/data/in/a\.jsonl +99 +\[100, 250\] +0 B$`,
		`^sales +/data/in/b\.jsonl +4095 +- +15 B$`,
		`^sales +shard-00000001 +- +\[49590338271490256608559692538361571095921575989136588802, 49590338271490256608559692538361571095921575989136588899\.2\] +0 B$`,
		`^orders +\(no lanes checkpointed\)`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d = %q, want /%s/", i, lines[i], re)
		}
	}
	// Columns line up: every row's LANE starts where the header's does.
	col := strings.Index(lines[1], "LANE")
	for _, l := range lines[2:5] {
		if !strings.HasPrefix(l[col:], "/data") && !strings.HasPrefix(l[col:], "shard") {
			t.Errorf("row %q is not aligned with the header", l)
		}
	}
}

func TestCheckpointsJSON(t *testing.T) {
	stateDir := t.TempDir()
	seedCheckpoints(t, stateDir)
	cfg := checkpointsConfig(t, stateDir, "")
	var out, errb bytes.Buffer
	if code := runCheckpoints([]string{"--config", cfg, "--json", "--pipeline", "sales"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got checkpointsView
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	str := func(s string) *string { return &s }
	want := checkpointsView{Store: "file", Location: stateDir, Pipelines: []pipelineView{{Name: "sales", Lanes: []laneView{
		{Lane: "/data/in/a.jsonl", Committed: str("99"), Intent: &intentView{From: "100", To: "250"}},
		{Lane: "/data/in/b.jsonl", Committed: str("4095"), OpStateBytes: 15},
		{Lane: "shard-00000001", Intent: &intentView{From: "49590338271490256608559692538361571095921575989136588802", To: "49590338271490256608559692538361571095921575989136588899.2"}},
	}}}}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Errorf("JSON listing:\n got %s\nwant %s", gj, wj)
	}
	// null, not "", marks a lane never committed and a lane without intent.
	if !strings.Contains(out.String(), `"committed": null`) || !strings.Contains(out.String(), `"intent": null`) {
		t.Errorf("missing values are not null:\n%s", out.String())
	}
}

func TestCheckpointsFailures(t *testing.T) {
	stateDir := t.TempDir()
	seedCheckpoints(t, stateDir)
	corrupt := t.TempDir()
	if err := os.MkdirAll(filepath.Join(corrupt, "sales"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corrupt, "sales", "x_0000.json"), []byte(`{"lane":"x","committed":"1.5.z"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "nope")
	badCfg := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badCfg, []byte("pipelines:\n  - name: sales\n    windw: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // regexp
		stderr string // regexp
	}{
		{"no config flag", nil, 2, `^$`, `--config is required`},
		{"stray argument", []string{"--config", checkpointsConfig(t, stateDir, ""), "sales"}, 2, `^$`, `unexpected argument "sales"`},
		{"unknown flag", []string{"--pipelines", "x"}, 2, `^$`, `flag provided but not defined`},
		{"invalid config", []string{"--config", badCfg}, 2, `^$`, `invalid config:(.|\n)*windw`},
		{"config missing", []string{"--config", filepath.Join(missing, "c.yaml")}, 2, `^$`, `invalid config`},
		{"unknown pipeline", []string{"--config", checkpointsConfig(t, stateDir, ""), "--pipeline", "salse"}, 2, `^$`, `no pipeline "salse" .*have: sales, orders`},
		{"corrupt state file", []string{"--config", checkpointsConfig(t, corrupt, "")}, 1, `^$`, `list checkpoints of pipeline "sales".*malformed position`},
		{"state_dir missing", []string{"--config", checkpointsConfig(t, missing, ""), "--json"}, 0, `"lanes": \[\]`, `state_dir .*nope does not exist`},
		{"help", []string{"-h"}, 0, `^$`, `usage: streamd checkpoints`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runCheckpoints(tt.args, &out, &errb)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
			if !regexp.MustCompile(tt.stdout).MatchString(out.String()) {
				t.Errorf("stdout %q, want /%s/", out.String(), tt.stdout)
			}
			if !regexp.MustCompile(tt.stderr).MatchString(errb.String()) {
				t.Errorf("stderr %q, want /%s/", errb.String(), tt.stderr)
			}
		})
	}
}

// TestCheckpointsDynamoDB lists a DynamoDB checkpoint table (DynamoDB
// Local) written by checkpoint/dynamodb, and fails on a missing table
// without creating it.
func TestCheckpointsDynamoDB(t *testing.T) {
	peer := testenv.DynamoDB(t)
	peer.SetEnv(t)
	ctx := context.Background()
	const table = "streamd-state"
	if err := ddbstore.EnsureTable(ctx, peer.Client(), table); err != nil {
		t.Fatal(err)
	}
	store := ddbstore.New(peer.Client(), ddbstore.Config{Table: table})
	seq := func(s string) streamd.Position { return streamd.Position{Seq: s} }
	in1 := streamd.Intent{Pipeline: "sales", Lane: "shardId-000000000001", From: seq("100"), To: seq("250")}
	in2 := streamd.Intent{Pipeline: "sales", Lane: "shardId-000000000002", From: seq("300"), To: seq("400")}
	in3 := streamd.Intent{Pipeline: "sales", Lane: "shardId-000000000002", From: seq("401"), To: seq("999")}
	for _, step := range []func() error{
		func() error { return store.PutIntent(ctx, in1) },
		func() error { return store.Commit(ctx, in1, []byte("state")) },
		func() error { return store.PutIntent(ctx, in2) },
		func() error { return store.Commit(ctx, in2, nil) },
		func() error { return store.PutIntent(ctx, in3) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}

	cfg := checkpointsConfig(t, t.TempDir(), "checkpoint: {store: dynamodb, table: "+table+"}")
	var out, errb bytes.Buffer
	if code := runCheckpoints([]string{"--config", cfg, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got checkpointsView
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	str := func(s string) *string { return &s }
	want := checkpointsView{Store: "dynamodb", Location: table, Pipelines: []pipelineView{
		{Name: "sales", Lanes: []laneView{
			{Lane: "shardId-000000000001", Committed: str("250"), OpStateBytes: 5},
			{Lane: "shardId-000000000002", Committed: str("400"), Intent: &intentView{From: "401", To: "999"}},
		}},
		{Name: "orders", Lanes: []laneView{}},
	}}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Errorf("JSON listing:\n got %s\nwant %s", gj, wj)
	}

	// A table that does not exist is an error, and is not created.
	missing := checkpointsConfig(t, t.TempDir(), "checkpoint: {store: dynamodb, table: no-such-table}")
	out.Reset()
	errb.Reset()
	if code := runCheckpoints([]string{"--config", missing}, &out, &errb); code != 1 {
		t.Errorf("missing table: exit %d, want 1 (stdout %q stderr %q)", code, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "no-such-table") && !strings.Contains(errb.String(), "ResourceNotFound") {
		t.Errorf("missing table: stderr %q does not name the problem", errb.String())
	}
	if _, err := peer.Client().DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("no-such-table")}); err == nil {
		t.Error("streamd checkpoints created the missing table")
	}
}
