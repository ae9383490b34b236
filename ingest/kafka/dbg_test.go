package kafka

import (
	"log/slog"
	"os"
)

func init() {
	if os.Getenv("KDEBUG") != "" {
		dbgLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
}
