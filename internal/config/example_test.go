package config_test

import (
	"fmt"

	"github.com/streamd/streamd/internal/config"
)

func ExampleParse() {
	src := []byte(`pipelines:
  - name: sales
    source: {type: file, paths: ["${DATA:-data}/*.jsonl"]}
    schema:
      - {name: id, type: string}
      - {name: region, type: string}
    window: {max_age: 10s}
    sink: {type: parquet, path: ./out, partition_by: [region]}
`)
	cfg, err := config.Parse(src, "sales.yaml", func(string) (string, bool) { return "", false })
	if err != nil {
		fmt.Println(err)
		return
	}
	p := cfg.Pipelines[0]
	fmt.Println(p.Name, p.Source.Paths, p.Source.Format, p.Window.MaxRecords, p.Window.MaxAge, p.Sink.Compression)

	_, err = config.Parse([]byte("pipelines:\n  - name: sales\n    window: {max_recrds: 5}\n"), "bad.yaml", nil)
	fmt.Println(err)
	// Output:
	// sales [data/*.jsonl] jsonl 100000 10s snappy
	// bad.yaml:3: unknown key "max_recrds" in pipelines[0].window (known: max_records, max_bytes, max_age); did you mean "max_records"?
}
