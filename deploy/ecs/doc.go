// Package ecs holds no code: the directory carries the Amazon ECS task
// definitions and IAM policies for running streamd (see README.md), and
// its test checks that they are well-formed and keep the settings streamd
// relies on (health check through the binary, stop timeout above the drain
// deadline, metrics port, least-privilege policies).
package ecs
