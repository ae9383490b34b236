// Package config loads, checks and prints streamd config files (contract
// v1 in DESIGN.md).
//
// Parsing is strict: the YAML is decoded through yaml.Node, so an unknown
// key, a duplicate key or a bad value is reported with its file, line and
// key path, for example
//
//	config.yaml:12: unknown key "max_recrds" in pipelines[0].window (known: max_records, max_bytes, max_age); did you mean "max_records"?
//	config.yaml:7: pipelines[0].window.max_age: invalid duration "3 0s" (want a number with a unit: 500ms, 30s, 5m, 24h, 7d)
//
// Scalar values may use ${NAME} and ${NAME:-default} (the default applies
// when NAME is unset or empty); $$ is a literal $. An unset variable
// without a default is an error naming the variable and line.
//
// Durations are Go durations plus a d (24h) unit; sizes are plain byte
// counts or numbers with KB/MB/GB (powers of 1000) or KiB/MiB/GiB (powers
// of 1024) units. Parse and Load apply the defaults (see SetDefaults) and
// then Validate, which returns every problem at once. Config.String and
// Config.Redacted print a config without its secrets.
package config
