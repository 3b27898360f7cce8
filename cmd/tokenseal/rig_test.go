package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/internal/softhsmtest"
)

// The CLI is tested with scripts (testdata/*.txtar, script_test.go). Go
// test code is kept for what a script cannot express (kills, concurrent
// processes, resource limits, a full disk, thousands of runs in a row,
// faults behind the token), and it runs the CLI one way: through rig,
// below.

// deadline bounds every tokenseal process: far above what any of them
// needs, it only turns a hang into a failure.
const deadline = 2 * time.Minute

// rig is a real SoftHSM2 token made for one test, a working directory,
// and a sender's and a recipient's state directory (as two hosts would
// have). It runs tokenseal in-process (run: fast, for many runs in a
// row; the environment is the test's, so the test must not be parallel)
// or as a process (command: the tokenseal that testscript.Main put on
// $PATH, the test binary itself, for kills and concurrency).
type rig struct {
	t    *testing.T
	dir  string // working directory for files
	tok  *softhsmtest.Token
	send string // the sender's state directory (serial counters)
	recv string // the recipient's state directory (trusted senders, ledger)
	// procs makes expect (and so key, trust, seal and ledger) run
	// processes, for tests whose processes share the token's files with
	// kills: then the test process never loads the module itself.
	procs bool
}

func newRig(t *testing.T) *rig {
	t.Helper()
	if _, err := softhsmtest.FindModule(); err != nil {
		t.Fatal(err) // never skip: CI must have SoftHSM2
	}
	dir := t.TempDir()
	tok, err := softhsmtest.Make(mkdir(t, filepath.Join(dir, "hsm")))
	if err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	c := &rig{t: t, dir: dir, tok: tok, send: filepath.Join(dir, "sender-state"), recv: filepath.Join(dir, "recipient-state")}
	for _, kv := range c.environ(c.recv) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("TOKENSEAL_PIN_FILE", "")
	return c
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (c *rig) path(name string) string { return filepath.Join(c.dir, name) }

// environ is what tokenseal sees: the token, the state directory (and
// no database URL the runner may have set), no config file, a private $TMPDIR (the open-to-stdout spool goes there),
// no race-detector pause at exit, then extra (later entries win).
func (c *rig) environ(state string, extra ...string) []string {
	env := append(c.tok.Env(),
		"TOKENSEAL_STATE_DIR="+state,
		"TOKENSEAL_STATE_URL=",
		"TOKENSEAL_CONFIG="+os.DevNull,
		"TMPDIR="+mkdir(c.t, c.path("tmp")),
		"GORACE=atexit_sleep_ms=0",
	)
	return append(env, extra...)
}

// result is how one run ended.
type result struct {
	code           int
	stdout, stderr string
}

// run runs tokenseal in-process in the test's environment (the
// recipient's state directory unless the test changed it).
func (c *rig) run(args ...string) result {
	code, stdout, stderr := c.runCLI(args...)
	return result{code, stdout, stderr}
}

// runCLI is run, its result spelled out.
func (c *rig) runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(append([]string{"tokenseal"}, args...), strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

// runIn runs tokenseal in-process with state as its state directory.
func (c *rig) runIn(state string, args ...string) result {
	old := os.Getenv("TOKENSEAL_STATE_DIR")
	os.Setenv("TOKENSEAL_STATE_DIR", state)
	defer os.Setenv("TOKENSEAL_STATE_DIR", old)
	return c.run(args...)
}

// command is a tokenseal process, not started, with state as its state
// directory.
func (c *rig) command(ctx context.Context, state string, args ...string) *exec.Cmd {
	c.t.Helper()
	bin, err := exec.LookPath("tokenseal")
	if err != nil {
		c.t.Fatalf("tokenseal is not on $PATH (testscript.Main puts it there): %v", err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = c.dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKENSEAL_") && !strings.HasPrefix(kv, "SOFTHSM2_CONF=") && !strings.HasPrefix(kv, "GORACE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, c.environ(state)...)
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// exec runs a tokenseal process to completion.
func (c *rig) exec(state string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := c.command(ctx, state, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		c.t.Fatalf("tokenseal %s: still running after %s", strings.Join(args, " "), deadline)
	}
	return result{exitCodeOf(c.t, err), o.String(), e.String()}
}

func exitCodeOf(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// expect runs tokenseal with the state directory state, in-process
// unless c.procs, and fails the test unless it exits with want.
func (c *rig) expect(want int, state string, args ...string) result {
	c.t.Helper()
	var res result
	if c.procs {
		res = c.exec(state, args...)
	} else {
		res = c.runIn(state, args...)
	}
	if res.code != want {
		c.t.Fatalf("tokenseal %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, want, res.stdout, res.stderr)
	}
	return res
}

// refused checks that an open ended with code, stderr matching stderrRE,
// nothing on stdout, and nothing at out (nor a temporary file beside it).
func (c *rig) refused(res result, code int, stderrRE, out string) {
	c.t.Helper()
	if res.code != code || !regexp.MustCompile(stderrRE).MatchString(res.stderr) {
		c.t.Fatalf("exit %d, stderr %q; want exit %d matching %q", res.code, res.stderr, code, stderrRE)
	}
	if res.stdout != "" {
		c.t.Fatalf("refused but wrote to stdout: %q", res.stdout)
	}
	if out != "" {
		if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
			c.t.Fatalf("refused but %s exists", out)
		}
		c.noTemp(out)
	}
}

// noTemp fails if an atomicFile temporary of out was left behind.
func (c *rig) noTemp(out string) {
	c.t.Helper()
	if m := tempsOf(out); len(m) != 0 {
		c.t.Fatalf("temporary files left behind: %v", m)
	}
}

func tempsOf(out string) []string {
	m, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".tokenseal-*"))
	return m
}

// key generates a key on the token and exports its public key.
func (c *rig) key(label, typ, usage string) string {
	c.t.Helper()
	c.expect(0, c.send, "key", "generate", "--label", label, "--type", typ, "--usage", usage)
	pemPath := c.path(label + ".pem")
	c.expect(0, c.send, "key", "export", "--label", label, "-o", pemPath)
	return pemPath
}

func (c *rig) trust(name, pemPath string) {
	c.t.Helper()
	c.expect(0, c.recv, "trust", "add", name, pemPath)
}

func (c *rig) write(name string, data []byte) string {
	c.t.Helper()
	p := c.path(name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *rig) read(p string) []byte {
	c.t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

// seal seals plain with the CLI (sender's state) and returns the envelope.
func (c *rig) seal(plain []byte, args ...string) []byte {
	c.t.Helper()
	in, out := c.write("plain.in", plain), c.path("sealed.out")
	os.Remove(out)
	c.expect(0, c.send, append(append([]string{"seal", "-o", out}, args...), in)...)
	return c.read(out)
}

// ledger returns `ledger show --json` of the recipient.
func (c *rig) ledger() []ledgerJSON {
	c.t.Helper()
	res := c.expect(0, c.recv, "ledger", "show", "--json")
	var out []ledgerJSON
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		c.t.Fatalf("ledger show --json: %v\n%s", err, res.stdout)
	}
	return out
}

// ledgerIs checks the recipient's ledger holds exactly one (sender,
// stream) with the given highest serial and occupancy.
func (c *rig) ledgerIs(sender string, highest uint64, occupancy int) {
	c.t.Helper()
	if l := c.ledger(); len(l) != 1 || l[0].Sender != sender || l[0].Highest != highest || l[0].Occupancy != occupancy {
		c.t.Fatalf("ledger = %+v, want %s highest %d occupancy %d", l, sender, highest, occupancy)
	}
}

// dirEntries lists dir (nil if it does not exist).
func dirEntries(dir string) []string {
	es, _ := os.ReadDir(dir)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// --- software keys and envelopes, built with the exported API ---

func p256Key(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemOf(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// sealTo seals plain in-process with envelope.Seal, signed by s when
// not nil.
func sealTo(t *testing.T, to envelope.Recipient, s *envelope.Sender, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := envelope.Seal(&buf, []envelope.Recipient{to}, &envelope.SealOptions{Sender: s})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (c *rig) recipient(pemPath string) envelope.Recipient {
	c.t.Helper()
	rc, err := envelope.ParseRecipient(c.read(pemPath))
	if err != nil {
		c.t.Fatal(err)
	}
	return rc
}

// randomStream is a random stream identifier below 2^63, as the state
// package makes them.
func randomStream() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 1
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// testRand is a seeded random source; TOKENSEAL_TEST_SEED repeats a run.
func testRand(t *testing.T) *mrand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TOKENSEAL_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("random seed %d (set TOKENSEAL_TEST_SEED to repeat)", seed)
	return mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

var replayedRE = regexp.MustCompile(`replayed envelope: serial (\d+) from (\S+) was accepted at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
