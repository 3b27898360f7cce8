package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/internal/softhsmtest"
)

// TestOpenBatchSameOutputName: two inputs of one batch that map to the
// same output name (x/a.tseal and y/a.tseal, or a.tseal and a.tseal.asc)
// must not have one of them recorded in the replay ledger and then
// refused at the final path ("exists"): its serial would be burned and
// its plaintext lost. The batch is refused up front, and both envelopes
// open afterwards.
func TestOpenBatchSameOutputName(t *testing.T) {
	if _, err := softhsmtest.FindModule(); err != nil {
		t.Fatal(err)
	}
	r := newReplayRig(t, buildReplayBinary(t))
	bob := r.key("bob", "p256", "exchange")
	r.trust("alice", r.key("sig", "p256", "sign"))
	plain := r.write("plain.txt", []byte("attack at dawn\n"))
	var envs []string
	for _, d := range []string{"x", "y"} {
		if err := os.Mkdir(r.path(d), 0o700); err != nil {
			t.Fatal(err)
		}
		env := r.path(filepath.Join(d, "a.tseal"))
		r.expect(0, r.send, "seal", "--sign-with", "sig", "-r", bob, "-o", env, plain)
		envs = append(envs, env)
	}
	outDir := r.path("out")
	if err := os.Mkdir(outDir, 0o700); err != nil {
		t.Fatal(err)
	}
	res := r.run(r.recv, "open", "-o", outDir, envs[0], envs[1])
	if res.code == 0 {
		t.Fatalf("two inputs to one output name: exit 0\nstderr: %s", res.stderr)
	}
	// Whatever the batch did, no envelope may have been recorded in
	// the ledger without its plaintext reaching a file: at most one
	// output exists, so at most one envelope may now be a replay.
	outputs := 0
	if _, err := os.Stat(filepath.Join(outDir, "a")); err == nil {
		outputs = 1
	}
	replays := 0
	for i, env := range envs {
		out := r.path("single" + string(rune('0'+i)))
		if res := r.run(r.recv, "open", "-o", out, env); res.code == 5 {
			replays++
		}
	}
	if replays > outputs {
		t.Fatalf("batch exit %d (%s): %d envelope(s) recorded in the ledger, %d output(s) written: a serial burned, its plaintext lost", res.code, res.stderr, replays, outputs)
	}
}

// TestOpenBatchReorderBounded: while the first envelope of a batch is
// still being decrypted, the other workers go on through the rest, and
// every finished envelope over 64 KiB waits in the reorder buffer with
// its temporary output file open. Unbounded, a slow first input makes
// the process hold one descriptor per later input, and under a modest
// descriptor limit unrelated envelopes fail. The buffer must stay
// bounded (maxBatch plus the work in flight).
func TestOpenBatchReorderBounded(t *testing.T) {
	if _, err := softhsmtest.FindModule(); err != nil {
		t.Fatal(err)
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit not installed")
	}
	bin := buildReplayBinary(t)
	r := newReplayRig(t, bin)
	rc := replayRecipient(t, r.key("bob", "p256", "exchange"))
	seal := func(plain []byte) []byte {
		var buf bytes.Buffer
		w, err := envelope.Seal(&buf, []envelope.Recipient{rc}, nil)
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
	in := r.path("in")
	if err := os.Mkdir(in, 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"--nofile=200:200", bin, "open", "--allow-anonymous", "-o", r.path("out")}
	big := filepath.Join(in, "000.tseal")
	if err := os.WriteFile(big, seal(make([]byte, 256<<20)), 0o600); err != nil {
		t.Fatal(err)
	}
	args = append(args, big)
	small := seal(make([]byte, 100<<10))
	for i := 1; i <= 400; i++ {
		p := filepath.Join(in, fmt.Sprintf("%03d.tseal", i))
		if err := os.WriteFile(p, small, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	if err := os.Mkdir(r.path("out"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), replayDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, prlimit, args...)
	cmd.Dir = r.dir
	cmd.Env = r.environ(r.recv)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("open of 401 envelopes under 200 descriptors: %v\n%.2000s", err, out)
	}
}
