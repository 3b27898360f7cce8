package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/envelope"
)

// A CKA_LABEL is whatever the token holds (another tool, or whoever can
// write to the token, chose it). One holding a newline, an escape
// sequence or a bidirectional override is printed and written escaped
// everywhere, and never forges a line of a table or of an exported key
// file (issue 11 finding 6). Before the fix, key export wrote the label
// raw: a label could add "# oaep-hash: sha1" to the exported file.
func TestHostileLabels(t *testing.T) {
	r := newRig(t)
	evil := "bob\n# oaep-hash: sha1\n\x1b[31mred\u202eevil"
	quoted := `"bob\n# oaep-hash: sha1\n\x1b[31mred\u202eevil"`
	r.expect(0, r.send, "key", "generate", "--label", evil, "--type", "rsa-2048", "--usage", "exchange")
	exported := r.path("bob.pem")
	r.expect(0, r.send, "key", "export", "--label", evil, "-o", exported)
	pemText := string(r.read(exported))
	if !strings.Contains(pemText, "\n# label: "+quoted+"\n") || strings.Count(pemText, "oaep-hash") != 2 {
		t.Fatalf("exported key file:\n%s", pemText)
	}
	kf, err := envelope.ParseKeyFile([]byte(pemText))
	if err != nil || kf.Label != quoted {
		t.Fatalf("ParseKeyFile: %+v, %v", kf, err)
	}
	noRaw := func(what, out string) {
		t.Helper()
		if strings.ContainsAny(out, "\x1b\u202e") || strings.Contains(out, "\n# oaep-hash: sha1\n\x1b") {
			t.Fatalf("%s prints the label raw:\n%q", what, out)
		}
	}
	list := r.expect(0, r.send, "key", "list").stdout
	noRaw("key list", list)
	if !strings.Contains(list, "\n"+quoted+" ") {
		t.Fatalf("key list:\n%s", list)
	}
	// JSON holds the label exactly, escaped as JSON escapes.
	var keys []keyJSON
	if err := json.Unmarshal([]byte(r.expect(0, r.send, "key", "list", "--json").stdout), &keys); err != nil || len(keys) != 1 || keys[0].Label != evil {
		t.Fatalf("key list --json: %+v, %v", keys, err)
	}
	env := r.seal([]byte("x"), "--anonymous", "-r", exported)
	in := r.write("x.tseal", env)
	noRaw("inspect --labels", r.expect(0, r.send, "inspect", "--labels", in).stdout)
	doc := r.expect(0, r.send, "doctor").stdout
	noRaw("doctor", doc)
	if !strings.Contains(doc, quoted) {
		t.Fatalf("doctor does not name the key:\n%s", doc)
	}
}
