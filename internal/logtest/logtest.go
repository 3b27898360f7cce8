// Package logtest captures what code logs through log/slog, for tests
// that check what was logged (at Debug level: the paths chosen, the
// CKR_ values kept out of error messages).
package logtest

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// Buffer collects log lines; it is safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was logged since the last Reset.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Reset forgets what was logged.
func (l *Buffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// Debug sends every log record, Debug level up, to a Buffer for the rest
// of the test (which must not be parallel), as slog's text handler
// writes it.
func Debug(t testing.TB) *Buffer {
	l := &Buffer{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return l
}
