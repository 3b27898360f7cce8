package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A batch reads each input twice (for the serial order, then to open
// it): a FIFO among its inputs is refused before anything is opened,
// instead of blocking on it (no writer) or reading other bytes the
// second time.
func TestBatchRefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.tseal")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	env := filepath.Join(dir, "a.tseal")
	os.WriteFile(env, []byte("not opened"), 0o600)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o700)
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		var o, e bytes.Buffer
		code := run([]string{"tokenseal", "open", "--state-dir", filepath.Join(dir, "state"), "-o", out, env, fifo}, strings.NewReader(""), &o, &e)
		done <- result{code, o.String(), e.String()}
	}()
	select {
	case r := <-done:
		if r.code != exitUsage || !strings.Contains(r.stderr, "pipe.tseal is not a regular file") {
			t.Fatalf("exit %d, stderr %q; want exit 2 naming the FIFO", r.code, r.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("open of a batch with a FIFO still blocked after 30 s")
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Fatalf("left in the output directory: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
		t.Fatal("the state directory was created")
	}
}

// A batch whose first envelope is slow (256 MiB) and whose other 400 are
// over 64 KiB each, under a limit of 200 file descriptors: the outputs
// waiting for their turn are bounded (receive's TestBatchReorderBounded
// counts them), so the process stays under the limit and every envelope
// opens.
func TestBatchUnderDescriptorLimit(t *testing.T) {
	c := newRig(t)
	c.procs = true
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prlimit (util-linux) is needed in CI")
		}
		t.Skip("prlimit not installed")
	}
	rc := c.recipient(c.key("bob", "p256", "exchange"))
	in, out := mkdir(t, c.path("in")), mkdir(t, c.path("out"))
	big := filepath.Join(in, "000.tseal")
	if err := os.WriteFile(big, sealTo(t, rc, nil, make([]byte, 256<<20)), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--nofile=200:200", "tokenseal", "open", "--allow-anonymous", "-o", out, big}
	small := sealTo(t, rc, nil, make([]byte, 100<<10))
	for i := 1; i <= 400; i++ {
		p := filepath.Join(in, fmt.Sprintf("%03d.tseal", i))
		if err := os.WriteFile(p, small, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := c.command(ctx, c.recv)
	cmd.Path, cmd.Args = prlimit, append([]string{prlimit}, args...)
	if res, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("open of 401 envelopes under 200 descriptors: %v\n%.2000s", err, res)
	}
	if n := len(dirEntries(out)); n != 401 {
		t.Fatalf("%d outputs, want 401", n)
	}
}
