//go:build !unix

package objstore

import "errors"

// notDir is never matched on systems without ENOTDIR.
var notDir = errors.New("not a directory")
