// Command streamd runs streaming ETL pipelines described by a YAML config.
//
//	streamd run --config FILE        run until SIGTERM, or until a finite source is committed
//	streamd validate --config FILE   check a config; errors name the key and line
//	streamd version                  print the version
//
// This package holds flags, config loading, wiring and signals only; the
// runtime is package pipeline.
package main
