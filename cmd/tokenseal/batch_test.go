package main

import (
	"bytes"
	"os"
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
