package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/internal/softhsmtest"
	"github.com/tokenseal/tokenseal/token"
)

// TestDoctorJSONShape pins the field names of `doctor --json`, which
// README.md documents as stable: every object has exactly the documented
// fields (those marked optional may be left out).
func TestDoctorJSONShape(t *testing.T) {
	st := softhsmtest.New(t)
	t.Setenv("TOKENSEAL_MODULE", st.Module)
	t.Setenv("TOKENSEAL_TOKEN", st.Label)
	t.Setenv("TOKENSEAL_PIN", st.PIN)
	t.Setenv("TOKENSEAL_STATE_DIR", filepath.Join(t.TempDir(), "state"))
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	tok, err := token.Open(token.Config{Module: st.Module, Token: st.Label, PIN: st.PIN})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		label, typ string
		usage      token.Usage
	}{{"alice", "rsa-2048", token.UsageExchange}, {"carol", "p256", token.UsageExchange}, {"me", "p256", token.UsageSign}} {
		if _, err := tok.GenerateKey(k.label, k.typ, k.usage); err != nil {
			t.Fatal(err)
		}
	}
	tok.Close()

	var out, errb bytes.Buffer
	if code := run([]string{"tokenseal", "doctor", "--json"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	shape := func(what string, v any, required, optional []string) {
		t.Helper()
		obj, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: %T, want an object", what, v)
			return
		}
		var got []string
		for k := range obj {
			got = append(got, k)
			if !slices.Contains(required, k) && !slices.Contains(optional, k) {
				t.Errorf("%s: undocumented field %q", what, k)
			}
		}
		for _, k := range required {
			if _, ok := obj[k]; !ok {
				sort.Strings(got)
				t.Errorf("%s: field %q missing (have %v)", what, k, got)
			}
		}
	}
	shape("report", rep, []string{"ok", "module", "slots", "token", "login", "trials_run", "token_objects", "mechanisms", "keys", "state", "problems", "notes"}, nil)
	shape("module", rep["module"], []string{"path", "cryptoki_version", "manufacturer", "library_description", "library_version"}, nil)
	for _, s := range rep["slots"].([]any) {
		shape("slot", s, []string{"slot", "description", "token_present", "initialized"}, []string{"token_label", "token_serial"})
	}
	shape("token", rep["token"], []string{"slot", "label", "serial", "manufacturer", "model", "hardware_version", "firmware_version",
		"min_pin_len", "max_pin_len", "flags", "user_pin_count_low", "user_pin_final_try", "user_pin_locked", "user_pin_to_be_changed"}, nil)
	mechs := rep["mechanisms"].([]any)
	var names []string
	for _, m := range mechs {
		shape("mechanism", m, []string{"name", "mechanism", "function", "used_for", "offered", "trial", "detail", "supported"}, nil)
		names = append(names, m.(map[string]any)["name"].(string))
	}
	want := []string{"rsa_oaep_unwrap_sha1", "rsa_oaep_unwrap_sha256", "rsa_oaep_decrypt_sha1", "rsa_oaep_decrypt_sha256",
		"rsa_x509_decrypt", "ecdh1_derive_null", "aes_key_wrap_pad", "ecdsa_sign", "rsa_pss_sign", "rsa_x509_sign", "generate_random",
		"rsa_key_pair_gen", "ec_key_pair_gen"}
	if !slices.Equal(names, want) {
		t.Errorf("mechanism names %v, want %v", names, want)
	}
	keys := rep["keys"].([]any)
	if len(keys) != 3 {
		t.Fatalf("%d keys", len(keys))
	}
	for _, k := range keys {
		shape("key", k, []string{"label", "id", "type", "usage", "made_by_tokenseal"},
			[]string{"open_path_oaep_sha1", "open_path_oaep_sha256", "export_oaep_hash", "open_path_ecdh", "sign", "problem"})
	}
	shape("state", rep["state"], []string{"ok", "backend", "dir", "exists", "db_exists", "ledger_opens", "counters_readable", "counters", "trusted_senders", "ledger_streams"},
		[]string{"dir_mode", "db_mode", "quick_check", "database"})
	if p := rep["problems"].([]any); len(p) != 0 {
		t.Errorf("problems: %v", p)
	}

	// Problems have an area and a message.
	t.Setenv("TOKENSEAL_PIN", "wrong")
	out.Reset()
	errb.Reset()
	if code := run([]string{"tokenseal", "doctor", "--json"}, strings.NewReader(""), &out, &errb); code != exitToken {
		t.Fatalf("wrong pin: exit %d, want %d", code, exitToken)
	}
	rep = nil
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	ps := rep["problems"].([]any)
	if len(ps) != 1 {
		t.Fatalf("problems: %v", ps)
	}
	shape("problem", ps[0], []string{"area", "message"}, nil)
	if rep["ok"] != false || rep["login"] != "failed" || rep["trials_run"] != false {
		t.Errorf("ok %v login %v trials_run %v", rep["ok"], rep["login"], rep["trials_run"])
	}
}
