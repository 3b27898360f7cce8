//go:build unix

package main

// Process-level tests of sender signatures and replay protection (issue
// 4). Every test runs the real tokenseal binary, built once by TestReplay,
// as separate processes against a real SoftHSM2 token made by softhsmtest,
// with SOFTHSM2_CONF, TOKENSEAL_MODULE, TOKENSEAL_TOKEN, TOKENSEAL_PIN and
// TOKENSEAL_STATE_DIR in the environment. The sender and the recipient
// keep separate state directories, as two hosts would.
//
// Pass or fail never depends on timing: loops are bounded, every process
// has a generous deadline, and the kill tests check invariants that must
// hold wherever the kill lands; only the counts they log vary.
//
// Two SoftHSM2 (2.6.1, file backend) weaknesses are worked around, and
// counted in the logs, because they are the test token's and not
// tokenseal's: C_Login rewrites token.object in place (truncate, then
// write), so a SIGKILL there destroys the token (repairToken puts the file
// back after each kill) and a process loading the token meanwhile may not
// find it (raceOpens runs such a process again).

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/internal/softhsmtest"
)

// replayDeadline bounds every tokenseal process: far above what any of
// them needs, it only turns a hang into a failure.
const replayDeadline = 2 * time.Minute

// TestReplay builds the binary once and runs the scenarios of issue 4 as
// subtests, each with its own token and state directories. The binary
// lives in the parent test's temporary directory, so it is removed when
// the test ends (a package-level sync.Once would have nowhere to clean up:
// TestMain belongs to testscript).
func TestReplay(t *testing.T) {
	if _, err := softhsmtest.FindModule(); err != nil {
		t.Fatal(err) // never skip: CI must have SoftHSM2
	}
	bin := buildReplayBinary(t)
	t.Run("SignedRoundTrip", func(t *testing.T) { testReplaySignedRoundTrip(t, bin) })
	t.Run("OutOfOrderAndWindow", func(t *testing.T) { testReplayOutOfOrder(t, bin) })
	t.Run("Forgeries", func(t *testing.T) { testReplayForgeries(t, bin) })
	t.Run("Freshness", func(t *testing.T) { testReplayFreshness(t, bin) })
	t.Run("ConcurrentOpen", func(t *testing.T) { testReplayConcurrentOpen(t, bin) })
	t.Run("SealKilled", func(t *testing.T) { testReplaySealKilled(t, bin) })
	t.Run("OpenKilled", func(t *testing.T) { testReplayOpenKilled(t, bin) })
}

// buildReplayBinary builds ./ (cmd/tokenseal: the test's working
// directory) without the race detector: the binary users run.
func buildReplayBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build tokenseal for the process tests: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "tokenseal")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// replayRig is one test's token, working directory and state directories.
type replayRig struct {
	t    *testing.T
	bin  string
	dir  string // working directory for files
	tok  *softhsmtest.Token
	send string // the sender's state directory (serial counters)
	recv string // the recipient's state directory (trusted senders, ledger)
}

func newReplayRig(t *testing.T, bin string) *replayRig {
	t.Helper()
	dir := t.TempDir()
	hsm := filepath.Join(dir, "hsm")
	if err := os.Mkdir(hsm, 0o700); err != nil {
		t.Fatal(err)
	}
	tok, err := softhsmtest.Make(hsm)
	if err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	return &replayRig{t: t, bin: bin, dir: dir, tok: tok,
		send: filepath.Join(dir, "sender-state"), recv: filepath.Join(dir, "recipient-state")}
}

func (r *replayRig) path(name string) string { return filepath.Join(r.dir, name) }

// environ is the environment of a tokenseal process: the test's own,
// without any TOKENSEAL_*, SOFTHSM2_CONF or GORACE of the caller, plus the
// token and the state directory.
func (r *replayRig) environ(state string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TOKENSEAL_") || strings.HasPrefix(kv, "SOFTHSM2_CONF=") || strings.HasPrefix(kv, "GORACE=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, r.tok.Env()...)
	env = append(env, "TOKENSEAL_STATE_DIR="+state)
	return append(env, extra...)
}

func (r *replayRig) command(ctx context.Context, state string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Dir = r.dir
	cmd.Env = r.environ(state)
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

type replayResult struct {
	code           int
	stdout, stderr string
}

// run runs tokenseal to completion and returns its exit code and output.
func (r *replayRig) run(state string, args ...string) replayResult {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), replayDeadline)
	defer cancel()
	cmd := r.command(ctx, state, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		r.t.Fatalf("tokenseal %s: still running after %s", strings.Join(args, " "), replayDeadline)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("tokenseal %s: %v", strings.Join(args, " "), err)
	}
	return replayResult{code, o.String(), e.String()}
}

// expect runs tokenseal and fails the test unless it exits with want.
func (r *replayRig) expect(want int, state string, args ...string) replayResult {
	r.t.Helper()
	res := r.run(state, args...)
	if res.code != want {
		r.t.Fatalf("tokenseal %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, want, res.stdout, res.stderr)
	}
	return res
}

// refused runs an open that must fail with code, match stderrRE, and
// leave nothing at out (nor a temporary file beside it).
func (r *replayRig) refused(code int, stderrRE, out string, args ...string) {
	r.t.Helper()
	res := r.expect(code, r.recv, args...)
	if !regexp.MustCompile(stderrRE).MatchString(res.stderr) {
		r.t.Fatalf("tokenseal %s: stderr %q does not match %q", strings.Join(args, " "), res.stderr, stderrRE)
	}
	if res.stdout != "" {
		r.t.Fatalf("tokenseal %s: refused but wrote to stdout: %q", strings.Join(args, " "), res.stdout)
	}
	if out != "" {
		if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
			r.t.Fatalf("tokenseal %s: refused but %s exists", strings.Join(args, " "), out)
		}
		r.noTemp(out)
	}
}

// noTemp fails if an atomicFile temporary of out was left behind.
func (r *replayRig) noTemp(out string) {
	r.t.Helper()
	if m := replayTemps(out); len(m) != 0 {
		r.t.Fatalf("temporary files left behind: %v", m)
	}
}

func replayTemps(out string) []string {
	m, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".tokenseal-*"))
	return m
}

// openOK opens env to out and checks the plaintext.
func (r *replayRig) openOK(env, out string, want []byte, flags ...string) {
	r.t.Helper()
	r.expect(0, r.recv, append(append([]string{"open"}, flags...), "-o", out, env)...)
	got, err := os.ReadFile(out)
	if err != nil {
		r.t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		r.t.Fatalf("open %s: plaintext of %d bytes differs from the %d sealed", env, len(got), len(want))
	}
	r.noTemp(out)
}

// key generates a key on the token and exports its public key.
func (r *replayRig) key(label, typ, usage string) string {
	r.t.Helper()
	r.expect(0, r.send, "key", "generate", "--label", label, "--type", typ, "--usage", usage)
	pemPath := r.path(label + ".pem")
	r.expect(0, r.send, "key", "export", "--label", label, "-o", pemPath)
	return pemPath
}

func (r *replayRig) trust(name, pemPath string) {
	r.t.Helper()
	r.expect(0, r.recv, "trust", "add", name, pemPath)
}

func (r *replayRig) write(name string, data []byte) string {
	r.t.Helper()
	p := r.path(name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		r.t.Fatal(err)
	}
	return p
}

func (r *replayRig) read(p string) []byte {
	r.t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// header parses the header of the envelope file p.
func (r *replayRig) header(p string) *replayHeader {
	r.t.Helper()
	h, err := parseReplayHeader(r.read(p))
	if err != nil {
		r.t.Fatalf("%s: %v", p, err)
	}
	return h
}

// ledger returns `ledger show --json` of the recipient.
func (r *replayRig) ledger() []ledgerJSON {
	r.t.Helper()
	res := r.expect(0, r.recv, "ledger", "show", "--json")
	var out []ledgerJSON
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		r.t.Fatalf("ledger show --json: %v\n%s", err, res.stdout)
	}
	return out
}

// ledgerIs checks the recipient's ledger holds exactly one (sender,
// stream) with the given highest serial and occupancy, or nothing when
// highest is 0.
func (r *replayRig) ledgerIs(sender string, highest uint64, occupancy int) {
	r.t.Helper()
	l := r.ledger()
	if highest == 0 {
		if len(l) != 0 {
			r.t.Fatalf("ledger should be empty: %+v", l)
		}
		return
	}
	if len(l) != 1 || l[0].Sender != sender || l[0].Highest != highest || l[0].Occupancy != occupancy {
		r.t.Fatalf("ledger = %+v, want %s highest %d occupancy %d", l, sender, highest, occupancy)
	}
}

// tokenFiles is a copy of the SoftHSM2 token directory's files.
type tokenFiles map[string][]byte

// snapshotToken copies the token's files.
func (r *replayRig) snapshotToken() tokenFiles {
	r.t.Helper()
	snap := tokenFiles{}
	err := filepath.WalkDir(filepath.Join(r.tok.Dir, "tokens"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		snap[p] = b
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return snap
}

// repairToken puts back any token file a kill left truncated (or gone)
// and reports whether it had to. Files whose length did not change are
// left alone: SoftHSM2 bumps a counter inside token.object on each write.
//
// SoftHSM2 (2.6.1, file backend) rewrites token.object in place on every
// C_Login: ftruncate to 0, then write. A SIGKILL between the two leaves an
// empty token.object and the token is gone for good ("token not found ...
// initialized tokens: none"), whatever the application does; a real token
// has no such window. The kill tests are about tokenseal's own state, so
// they repair the SoftHSM2 token after each kill and count how often.
func (r *replayRig) repairToken(snap tokenFiles) bool {
	r.t.Helper()
	repaired := false
	for p, want := range snap {
		got, err := os.ReadFile(p)
		if err == nil && len(got) == len(want) {
			continue
		}
		if err := os.WriteFile(p, want, 0o600); err != nil {
			r.t.Fatal(err)
		}
		repaired = true
	}
	return repaired
}

// --- software keys, built with the exported API ---

func replayP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func replayPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// replaySeal seals plain in process with envelope.Seal, signed by s.
func replaySeal(t *testing.T, to envelope.Recipient, s *envelope.Sender, plain []byte) []byte {
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

func replayRecipient(t *testing.T, pemPath string) envelope.Recipient {
	t.Helper()
	data, err := os.ReadFile(pemPath)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := envelope.ParseRecipient(data)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// replayStream is a random stream identifier below 2^63, as the state
// package makes them.
func replayStream() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 1
}

// --- FORMAT.md, read from the outside ---

// replayHeader is what the tests need of a header, parsed from FORMAT.md
// section 2 alone.
type replayHeader struct {
	raw     []byte // every header byte, MAC included
	salt    []byte
	stanzas []*envelope.Stanza
	sender  *replaySender // nil when anonymous
	// serialAt is the offset of the sender extension's serial in raw.
	serialAt int
}

// replaySender is the sender extension's value (section 2.3).
type replaySender struct {
	KeyID     [32]byte
	SigAlg    uint8
	SigLen    uint16
	StreamID  uint64
	Serial    uint64
	Timestamp uint64
}

const replayMagic = "tokenseal"

func parseReplayHeader(b []byte) (*replayHeader, error) {
	s := cryptobyte.String(b)
	var magic []byte
	var version uint8
	var body cryptobyte.String
	if !s.ReadBytes(&magic, len(replayMagic)) || string(magic) != replayMagic || !s.ReadUint8(&version) || version != 1 {
		return nil, errors.New("not a version 1 binary envelope")
	}
	if !s.ReadUint24LengthPrefixed(&body) || len(s) < 32 {
		return nil, errors.New("truncated header")
	}
	h := &replayHeader{raw: b[:len(b)-len(s)+32]}
	var chunkLog2 uint8
	var salt []byte
	var stanzas, exts cryptobyte.String
	if !body.ReadUint8(&chunkLog2) || chunkLog2 != 16 || !body.ReadBytes(&salt, 32) ||
		!body.ReadUint24LengthPrefixed(&stanzas) || !body.ReadUint16LengthPrefixed(&exts) || !body.Empty() {
		return nil, errors.New("malformed header body")
	}
	h.salt = salt
	for !stanzas.Empty() {
		st := &envelope.Stanza{}
		var id []byte
		var sb cryptobyte.String
		if !stanzas.ReadUint8(&st.Type) || !stanzas.ReadBytes(&id, 32) || !stanzas.ReadUint16LengthPrefixed(&sb) {
			return nil, errors.New("malformed stanza")
		}
		copy(st.KeyID[:], id)
		st.Body = []byte(sb)
		h.stanzas = append(h.stanzas, st)
	}
	for !exts.Empty() {
		var typ uint16
		var v cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&v) {
			return nil, errors.New("malformed extension")
		}
		if typ != 0x8001 {
			continue
		}
		// The value ends where exts now starts.
		valueAt := len(h.raw) - 32 - len(exts) - len(v)
		if len(v) != 59 {
			return nil, fmt.Errorf("sender extension of %d bytes", len(v))
		}
		si := &replaySender{}
		var id []byte
		if !v.ReadBytes(&id, 32) || !v.ReadUint8(&si.SigAlg) || !v.ReadUint16(&si.SigLen) ||
			!v.ReadUint64(&si.StreamID) || !v.ReadUint64(&si.Serial) || !v.ReadUint64(&si.Timestamp) {
			return nil, errors.New("malformed sender extension")
		}
		copy(si.KeyID[:], id)
		h.sender = si
		h.serialAt = valueAt + 32 + 1 + 2 + 8
	}
	return h, nil
}

// trailerLen is the length of the signature trailer (section 6).
func (h *replayHeader) trailerLen() int {
	if h.sender == nil {
		return 0
	}
	return int(h.sender.SigLen)
}

// replaySplit cuts a binary envelope into header, payload and trailer.
func replaySplit(t *testing.T, env []byte) (h *replayHeader, payload, trailer []byte) {
	t.Helper()
	h, err := parseReplayHeader(env)
	if err != nil {
		t.Fatal(err)
	}
	end := len(env) - h.trailerLen()
	return h, env[len(h.raw):end], env[end:]
}

// replayKey derives K_header or K_payload (section 3).
func replayKey(t *testing.T, fk, salt []byte, which string) []byte {
	t.Helper()
	k, err := hkdf.Key(sha256.New, fk, salt, "tokenseal/v1 "+which, 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// replayEncryptPayload encrypts plain as section 5 says.
func replayEncryptPayload(t *testing.T, kPayload, plain []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(kPayload)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 1 << 16
	var out []byte
	for i := uint64(0); ; i++ {
		n := min(chunk, len(plain))
		last := len(plain) <= chunk
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint64(nonce[3:11], i)
		if last {
			nonce[11] = 1
		}
		out = aead.Seal(out, nonce, plain[:n], nil)
		plain = plain[n:]
		if last {
			return out
		}
	}
}

// replayArmor is the ASCII armor of a binary envelope (section 7).
func replayArmor(bin []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString(bin)
	var out strings.Builder
	out.WriteString("-----BEGIN TOKENSEAL ENVELOPE-----\n")
	for len(b64) > 64 {
		out.WriteString(b64[:64] + "\n")
		b64 = b64[64:]
	}
	out.WriteString(b64 + "\n-----END TOKENSEAL ENVELOPE-----\n")
	return []byte(out.String())
}

var replayedRE = regexp.MustCompile(`replayed envelope: serial (\d+) from (\S+) was accepted at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)

func replayRandomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func replayRand(t *testing.T) *mrand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TOKENSEAL_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("random seed %d (set TOKENSEAL_TEST_SEED to repeat)", seed)
	return mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// --- 1. signed round trip and replay ---

// A P-256 ECDSA and an RSA-PSS signing key on the token: each envelope
// opens once; the same envelope again, to a file, to stdout or re-armored,
// is refused with exit 5 and the ledger's message, and nothing is written.
func testReplaySignedRoundTrip(t *testing.T, bin string) {
	r := newReplayRig(t, bin)
	bob := r.key("bob", "p256", "exchange")
	plain := r.write("plain.txt", []byte("attack at dawn\n"))
	for _, c := range []struct {
		typ            string
		sigAlg, sigLen int
	}{{"p256", 1, 64}, {"rsa-2048", 2, 256}} {
		label, name := "sig-"+c.typ, "alice-"+c.typ
		r.trust(name, r.key(label, c.typ, "sign"))
		for serial := uint64(1); serial <= 2; serial++ {
			env := r.path(fmt.Sprintf("%s-%d.tseal", c.typ, serial))
			r.expect(0, r.send, "seal", "--sign-with", label, "-r", bob, "-o", env, plain)
			h := r.header(env)
			if h.sender == nil || h.sender.Serial != serial || int(h.sender.SigAlg) != c.sigAlg || int(h.sender.SigLen) != c.sigLen {
				t.Fatalf("%s: sender extension %+v, want serial %d, sig_alg %d, sig_len %d", env, h.sender, serial, c.sigAlg, c.sigLen)
			}
			if ms := time.Since(time.UnixMilli(int64(h.sender.Timestamp))); ms < -time.Minute || ms > time.Hour {
				t.Fatalf("%s: timestamp %d is not the sender's clock", env, h.sender.Timestamp)
			}
			out := env + ".out"
			r.openOK(env, out, r.read(plain))

			want := fmt.Sprintf(`^tokenseal: error: replayed envelope: serial %d from %s was accepted at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n`, serial, name)
			r.refused(5, want, env+".again", "open", "-o", env+".again", env)
			r.refused(5, want, "", "open", env) // to stdout: nothing printed
			asc := r.write(filepath.Base(env)+".asc", replayArmor(r.read(env)))
			r.refused(5, want, asc+".out", "open", "-o", asc+".out", asc)
		}
	}
	l := r.ledger()
	if len(l) != 2 {
		t.Fatalf("ledger: %+v", l)
	}
	for _, e := range l {
		if e.Highest != 2 || e.Occupancy != 2 {
			t.Errorf("ledger entry %+v: want highest 2, occupancy 2", e)
		}
	}
}

// --- 2. out-of-order delivery and the window ---

// Ten envelopes opened in a random order are each accepted once and then
// refused; with --window 4 a serial at the window's lower edge is refused
// and one just inside it accepted once; and narrowing the window in one
// call must not let a later call with the default window accept again an
// envelope that was accepted before.
func testReplayOutOfOrder(t *testing.T, bin string) {
	r := newReplayRig(t, bin)
	rng := replayRand(t)
	bob := r.key("bob", "p256", "exchange")
	r.trust("alice", r.key("sig", "p256", "sign"))
	const n = 20
	envs := make([]string, n+1) // by serial
	plains := make([][]byte, n+1)
	for i := 1; i <= n; i++ {
		plains[i] = []byte(fmt.Sprintf("message %d\n", i))
		in := r.write(fmt.Sprintf("m%02d.txt", i), plains[i])
		envs[i] = r.path(fmt.Sprintf("m%02d.tseal", i))
		r.expect(0, r.send, "seal", "--sign-with", "sig", "-r", bob, "-o", envs[i], in)
		if got := r.header(envs[i]).sender.Serial; got != uint64(i) {
			t.Fatalf("seal %d got serial %d", i, got)
		}
	}

	order := rng.Perm(10)
	t.Logf("first ten opened in the order %v (serial-1)", order)
	for _, i := range order {
		s := i + 1
		r.openOK(envs[s], r.path(fmt.Sprintf("m%02d.out", s)), plains[s])
	}
	r.ledgerIs("alice", 10, 10)
	for _, i := range rng.Perm(10) {
		s := i + 1
		out := r.path(fmt.Sprintf("m%02d.again", s))
		r.refused(5, fmt.Sprintf(`^tokenseal: error: replayed envelope: serial %d from alice was accepted at `, s), out, "open", "-o", out, envs[s])
	}

	// --window 4 and highest 20: the window is 17..20.
	r.openOK(envs[20], r.path("m20.out"), plains[20], "--window", "4")
	out16 := r.path("m16.out")
	r.refused(5, `^tokenseal: error: replayed or stale envelope: serial 16 from alice is below the replay window \(highest accepted 20\)`, out16, "open", "--window", "4", "-o", out16, envs[16])
	r.openOK(envs[17], r.path("m17.out"), plains[17], "--window", "4")
	out17 := r.path("m17.again")
	r.refused(5, `replayed envelope: serial 17 from alice was accepted at `, out17, "open", "--window", "4", "-o", out17, envs[17])
	r.ledgerIs("alice", 20, 2)

	// Serials 1..10 were accepted; the narrow window pruned their records.
	// A later open with the default (wider) window must still refuse them.
	for s := 1; s <= 10; s++ {
		out := r.path(fmt.Sprintf("m%02d.wide", s))
		r.refused(5, fmt.Sprintf(`serial %d from alice`, s), out, "open", "-o", out, envs[s])
	}
	// An envelope within the default window, never accepted, still opens.
	r.openOK(envs[18], r.path("m18.out"), plains[18])
}

// --- 3. forgeries ---

// lyingSigner claims pub's identity and signs with another key.
type lyingSigner struct {
	pub crypto.PublicKey
	key crypto.Signer
}

func (l lyingSigner) Public() crypto.PublicKey { return l.pub }
func (l lyingSigner) Sign(rnd io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return l.key.Sign(rnd, d, o)
}

// Forged envelopes are refused with exit 4 and leave the ledger as it
// was; afterwards the genuine envelopes with the serials they claimed are
// accepted, so no serial was burnt and the window was not pushed.
//
// The co-recipient forgery is built here from the exported API and
// FORMAT.md: Mallory, a second recipient, unwraps the file key with
// envelope.NewSoftwareIdentity, derives the payload key (section 3) and
// encrypts her own payload (section 5) under the original header, whose MAC
// still verifies, keeping the sender's signature. She can also rewrite the
// header (a far-future serial, with a MAC she recomputes), which would push
// the sender's genuine serials below the window if the ledger moved.
func testReplayForgeries(t *testing.T, bin string) {
	r := newReplayRig(t, bin)
	bob := r.key("bob", "p256", "exchange")
	sigPEM := r.key("sig", "p256", "sign")
	r.trust("alice", sigPEM)
	mallory := replayP256(t)
	malloryPEM := r.write("mallory.pem", replayPEM(t, mallory.Public()))
	eve := replayP256(t) // an untrusted signing key
	trustedPub, err := envelope.ParsePublicKey(r.read(sigPEM))
	if err != nil {
		t.Fatal(err)
	}

	genuine := map[int][]byte{1: []byte("pay bob 100\n"), 2: []byte("pay carol 200\n"), 3: []byte("pay dave 300\n")}
	env := map[int]string{}
	for s := 1; s <= 3; s++ {
		in := r.write(fmt.Sprintf("g%d.txt", s), genuine[s])
		env[s] = r.path(fmt.Sprintf("g%d.tseal", s))
		args := []string{"seal", "--sign-with", "sig", "-r", bob, "-o", env[s]}
		if s == 1 {
			args = append(args, "-r", malloryPEM)
		}
		r.expect(0, r.send, append(args, in)...)
	}
	g1 := r.read(env[1])
	h1, _, trailer1 := replaySplit(t, g1)
	if h1.sender.Serial != 1 || len(h1.stanzas) != 2 {
		t.Fatalf("g1: serial %d, %d stanzas", h1.sender.Serial, len(h1.stanzas))
	}
	bobRcpt := replayRecipient(t, bob)

	type forgery struct {
		name, reason string
		data         []byte
	}
	var forgeries []forgery

	// Re-signed by an untrusted key, claiming alice's stream and serial 1.
	forgeries = append(forgeries, forgery{"untrusted signer", `signed by an untrusted key`,
		replaySeal(t, bobRcpt, &envelope.Sender{Signer: eve, StreamID: h1.sender.StreamID, Serial: 1, Time: time.Now()}, []byte("pay eve 999\n"))})
	// Naming alice's key but signed by eve's.
	forgeries = append(forgeries, forgery{"signature by another key", `sender signature does not verify`,
		replaySeal(t, bobRcpt, &envelope.Sender{Signer: lyingSigner{trustedPub, eve}, StreamID: h1.sender.StreamID, Serial: 1, Time: time.Now()}, []byte("pay eve 999\n"))})

	// Mallory's file key from her own stanza of g1.
	mid, err := envelope.NewSoftwareIdentity(mallory)
	if err != nil {
		t.Fatal(err)
	}
	malloryID, _ := envelope.KeyIDOf(mallory.Public())
	var fk []byte
	for _, st := range h1.stanzas {
		if st.KeyID == malloryID {
			if fk, err = mid.Unwrap([]*envelope.Stanza{st}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if fk == nil {
		t.Fatal("g1 has no stanza for mallory")
	}
	kPayload := replayKey(t, fk, h1.salt, "payload")
	forged := slices.Concat(h1.raw, replayEncryptPayload(t, kPayload, []byte("pay eve 999\n")), trailer1)
	forgeries = append(forgeries, forgery{"co-recipient payload under the original header", `sender signature does not verify`, forged})
	// Her payload, the original header, and no trailer or a short one.
	forgeries = append(forgeries, forgery{"co-recipient, signature cut", `^tokenseal: error: `,
		slices.Concat(h1.raw, replayEncryptPayload(t, kPayload, []byte("pay eve 999\n")), trailer1[:10])})
	// The original payload under a header claiming serial 1,000,000, MAC
	// recomputed with K_header.
	hdr := bytes.Clone(h1.raw)
	binary.BigEndian.PutUint64(hdr[h1.serialAt:], 1_000_000)
	mac := hmac.New(sha256.New, replayKey(t, fk, h1.salt, "header"))
	mac.Write(hdr[:len(hdr)-32])
	copy(hdr[len(hdr)-32:], mac.Sum(nil))
	if hh, err := parseReplayHeader(hdr); err != nil || hh.sender.Serial != 1_000_000 {
		t.Fatalf("rewritten header: %v", err)
	}
	forgeries = append(forgeries, forgery{"co-recipient header with serial 1000000", `sender signature does not verify`,
		slices.Concat(hdr, g1[len(h1.raw):])})

	// Payload swapped between two envelopes of the same sender.
	h2, _, trailer2 := replaySplit(t, r.read(env[2]))
	_, payload3, trailer3 := replaySplit(t, r.read(env[3]))
	forgeries = append(forgeries,
		forgery{"g2 header, g3 payload and signature", `payload authentication failed`, slices.Concat(h2.raw, payload3, trailer3)},
		forgery{"g2 header and signature, g3 payload", `payload authentication failed`, slices.Concat(h2.raw, payload3, trailer2)})

	check := func(round string) {
		t.Helper()
		for i, f := range forgeries {
			p := r.write(fmt.Sprintf("forged%d.tseal", i), f.data)
			out := r.path(fmt.Sprintf("forged%d.out", i))
			res := r.run(r.recv, "open", "-o", out, p)
			if res.code != exitEnvelope || !regexp.MustCompile(f.reason).MatchString(res.stderr) {
				t.Fatalf("%s: forgery %q: exit %d, stderr %q; want exit 4 matching %q", round, f.name, res.code, res.stderr, f.reason)
			}
			if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s: forgery %q: output written", round, f.name)
			}
			r.noTemp(out)
			// To stdout as well: verified whole before anything is printed.
			res = r.run(r.recv, "open", p)
			if res.code != exitEnvelope || res.stdout != "" {
				t.Fatalf("%s: forgery %q to stdout: exit %d, %d bytes printed", round, f.name, res.code, len(res.stdout))
			}
		}
	}
	check("before the genuine envelopes")
	r.ledgerIs("", 0, 0) // nothing recorded

	for s := 1; s <= 3; s++ {
		r.openOK(env[s], r.path(fmt.Sprintf("g%d.out", s)), genuine[s])
	}
	r.ledgerIs("alice", 3, 3)
	r.refused(5, `replayed envelope: serial 1 from alice`, r.path("g1.again"), "open", "-o", r.path("g1.again"), env[1])

	// Verification comes before the ledger: forgeries of accepted serials
	// are still forgeries (exit 4), and still change nothing.
	check("after the genuine envelopes")
	r.ledgerIs("alice", 3, 3)
	t.Logf("%d forgeries refused with exit 4 before and after the genuine envelopes, ledger unchanged", len(forgeries))
}

// --- 4. freshness ---

// Envelopes stamped too old or too far in the future are refused with
// exit 5 and the reason; a refusal does not burn the serial: the same
// envelope opens under a wider limit.
func testReplayFreshness(t *testing.T, bin string) {
	r := newReplayRig(t, bin)
	bob := replayRecipient(t, r.key("bob", "p256", "exchange"))
	soft := replayP256(t)
	r.trust("soft", r.write("soft.pem", replayPEM(t, soft.Public())))
	stream := replayStream()
	now := time.Now()
	mk := func(serial uint64, ts time.Time) (string, []byte) {
		plain := []byte(fmt.Sprintf("serial %d stamped %s\n", serial, ts.Format(time.RFC3339)))
		data := replaySeal(t, bob, &envelope.Sender{Signer: soft, StreamID: stream, Serial: serial, Time: ts}, plain)
		return r.write(fmt.Sprintf("f%d.tseal", serial), data), plain
	}
	old, oldPlain := mk(1, now.Add(-8*24*time.Hour))
	future, futurePlain := mk(2, now.Add(10*time.Minute))
	hours, hoursPlain := mk(3, now.Add(-2*time.Hour))
	fresh, freshPlain := mk(4, now)

	ts := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	r.refused(5, `^tokenseal: error: stale envelope: timestamp `+ts+` is older than the maximum age 168h0m0s\n`, r.path("f1.out"), "open", "-o", r.path("f1.out"), old)
	r.refused(5, `^tokenseal: error: stale envelope: timestamp `+ts+` is \S+ in the future \(max skew 5m0s\)\n`, r.path("f2.out"), "open", "-o", r.path("f2.out"), future)
	r.refused(5, `^tokenseal: error: stale envelope: timestamp `+ts+` is older than the maximum age 1h0m0s\n`, r.path("f3.out"), "open", "--max-age", "1h", "-o", r.path("f3.out"), hours)
	r.refused(5, `in the future \(max skew 1m0s\)`, "", "open", "--max-skew", "1m", future)
	r.ledgerIs("", 0, 0)

	// Not burnt: each opens under limits that admit it, once.
	r.openOK(old, r.path("f1.out"), oldPlain, "--max-age", "720h")
	r.openOK(future, r.path("f2.out"), futurePlain, "--max-skew", "1h")
	r.openOK(hours, r.path("f3.out"), hoursPlain)
	r.openOK(fresh, r.path("f4.out"), freshPlain, "--max-age", "1h", "--max-skew", "1m")
	r.ledgerIs("soft", 4, 4)
	// Freshness is checked first, then the ledger.
	r.refused(5, `stale envelope`, "", "open", old)
	r.refused(5, `replayed envelope: serial 1 from soft`, "", "open", "--max-age", "720h", old)
}

// --- 5. two processes, 200 envelopes ---

// Two open processes get the same 200 envelopes in the same order and run
// at once; every envelope is accepted by exactly one of them, the other
// refuses it as a replay, and the database is never reported locked.
func testReplayConcurrentOpen(t *testing.T, bin string) {
	r := newReplayRig(t, bin)
	bob := replayRecipient(t, r.key("bob", "p256", "exchange"))
	soft := replayP256(t)
	r.trust("soft", r.write("soft.pem", replayPEM(t, soft.Public())))
	n := 200
	if testing.Short() {
		n = 60
	}
	stream := replayStream()
	files := make([]string, n)
	plains := make([][]byte, n)
	for i := range n {
		plains[i] = []byte(fmt.Sprintf("envelope %d of %d\n", i+1, n))
		data := replaySeal(t, bob, &envelope.Sender{Signer: soft, StreamID: stream, Serial: uint64(i + 1), Time: time.Now()}, plains[i])
		files[i] = r.write(fmt.Sprintf("e%03d.tseal", i+1), data)
	}

	const procs = 2
	ctx, cancel := context.WithTimeout(context.Background(), replayDeadline)
	defer cancel()
	outDirs := make([]string, procs)
	argss := make([][]string, procs)
	for p := range procs {
		outDirs[p] = r.path(fmt.Sprintf("out%d", p))
		if err := os.Mkdir(outDirs[p], 0o755); err != nil {
			t.Fatal(err)
		}
		argss[p] = append([]string{"open", "-o", outDirs[p]}, files...)
	}
	codes, stderrs, retries := r.raceOpens(ctx, argss)
	stderr := make([]*bytes.Buffer, procs)
	for p := range procs {
		stderr[p] = bytes.NewBufferString(stderrs[p])
	}
	accepted := make([]int, procs)
	for p := range procs {
		refusedBy := map[uint64]bool{}
		for _, m := range replayedRE.FindAllStringSubmatch(stderr[p].String(), -1) {
			s, _ := strconv.ParseUint(m[1], 10, 64)
			refusedBy[s] = true
		}
		if lines := strings.Count(stderr[p].String(), "\n"); lines != len(refusedBy) {
			t.Errorf("process %d: %d stderr lines for %d replay refusals:\n%s", p, lines, len(refusedBy), stderr[p])
		}
		if s := stderr[p].String(); strings.Contains(s, "locked") || strings.Contains(s, "busy") {
			t.Errorf("process %d: %s", p, s)
		}
		for i := range n {
			out := filepath.Join(outDirs[p], fmt.Sprintf("e%03d", i+1))
			got, err := os.ReadFile(out)
			switch {
			case err == nil:
				accepted[p]++
				if !bytes.Equal(got, plains[i]) {
					t.Errorf("process %d, envelope %d: wrong plaintext", p, i+1)
				}
				if refusedBy[uint64(i+1)] {
					t.Errorf("process %d, envelope %d: written and refused", p, i+1)
				}
			case errors.Is(err, os.ErrNotExist):
				if !refusedBy[uint64(i+1)] {
					t.Errorf("process %d, envelope %d: neither written nor refused as a replay", p, i+1)
				}
			default:
				t.Fatal(err)
			}
		}
		wantCode := exitOK
		if accepted[p] < n {
			wantCode = exitReplay
		}
		if codes[p] != wantCode {
			t.Errorf("process %d: exit %d after accepting %d of %d, want %d", p, codes[p], accepted[p], n, wantCode)
		}
		if m, _ := filepath.Glob(filepath.Join(outDirs[p], ".*")); len(m) != 0 {
			t.Errorf("process %d left temporary files: %v", p, m)
		}
	}
	for i := range n {
		got := 0
		for p := range procs {
			if _, err := os.Stat(filepath.Join(outDirs[p], fmt.Sprintf("e%03d", i+1))); err == nil {
				got++
			}
		}
		if got != 1 {
			t.Errorf("envelope %d accepted %d times, want exactly once", i+1, got)
		}
	}
	t.Logf("%d envelopes, %d processes: accepted %v (exits %v)", n, procs, accepted, codes)
	r.ledgerIs("soft", uint64(n), n)

	// The closest race: for each of more envelopes, two processes started
	// together, each opening that one envelope.
	pairs := 40
	if testing.Short() {
		pairs = 10
	}
	wins, raced := make([]int, 2), 0
	for k := range pairs {
		serial := uint64(n + 1 + k)
		plain := []byte(fmt.Sprintf("pair %d\n", k))
		file := r.write(fmt.Sprintf("p%03d.tseal", k), replaySeal(t, bob, &envelope.Sender{Signer: soft, StreamID: stream, Serial: serial, Time: time.Now()}, plain))
		var outs [2]string
		var argss [][]string
		for p := range 2 {
			outs[p] = filepath.Join(outDirs[p], fmt.Sprintf("p%03d", k))
			argss = append(argss, []string{"open", "-o", outs[p], file})
		}
		codes, stderrs, n := r.raceOpens(ctx, argss)
		retries += n
		if n == 0 {
			raced++
		}
		for p, code := range codes {
			_, statErr := os.Stat(outs[p])
			switch {
			case code == exitOK && statErr == nil:
				wins[p]++
			case code == exitReplay && errors.Is(statErr, os.ErrNotExist) && replayedRE.MatchString(stderrs[p]):
			default:
				t.Fatalf("pair %d, process %d: exit %d, output %v, stderr %q", k, p, code, statErr, stderrs[p])
			}
		}
		if got := slices.Sorted(slices.Values(codes)); !slices.Equal(got, []int{exitOK, exitReplay}) {
			t.Fatalf("pair %d: exits %v, want one 0 and one 5", k, codes)
		}
	}
	t.Logf("%d envelopes each opened by two processes started together (%d with both running through, no retry): won %v, never both", pairs, raced, wins)
	t.Logf("processes run again after SoftHSM2 hid the token from them: %d", retries)
	r.ledgerIs("soft", uint64(n+pairs), n+pairs)
}

// tokenHiddenRE is what an open says when SoftHSM2 did not show it the
// token (crypto11's message comes out with exit 1): see raceOpens.
var tokenHiddenRE = regexp.MustCompile(`could not find PKCS#11 token`)

// raceOpens starts one tokenseal process per argument list, all at once,
// and returns their exit codes and stderr.
//
// SoftHSM2's file backend rewrites token.object in place (truncate, then
// write) on every C_Login, and readers do not lock it: a process that
// loads the token while another logs in can find no token, or get
// CKR_GENERAL_ERROR from C_GetTokenInfo, and fail before it reads any
// envelope (exit 3, or 1 for crypto11's "could not find PKCS#11 token").
// Such a process is run again, alone, up to four times, and counted in
// retries; the exactly-once checks apply to the final outcome.
func (r *replayRig) raceOpens(ctx context.Context, argss [][]string) (codes []int, stderrs []string, retries int) {
	r.t.Helper()
	codes, stderrs = make([]int, len(argss)), make([]string, len(argss))
	todo := make([]int, len(argss))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt > 0 {
			retries += len(todo)
		}
		cmds := make([]*exec.Cmd, len(todo))
		bufs := make([]bytes.Buffer, len(todo))
		for j, i := range todo {
			cmds[j] = r.command(ctx, r.recv, argss[i]...)
			cmds[j].Stderr = &bufs[j]
		}
		for _, c := range cmds {
			if err := c.Start(); err != nil {
				r.t.Fatal(err)
			}
		}
		var again []int
		for j, i := range todo {
			err := cmds[j].Wait()
			if ctx.Err() != nil {
				r.t.Fatalf("open processes still running after %s", replayDeadline)
			}
			var ee *exec.ExitError
			codes[i] = 0
			if errors.As(err, &ee) {
				codes[i] = ee.ExitCode()
			} else if err != nil {
				r.t.Fatal(err)
			}
			stderrs[i] = bufs[j].String()
			if (codes[i] == exitToken || codes[i] == exitOther && tokenHiddenRE.MatchString(stderrs[i])) && attempt < 4 {
				again = append(again, i)
			}
		}
		todo = again
	}
	return codes, stderrs, retries
}

// --- 6. seal killed with SIGKILL ---

// replayOutcome is how one killed-or-not process ended.
type replayOutcome struct {
	killed bool
	code   int
}

// runAndKill starts cmd and sends it SIGKILL if it still runs after
// delay; it reports whether the kill ended it or it exited by itself.
func runAndKill(t *testing.T, cmd *exec.Cmd, delay time.Duration) replayOutcome {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(delay):
		cmd.Process.Signal(syscall.SIGKILL) // a no-op if it exited meanwhile
		err = <-done
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		t.Fatalf("wait: %v", err)
	}
	if ws.Signaled() {
		if ws.Signal() != syscall.SIGKILL {
			t.Fatalf("process ended by %v", ws.Signal())
		}
		return replayOutcome{killed: true}
	}
	return replayOutcome{code: ws.ExitStatus()}
}

var serialReservedRE = regexp.MustCompile(`msg="serial reserved" .*\bstream=(\d+) serial=(\d+)`)

// A seal killed at random moments (8 MiB input, so that kills land before,
// during and after the serial's reservation and the write) never lets a
// later seal reuse a serial, and no final path ever holds a partial
// envelope: each is absent or verifies completely.
func testReplaySealKilled(t *testing.T, bin string) {
	r := newReplayRig(t, bin)
	rng := replayRand(t)
	sigPub, err := envelope.ParsePublicKey(r.read(r.key("sig", "p256", "sign")))
	if err != nil {
		t.Fatal(err)
	}
	// A software recipient, so the test verifies envelopes in process.
	rcpt := replayP256(t)
	rcptPEM := r.write("rcpt.pem", replayPEM(t, rcpt.Public()))
	rcptID, err := envelope.NewSoftwareIdentity(rcpt)
	if err != nil {
		t.Fatal(err)
	}
	input := replayRandomBytes(8 << 20)
	inPath := r.write("big.bin", input)
	wantSum := sha256.Sum256(input)

	logs := r.path("logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	// sealCmd makes one seal process writing its stderr (with
	// TOKENSEAL_VERBOSE, the "serial reserved" line) to a file, which
	// survives the kill.
	sealCmd := func(name string) (*exec.Cmd, string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), replayDeadline)
		t.Cleanup(cancel)
		out := r.path(name + ".tseal")
		cmd := r.command(ctx, r.send, "seal", "--sign-with", "sig", "-r", rcptPEM, "-o", out, inPath)
		cmd.Env = append(cmd.Env, "TOKENSEAL_VERBOSE=1")
		logPath := filepath.Join(logs, name+".log")
		f, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		cmd.Stderr = f
		return cmd, out, logPath
	}
	reserved := func(logPath string) (stream, serial uint64, ok bool) {
		m := serialReservedRE.FindSubmatch(r.read(logPath))
		if m == nil {
			return 0, 0, false
		}
		stream, _ = strconv.ParseUint(string(m[1]), 10, 64)
		serial, _ = strconv.ParseUint(string(m[2]), 10, 64)
		return stream, serial, true
	}
	// verify opens a final envelope completely (every chunk and the
	// signature) and returns its serial.
	verify := func(p string) *envelope.SenderInfo {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rd, err := envelope.Open(f, []envelope.Identity{rcptID}, &envelope.OpenOptions{
			RefuseAnonymous: true,
			Senders:         func(envelope.KeyID) (crypto.PublicKey, error) { return sigPub, nil },
		})
		if err != nil {
			t.Fatalf("%s at its final path does not open: %v", p, err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, rd); err != nil {
			t.Fatalf("%s at its final path is not a complete envelope: %v", p, err)
		}
		if !bytes.Equal(h.Sum(nil), wantSum[:]) {
			t.Fatalf("%s: wrong plaintext", p)
		}
		return rd.Sender
	}

	// Three seals to completion, to time one: kills are spread over 0 to
	// 1.25 times the fastest (and at least 0-40 ms). The first seal of a
	// state directory is slower, and other work on the machine adds noise.
	owner := map[uint64]string{} // serial -> who reserved it
	var stream uint64
	fastest := replayDeadline
	for i := range 3 {
		name := fmt.Sprintf("calibrate%d", i)
		cmd, out, logPath := sealCmd(name)
		start := time.Now()
		if o := runAndKill(t, cmd, replayDeadline); o.killed || o.code != 0 {
			t.Fatalf("calibration seal: %+v\n%s", o, r.read(logPath))
		}
		fastest = min(fastest, time.Since(start))
		si := verify(out)
		if prev, dup := owner[si.Serial]; dup {
			t.Fatalf("serial %d issued to %s and %s", si.Serial, prev, name)
		}
		owner[si.Serial], stream = name, si.StreamID
	}
	span := max(40*time.Millisecond, fastest*5/4)
	snap := r.snapshotToken()
	t.Logf("a seal of 8 MiB takes %v; killing after 0 to %v", fastest.Round(time.Millisecond), span.Round(time.Millisecond))

	iters := 30
	if testing.Short() {
		iters = 10
	}
	var completed, beforeReserve, reservedOnly, midWrite, afterCommit, temps, tokenRepairs int
	for i := range iters {
		name := fmt.Sprintf("k%02d", i)
		cmd, out, logPath := sealCmd(name)
		o := runAndKill(t, cmd, time.Duration(rng.Int64N(int64(span)+1)))
		if o.killed && r.repairToken(snap) {
			tokenRepairs++
		}
		st, serial, ok := reserved(logPath)
		_, statErr := os.Lstat(out)
		exists := statErr == nil
		leftover := replayTemps(out)
		temps += len(leftover)
		switch {
		case !o.killed:
			if o.code != 0 || !exists || !ok {
				t.Fatalf("%s: exited %d without being killed (output %v)\n%s", name, o.code, exists, r.read(logPath))
			}
			completed++
		case !ok:
			beforeReserve++
			if exists {
				t.Fatalf("%s: an output without a reserved serial", name)
			}
		case exists:
			afterCommit++
		case len(leftover) > 0:
			midWrite++ // serial reserved, envelope partly written
		default:
			reservedOnly++ // serial reserved, output not yet created
		}
		if ok {
			if st != stream {
				t.Fatalf("%s: stream %d, want %d", name, st, stream)
			}
			if prev, dup := owner[serial]; dup {
				t.Fatalf("serial %d reserved by %s and again by %s", serial, prev, name)
			}
			owner[serial] = name
		}
		if exists {
			si := verify(out)
			if si.Serial != serial || si.StreamID != stream {
				t.Fatalf("%s: envelope has stream %d serial %d, its process reserved %d", name, si.StreamID, si.Serial, serial)
			}
		}
		for _, tmp := range leftover {
			// Only a kill can leave one, and only beside an absent output.
			if !o.killed || exists {
				t.Fatalf("%s: temporary file %s left (killed %v, output %v)", name, tmp, o.killed, exists)
			}
		}
	}
	if state := r.run(r.send, "trust", "list"); state.code != 0 {
		t.Fatalf("sender state database unusable after the kills: %s", state.stderr)
	}

	// Later seals get serials above every serial reserved so far.
	highest := slices.Max(slices.Collect(maps.Keys(owner)))
	for i := range 3 {
		name := fmt.Sprintf("after%d", i)
		cmd, out, logPath := sealCmd(name)
		if o := runAndKill(t, cmd, replayDeadline); o.killed || o.code != 0 {
			t.Fatalf("%s: %+v\n%s", name, o, r.read(logPath))
		}
		si := verify(out)
		if prev, dup := owner[si.Serial]; dup {
			t.Fatalf("%s reused serial %d of %s", name, si.Serial, prev)
		}
		if si.Serial <= highest || si.StreamID != stream {
			t.Fatalf("%s: stream %d serial %d, want above %d on stream %d", name, si.StreamID, si.Serial, highest, stream)
		}
		owner[si.Serial] = name
		highest = si.Serial
	}
	t.Logf("%d seals: %d completed, %d killed before reserving a serial, %d killed mid-seal (%d after reserving one but before creating the output, %d while writing it), %d killed after the envelope was in place; %d temporary files left by kills (expected after SIGKILL); SoftHSM2 token.object repaired after %d kills; %d distinct serials, none reused",
		iters, completed, beforeReserve, reservedOnly+midWrite, reservedOnly, midWrite, afterCommit, temps, tokenRepairs, len(owner))
}

// --- 7. open killed with SIGKILL ---

// Opens killed at random moments (4 MiB envelopes, chosen at random, so
// some are opened again after an earlier open was killed or succeeded)
// leave a state database that opens, and no envelope is ever accepted
// twice: counting every plaintext that reached its final path, from
// killed and finished processes and from a final pass that opens every
// envelope again, each envelope is released at most once, and one that
// was released is refused as a replay afterwards.
func testReplayOpenKilled(t *testing.T, bin string) {
	r := newReplayRig(t, bin)
	rng := replayRand(t)
	bob := replayRecipient(t, r.key("bob", "p256", "exchange"))
	soft := replayP256(t)
	r.trust("soft", r.write("soft.pem", replayPEM(t, soft.Public())))
	stream := replayStream()
	const size = 4 << 20
	nEnv, iters := 12, 30
	if testing.Short() {
		nEnv, iters = 6, 10
	}
	plains := make([][]byte, nEnv+1)
	files := make([]string, nEnv+1)
	for s := 0; s <= nEnv; s++ { // envelope 0 only calibrates
		plains[s] = replayRandomBytes(size)
		data := replaySeal(t, bob, &envelope.Sender{Signer: soft, StreamID: stream, Serial: uint64(s + 1), Time: time.Now()}, plains[s])
		files[s] = r.write(fmt.Sprintf("o%02d.tseal", s), data)
	}
	openCmd := func(s int, out string) *exec.Cmd {
		ctx, cancel := context.WithTimeout(context.Background(), replayDeadline)
		t.Cleanup(cancel)
		cmd := r.command(ctx, r.recv, "open", "-o", out, files[s])
		cmd.Stderr = &bytes.Buffer{}
		return cmd
	}
	released := make([]int, nEnv+1) // plaintexts at a final path, per envelope
	release := func(s int, out string) {
		t.Helper()
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plains[s]) {
			t.Fatalf("%s: a partial or wrong plaintext at the final path (%d bytes)", out, len(got))
		}
		released[s]++
		if released[s] > 1 {
			t.Fatalf("envelope %d accepted twice", s)
		}
	}

	// Envelope 0 three times, to time an open: accepted, then refused
	// twice, each after decrypting all of it. Kills are spread over 0 to
	// 1.25 times the fastest (and at least 0-40 ms).
	fastest := replayDeadline
	for i, want := range []int{exitOK, exitReplay, exitReplay} {
		start := time.Now()
		if o := runAndKill(t, openCmd(0, r.path(fmt.Sprintf("calibrate%d.out", i))), replayDeadline); o.killed || o.code != want {
			t.Fatalf("calibration open %d: %+v, want exit %d", i, o, want)
		}
		fastest = min(fastest, time.Since(start))
	}
	span := max(40*time.Millisecond, fastest*5/4)
	snap := r.snapshotToken()
	t.Logf("an open of 4 MiB takes %v; killing after 0 to %v", fastest.Round(time.Millisecond), span.Round(time.Millisecond))

	var succeeded, replays, killedEarly, midOpen, afterCommit, temps, tokenRepairs int
	for i := range iters {
		s := 1 + rng.IntN(nEnv)
		out := r.path(fmt.Sprintf("run%02d-o%02d.out", i, s))
		cmd := openCmd(s, out)
		o := runAndKill(t, cmd, time.Duration(rng.Int64N(int64(span)+1)))
		if o.killed && r.repairToken(snap) {
			tokenRepairs++
		}
		stderr := cmd.Stderr.(*bytes.Buffer).String()
		_, statErr := os.Lstat(out)
		exists := statErr == nil
		leftover := replayTemps(out)
		temps += len(leftover)
		switch {
		case !o.killed && o.code == exitOK:
			succeeded++
			release(s, out)
		case !o.killed && o.code == exitReplay:
			replays++
			if !replayedRE.MatchString(stderr) || exists {
				t.Fatalf("run %d (envelope %d): exit 5 with %q, output %v", i, s, stderr, exists)
			}
		case !o.killed:
			t.Fatalf("run %d (envelope %d): exit %d: %s", i, s, o.code, stderr)
		case exists:
			afterCommit++ // the ledger committed and the plaintext is in place
			release(s, out)
		case len(leftover) > 0:
			midOpen++ // killed while decrypting or committing
		default:
			killedEarly++
		}
		if strings.Contains(stderr, "locked") {
			t.Fatalf("run %d: %s", i, stderr)
		}
	}

	// The database survived.
	r.expect(0, r.recv, "ledger", "show")
	l := r.ledger()
	if len(l) != 1 || l[0].Sender != "soft" {
		t.Fatalf("ledger after the kills: %+v", l)
	}

	// Every envelope once more: accepted only if never released before.
	var lateAccepted, lost int
	for s := 1; s <= nEnv; s++ {
		out := r.path(fmt.Sprintf("final-o%02d.out", s))
		res := r.run(r.recv, "open", "-o", out, files[s])
		switch res.code {
		case exitOK:
			if released[s] > 0 {
				t.Fatalf("envelope %d accepted again after it was released", s)
			}
			lateAccepted++
			release(s, out)
		case exitReplay:
			if released[s] == 0 {
				// Its ledger entry committed, then the open was killed
				// before the rename: the plaintext is lost, never doubled.
				lost++
			}
		default:
			t.Fatalf("envelope %d: exit %d: %s", s, res.code, res.stderr)
		}
	}
	// And now every one of them is a replay.
	for s := 1; s <= nEnv; s++ {
		out := r.path(fmt.Sprintf("last-o%02d.out", s))
		r.refused(5, fmt.Sprintf(`replayed envelope: serial %d from soft`, s+1), out, "open", "-o", out, files[s])
	}
	r.ledgerIs("soft", uint64(nEnv+1), nEnv+1)
	t.Logf("%d opens: %d succeeded, %d refused as replays, %d killed before writing output, %d killed mid-open (temporary output, no commit), %d killed after the plaintext was in place; %d temporary files left by kills; SoftHSM2 token.object repaired after %d kills; afterwards %d envelopes accepted for the first time, %d refused whose plaintext had been lost to a kill between commit and rename; no envelope accepted twice",
		iters, succeeded, replays, killedEarly, midOpen, afterCommit, temps, tokenRepairs, lateAccepted, lost)
}
