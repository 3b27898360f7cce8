//go:build unix

package main

// Seal and open killed with SIGKILL at random moments, each a real
// tokenseal process (the test binary on $PATH) against a real SoftHSM2
// token. The tests check invariants that must hold wherever the kill
// lands; only the counts they log vary.
//
// SoftHSM2 (2.6.1, file backend) rewrites token.object in place on every
// C_Login: a SIGKILL there destroys the token, whatever the application
// does (repairToken puts the file back after each kill, and counts it).

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
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

	"github.com/tokenseal/tokenseal/envelope"
)

// tokenFiles is a copy of the SoftHSM2 token directory's files.
type tokenFiles map[string][]byte

// snapshotToken copies the token's files.
func (r *rig) snapshotToken() tokenFiles {
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
func (r *rig) repairToken(snap tokenFiles) bool {
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

// outcome is how one killed-or-not process ended.
type outcome struct {
	killed bool
	code   int
}

// runAndKill starts cmd and sends it SIGKILL if it still runs after
// delay; it reports whether the kill ended it or it exited by itself.
func runAndKill(t *testing.T, cmd *exec.Cmd, delay time.Duration) outcome {
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
		return outcome{killed: true}
	}
	return outcome{code: ws.ExitStatus()}
}

var serialReservedRE = regexp.MustCompile(`msg="serial reserved" .*\bstream=(\d+) serial=(\d+)`)

// A seal killed at random moments (8 MiB input, so that kills land before,
// during and after the serial's reservation and the write) never lets a
// later seal reuse a serial, and no final path ever holds a partial
// envelope: each is absent or verifies completely.
func TestSealKilled(t *testing.T) {
	r := newRig(t)
	r.procs = true
	rng := testRand(t)
	sigPub, err := envelope.ParsePublicKey(r.read(r.key("sig", "p256", "sign")))
	if err != nil {
		t.Fatal(err)
	}
	// A software recipient, so the test verifies envelopes in process.
	rcpt := p256Key(t)
	rcptPEM := r.write("rcpt.pem", pemOf(t, rcpt.Public()))
	rcptID, err := envelope.NewSoftwareIdentity(rcpt)
	if err != nil {
		t.Fatal(err)
	}
	input := randomBytes(8 << 20)
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
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
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
	fastest := deadline
	for i := range 3 {
		name := fmt.Sprintf("calibrate%d", i)
		cmd, out, logPath := sealCmd(name)
		start := time.Now()
		if o := runAndKill(t, cmd, deadline); o.killed || o.code != 0 {
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
		leftover := tempsOf(out)
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
	if state := r.exec(r.send, "trust", "list"); state.code != 0 {
		t.Fatalf("sender state database unusable after the kills: %s", state.stderr)
	}

	// Later seals get serials above every serial reserved so far.
	highest := slices.Max(slices.Collect(maps.Keys(owner)))
	for i := range 3 {
		name := fmt.Sprintf("after%d", i)
		cmd, out, logPath := sealCmd(name)
		if o := runAndKill(t, cmd, deadline); o.killed || o.code != 0 {
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

// Opens killed at random moments (4 MiB envelopes, chosen at random, so
// some are opened again after an earlier open was killed or succeeded)
// leave a state database that opens, and no envelope is ever accepted
// twice: counting every plaintext that reached its final path, from
// killed and finished processes and from a final pass that opens every
// envelope again, each envelope is released at most once, and one that
// was released is refused as a replay afterwards.
func TestOpenKilled(t *testing.T) {
	r := newRig(t)
	r.procs = true
	rng := testRand(t)
	bob := r.recipient(r.key("bob", "p256", "exchange"))
	soft := p256Key(t)
	r.trust("soft", r.write("soft.pem", pemOf(t, soft.Public())))
	stream := randomStream()
	const size = 4 << 20
	nEnv, iters := 12, 30
	if testing.Short() {
		nEnv, iters = 6, 10
	}
	plains := make([][]byte, nEnv+1)
	files := make([]string, nEnv+1)
	for s := 0; s <= nEnv; s++ { // envelope 0 only calibrates
		plains[s] = randomBytes(size)
		data := sealTo(t, bob, &envelope.Sender{Signer: soft, StreamID: stream, Serial: uint64(s + 1), Time: time.Now()}, plains[s])
		files[s] = r.write(fmt.Sprintf("o%02d.tseal", s), data)
	}
	openCmd := func(s int, out string) *exec.Cmd {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
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
	fastest := deadline
	for i, want := range []int{exitOK, exitReplay, exitReplay} {
		start := time.Now()
		if o := runAndKill(t, openCmd(0, r.path(fmt.Sprintf("calibrate%d.out", i))), deadline); o.killed || o.code != want {
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
		leftover := tempsOf(out)
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
		res := r.exec(r.recv, "open", "-o", out, files[s])
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
		r.refused(r.exec(r.recv, "open", "-o", out, files[s]), exitReplay, fmt.Sprintf(`replayed envelope: serial %d from soft`, s+1), out)
	}
	r.ledgerIs("soft", uint64(nEnv+1), nEnv+1)
	t.Logf("%d opens: %d succeeded, %d refused as replays, %d killed before writing output, %d killed mid-open (temporary output, no commit), %d killed after the plaintext was in place; %d temporary files left by kills; SoftHSM2 token.object repaired after %d kills; afterwards %d envelopes accepted for the first time, %d refused whose plaintext had been lost to a kill between commit and rename; no envelope accepted twice",
		iters, succeeded, replays, killedEarly, midOpen, afterCommit, temps, tokenRepairs, lateAccepted, lost)
}
