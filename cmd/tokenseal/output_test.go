package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestForceTempName is issue 11 finding 6: with --force the new file is
// linked under a temporary name beside OUT, then renamed over it. That
// name was .OUT.tokenseal-PID: another user of a shared writable
// directory could take it first and make the commit fail after the
// ledger had counted the envelope (used up, nothing written). Now it is
// random and made exclusively: the name the old code would use, taken,
// changes nothing.
func TestForceTempName(t *testing.T) {
	c := newRig(t)
	pem := c.key("bob", "p256", "exchange")
	c.trust("alice", c.key("sig", "p256", "sign"))
	plain := []byte("attack at dawn\n")
	env := c.write("m.tseal", c.seal(plain, "--sign-with", "sig", "-r", pem))
	out := c.write("out.txt", []byte("old"))
	taken := filepath.Join(c.dir, ".out.txt.tokenseal-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(taken, 0o755); err != nil {
		t.Fatal(err)
	}
	c.expect(0, c.recv, "open", "--force", "-o", out, env)
	if got := string(c.read(out)); got != string(plain) {
		t.Fatalf("out = %q", got)
	}
	if m := tempsOf(out); len(m) != 1 || m[0] != taken {
		t.Fatalf("temporary files left: %v", m)
	}
}

// TestTempNameNotInErrors: an output's errors name the path the user
// gave, never a temporary one.
func TestTempNameNotInErrors(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(dir, "out")
	// A named temporary file (where O_TMPFILE is not available).
	f, err := os.CreateTemp(dir, ".out.tokenseal-*")
	if err != nil {
		t.Fatal(err)
	}
	a := &atomicFile{File: f, final: final}
	f.Close()
	_, werr := a.Write([]byte("x"))
	serr := a.Sync()
	perr := place(f.Name(), filepath.Join(dir, "gone", "out"), true)
	// An unnamed one whose directory went away before the commit.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o700)
	u, err := createOutput(filepath.Join(sub, "out"), true, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(sub)
	cerr := u.Commit(true, false)
	for i, err := range []error{werr, serr, perr, cerr} {
		if err == nil || strings.Contains(err.Error(), ".tokenseal-") || !strings.Contains(err.Error(), dir) {
			t.Errorf("error %d: %v", i, err)
		}
	}
}
