//go:build unix

package objstore

import "syscall"

// notDir is the error for a path with a file where a directory is expected.
var notDir error = syscall.ENOTDIR
