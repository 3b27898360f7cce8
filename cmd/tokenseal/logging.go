package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// newLogHandler is the --verbose log: text on stderr. Log calls name
// modules, tokens, key labels and key ids, mechanisms and errors; none
// passes a PIN or key bytes (checked by hand: grep slog. in cmd/ and
// token/). As a second line of defence, an attribute whose name speaks of
// a PIN, password or secret, and any raw byte slice or array, is printed
// redacted, so a careless log call cannot leak one.
func newLogHandler(w io.Writer, level slog.Level) slog.Handler {
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr})
}

func redactAttr(_ []string, a slog.Attr) slog.Attr {
	k := strings.ToLower(a.Key)
	if strings.Contains(k, "pin") || strings.Contains(k, "passw") || strings.Contains(k, "secret") {
		return slog.String(a.Key, "[redacted]")
	}
	if a.Value.Kind() == slog.KindAny {
		switch v := a.Value.Any().(type) {
		case []byte:
			return slog.String(a.Key, fmt.Sprintf("[%d bytes redacted]", len(v)))
		case [16]byte, [24]byte, [32]byte, [48]byte, [64]byte:
			return slog.String(a.Key, "[bytes redacted]")
		}
	}
	return a
}
