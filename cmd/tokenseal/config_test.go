package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	cfg, err := parseConfig("/etc/ts/config", []byte(`
# comment
  module = /usr/lib/softhsm/libsofthsm2.so
token = "pkcs11:token=my%20card"   # quoted, then a comment
token_serial = 50fa8acefcf9ae21 # a comment
pin-file = ~/secrets/pin
sign-with = alice#sign
state-dir = state
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"module":       "/usr/lib/softhsm/libsofthsm2.so",
		"token":        "pkcs11:token=my%20card",
		"token-serial": "50fa8acefcf9ae21",
		"pin-file":     filepath.Join(home, "secrets/pin"),
		"sign-with":    "alice#sign", // # starts a comment only after a blank
		"state-dir":    "/etc/ts/state",
	}
	for k, v := range want {
		if got := cfg.values[k]; got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(cfg.values) != len(want) {
		t.Errorf("values: %v", cfg.values)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"pin = 1234", "c:1: pin: a PIN is never kept in the config file"},
		{"\nPIN=1234", "c:2: pin: a PIN is never kept"},
		{"user_pin = 1234", "user-pin: a PIN is never kept"},
		{"so-pin = 1234", "so-pin: a PIN is never kept"},
		{"pin-value = 1234", "pin-value: a PIN is never kept"},
		{"so-pin-file = x", `unknown key "so-pin-file"`},
		{"verbose = true", `unknown key "verbose" (known: module, token,`},
		{"token", "c:1: expected key = value"},
		{"token =", "token: empty value"},
		{`token = "a`, "unterminated quote"},
		{`token = "a" b`, "text after the closing quote"},
		{"token = a\ntoken = b", "c:2: token given twice"},
	} {
		_, err := parseConfig("c", []byte(c.in))
		var ce *configError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.in, err, c.want)
		}
		if err != nil && strings.Contains(c.in, "1234") && strings.Contains(err.Error(), "1234") {
			t.Errorf("%q: the error repeats the PIN: %v", c.in, err)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)

	// No default file: no config, no error.
	if cfg, err := loadConfig(""); cfg != nil || err != nil {
		t.Fatalf("missing default: %v, %v", cfg, err)
	}
	// A missing explicit file is an error.
	_, err := loadConfig(filepath.Join(dir, "nosuch"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "cannot read it") {
		t.Fatalf("missing --config: %v", err)
	}
	// The default file is found under $XDG_CONFIG_HOME.
	if err := os.MkdirAll(filepath.Join(dir, "tokenseal"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenseal", "config"), []byte("state-dir = st\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig("")
	if err != nil || cfg == nil {
		t.Fatalf("default: %v, %v", cfg, err)
	}
	if got, want := cfg.values["state-dir"], filepath.Join(dir, "tokenseal", "st"); got != want {
		t.Errorf("state-dir = %q, want %q", got, want)
	}
	// A directory where the default file should be is an error, not
	// silence.
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "x"))
	if err := os.MkdirAll(filepath.Join(dir, "x", "tokenseal", "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(""); err == nil {
		t.Error("unreadable default config: no error")
	}
}
