package sidecar_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/streamd/streamd"
	"github.com/streamd/streamd/ingest"
	"github.com/streamd/streamd/ingest/sidecar"
)

type noCommit struct{}

func (noCommit) Resume(context.Context, string) (streamd.Position, bool, error) {
	return streamd.Position{}, false, nil
}

// A sidecar source acknowledges a POST /ingest once its records are
// fsynced to the write-ahead log, and hands them on as its lane's records.
func ExampleSource() {
	dir, _ := os.MkdirTemp("", "streamd-sidecar-example")
	defer os.RemoveAll(dir)
	src, err := sidecar.New(sidecar.Config{Listen: "127.0.0.1:0", Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan ingest.Chunk, 8)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, noCommit{}, out) }()
	<-src.Ready()

	resp, err := http.Post("http://"+src.Addr()+"/ingest", "application/x-ndjson", strings.NewReader("{\"n\":1}\n{\"n\":2}\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("status", resp.StatusCode)
	c := <-out
	for _, r := range c.Records {
		fmt.Printf("%s %s at %s\n", c.Lane, r.Data, r.Pos)
	}
	cancel()
	fmt.Println("run:", <-done)
	// Output:
	// status 200
	// http {"n":1} at 1099511627776
	// http {"n":2} at 1099511627799
	// run: <nil>
}
