package cms

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to Open, DecryptTo, VerifyTo and
// Inspect with keys that open the seed corpus (testdata/fuzz/FuzzOpen,
// made by internal/corpusgen from Seal and openssl). Nothing may panic,
// every failure must be a rejection or ErrDecrypt-like error, and a
// failed DecryptTo must have discarded its output. Lengths are capped by
// the parser, so no input makes it allocate more than its caps.
func FuzzOpen(f *testing.F) {
	ks, ss := keys(f)
	var ids Identities
	for _, n := range []string{"rsa2048", "p256", "p384"} {
		id, err := NewIdentity(ks[n].key)
		if err != nil {
			f.Fatal(err)
		}
		ids = append(ids, id)
	}
	opts := &OpenOptions{AllowUnauthenticated: true, AllowUnsigned: true,
		Senders: trusted{ss["sign-p256"].priv.Public(), ss["sign-rsa2048"].priv.Public()}}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if _, err := Inspect(bytes.NewReader(msg)); err != nil && !errors.Is(err, ErrRejected) {
			t.Fatalf("Inspect: error that is not a rejection: %v", err)
		}
		_, _, err := openBytes(msg, ids, opts) // panics if output was not discarded
		if err != nil && !errors.Is(err, ErrRejected) {
			t.Fatalf("Open: error that is not a rejection: %v", err)
		}
		d, err := Open(bytes.NewReader(msg), ids, opts)
		if err != nil {
			return
		}
		var spool bytes.Buffer
		if v, err := d.VerifyTo(&spool); err == nil {
			var out bytes.Buffer
			if err := v.DecryptFrom(&spool, &out); err != nil {
				t.Fatalf("DecryptFrom after VerifyTo: %v", err)
			}
		}
	})
}

// TestFuzzCorpusPresent keeps FuzzOpen's seed corpus from silently
// disappearing: `go test` runs the seeds, so they must be there.
func TestFuzzCorpusPresent(t *testing.T) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzOpen", "*"))
	if err != nil || len(seeds) < 20 {
		t.Fatalf("FuzzOpen seed corpus: %d files (%v); run go run ./envelope/cms/internal/corpusgen", len(seeds), err)
	}
	// The seeds made by Seal and openssl open with the fuzz target's keys,
	// so the fuzzer starts deep in the parser.
	ks, ss := keys(t)
	var ids Identities
	for _, n := range []string{"rsa2048", "p256", "p384"} {
		id, _ := NewIdentity(ks[n].key)
		ids = append(ids, id)
	}
	opts := &OpenOptions{AllowUnauthenticated: true, AllowUnsigned: true,
		Senders: trusted{ss["sign-p256"].priv.Public(), ss["sign-rsa2048"].priv.Public()}}
	opened := 0
	for _, s := range seeds {
		name := filepath.Base(s)
		if !strings.HasPrefix(name, "seal-") && !strings.HasPrefix(name, "openssl-") {
			continue
		}
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(data), "\n", 3)
		if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
			t.Fatalf("%s: not a fuzz corpus file", name)
		}
		msg, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, _, err := openBytes([]byte(msg), ids, opts); err != nil {
			t.Fatalf("seed %s does not open: %v", name, err)
		}
		opened++
	}
	if opened < 20 {
		t.Fatalf("only %d seeds open", opened)
	}
}
