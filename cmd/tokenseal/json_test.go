package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestJSONFieldNames pins the --json field names documented in README.md
// ("JSON output"): renaming one breaks scripts, so it must be deliberate.
func TestJSONFieldNames(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		v    any
		want []string
	}{
		{"key list", keyJSON{}, []string{"label", "id", "type", "bits", "curve", "usage", "fingerprint_sha256", "sensitive", "never_extractable", "made_by_tokenseal"}},
		{"trust list", trustJSON{}, []string{"name", "key_id", "added"}},
		{"ledger show", ledgerJSON{}, []string{"sender", "key_id", "stream_id", "highest_serial", "window_occupancy", "last_accepted"}},
		{"inspect (cms)", cmsInspectJSON{}, []string{"format", "encoding", "indefinite_length", "content_type", "version", "authenticated",
			"content_algorithm", "encrypted_content_type", "signed", "content_bytes", "recipients"}},
		{"inspect (cms) recipients", cmsRecipientJSON{}, []string{"type", "issuer", "serial", "subject_key_id", "algorithm", "label", "trusted_name"}},
	} {
		var got []string
		rt := reflect.TypeOf(c.v)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			got = append(got, name)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s --json fields: %v, want %v (update README.md too)", c.cmd, got, c.want)
		}
	}
}
