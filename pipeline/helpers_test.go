package pipeline_test

import "os"

func osMkdirTemp() (string, error) { return os.MkdirTemp("", "streamd-example") }
func osRemoveAll(dir string) error { return os.RemoveAll(dir) }
