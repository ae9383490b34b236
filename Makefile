# streamd — the commands the README names.
GO        ?= go
BIN       := bin/streamd
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)

.PHONY: run build test peers lint bench bench-micro clean

## run: replay the bundled sample data to ./var/out (local files, no services)
run: build
	./$(BIN) run --config configs/local.yaml

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/streamd

## test: install and start every test peer, then run all tests with the race detector
test: peers lint
	$(GO) test -race -count=1 -timeout 45m ./...

## peers: install the test peers (MinIO, kcat, kinesalite, DynamoDB Local) into .cache
peers:
	./internal/testenv/install-peers.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

## bench: end-to-end replay and Kafka → Parquet benchmarks (records/s, peak RSS) plus the micro-benchmarks
bench:
	$(GO) test -run '^$$' -bench 'BenchmarkReplaySales1M' -benchtime 3x ./cmd/streamd
	STREAMD_BENCH_WINDOW="{max_records: 50000, max_age: 1s}" $(GO) test -run '^$$' -bench KafkaToParquet -benchtime 3x ./ingest/kafka/e2e
	$(GO) test -run '^$$' -bench . -benchmem ./transform/... ./sink/parquet/...

clean:
	rm -rf bin var
