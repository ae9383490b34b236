package kafka

import (
	"log/slog"
	"os"
)

// KDEBUG=1 sends the sources' and clients' logs of the tests to stderr at
// info level, for diagnosing group behaviour.
func init() {
	if os.Getenv("KDEBUG") != "" {
		dbgLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
}
