package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// duckdbScript runs one SQL statement with DuckDB's Node.js binding and
// prints the rows as a JSON array of objects (values as JSON-safe text for
// big integers and decimals).
const duckdbScript = `const { DuckDBInstance } = require('@duckdb/node-api');
(async () => {
  const inst = await DuckDBInstance.create(':memory:');
  const con = await inst.connect();
  const r = await con.runAndReadAll(process.argv[2]);
  process.stdout.write(JSON.stringify(r.getRowObjectsJson()));
})().catch(e => { process.stderr.write(String((e && e.message) || e)); process.exit(1); });
`

// FindDuckDB returns node's path and the node_modules directory holding
// @duckdb/node-api: $STREAMD_NODE_MODULES, else the repository's
// .cache/npm/node_modules.
func FindDuckDB() (node, modules string, err error) {
	return findNodeModule("duckdb", filepath.Join("@duckdb", "node-api"))
}

// DuckDBQuery runs sql in an in-memory DuckDB (a real engine, the way a
// data engineer reads the output) and returns the rows, each column's
// value as DuckDB renders it to JSON. A missing DuckDB fails the test
// with PeersInstallHint; it is never skipped.
func DuckDBQuery(t testing.TB, sql string) []map[string]any {
	t.Helper()
	node, modules, err := FindDuckDB()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "query.cjs")
	if err := os.WriteFile(script, []byte(duckdbScript), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, sql)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("duckdb %q: %v: %s", sql, err, stderr.String())
	}
	var rows []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("duckdb %q: decode result: %v: %s", sql, err, stdout.String())
	}
	return rows
}
