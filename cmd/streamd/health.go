package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const healthUsage = `usage: streamd health [--url URL] [--timeout D]

GETs URL and exits 0 on a 2xx answer, 1 otherwise (error status, refused
connection, timeout). It is the container health check of images without
a shell (distroless): ["CMD", "/streamd", "health"]. Without --url it
checks /healthz at $STREAMD_HTTP_LISTEN (an empty or wildcard host means
127.0.0.1), else at 127.0.0.1:9464.
`

// defaultHealthAddr is http.listen's default.
const defaultHealthAddr = "127.0.0.1:9464"

// runHealth is `streamd health`. Exit codes: 0 healthy, 1 unhealthy or
// unreachable, 2 usage error.
func runHealth(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("streamd health", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() { fmt.Fprint(stderr, healthUsage); fset.PrintDefaults() }
	url := fset.String("url", "", "URL to GET (default: /healthz at $STREAMD_HTTP_LISTEN or "+defaultHealthAddr+")")
	timeout := fset.Duration("timeout", 3*time.Second, "give up after this long (keep it below the health check's timeout)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "streamd health: unexpected argument %q\n", fset.Arg(0))
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "streamd health: --timeout must be positive")
		return 2
	}
	target := *url
	if target == "" {
		target = defaultHealthURL(os.Getenv("STREAMD_HTTP_LISTEN"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintf(stderr, "streamd health: %v\n", err)
		return 2
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "streamd health: GET %s: %v\n", target, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(stderr, "streamd health: GET %s: %s: %s\n", target, resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s\n", target, resp.Status)
	return 0
}

// defaultHealthURL returns the /healthz URL of listen (host:port as in
// http.listen); a wildcard or empty host is reached on 127.0.0.1.
func defaultHealthURL(listen string) string {
	if listen == "" {
		return "http://" + defaultHealthAddr + "/healthz"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen + "/healthz"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz"
}
