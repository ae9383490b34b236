package testenv

import (
	"fmt"
	"strings"
	"testing"
)

func TestDuckDBQuery(t *testing.T) {
	rows := DuckDBQuery(t, "select 40 + 2 as answer, 'x' || 'y' as s, cast(null as varchar) as n")
	if len(rows) != 1 || fmt.Sprint(rows[0]["answer"]) != "42" || rows[0]["s"] != "xy" || rows[0]["n"] != nil {
		t.Fatalf("rows %v", rows)
	}
}

func TestFindDuckDBMissing(t *testing.T) {
	t.Setenv("STREAMD_NODE_MODULES", t.TempDir())
	if _, _, err := FindDuckDB(); err == nil || !strings.Contains(err.Error(), "install-peers.sh") {
		t.Fatalf("FindDuckDB = %v, want an error naming install-peers.sh", err)
	}
}
