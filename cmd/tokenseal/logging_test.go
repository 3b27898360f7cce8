package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestLogRedaction(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newLogHandler(&buf, slog.LevelDebug))
	log.Debug("x",
		"pin", "1234-user", "so_pin", "5678-so", "user-PIN", "9999", "password", "hunter2",
		"file_key", []byte{0xde, 0xad, 0xbe, 0xef}, "secret", [32]byte{0xca, 0xfe},
		slog.Group("g", "pin", "4321"),
		"label", "alice", "key_id", "5f1c", "serial", uint64(7), "err", errors.New("CKR_PIN_INCORRECT"))
	out := buf.String()
	for _, leak := range []string{"1234-user", "5678-so", "9999", "hunter2", "deadbeef", "[222 173", "cafe", "[202 254", "4321"} {
		if strings.Contains(out, leak) {
			t.Errorf("log shows %q: %s", leak, out)
		}
	}
	for _, keep := range []string{"label=alice", "key_id=5f1c", "serial=7", "err=CKR_PIN_INCORRECT", `file_key="[4 bytes redacted]"`} {
		if !strings.Contains(out, keep) {
			t.Errorf("log lacks %q: %s", keep, out)
		}
	}
}
