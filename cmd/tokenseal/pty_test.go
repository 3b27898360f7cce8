package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The PIN prompt through a pseudo-terminal (issue 12, item 1): a
// tokenseal process whose controlling terminal is a pty the test holds
// the other end of, as a user at a terminal would run it.

// ptyProc is a tokenseal process with a pty as its controlling terminal.
type ptyProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	master *os.File
	mu     sync.Mutex
	screen bytes.Buffer // what the process wrote to the terminal
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// startOnPTY starts tokenseal with stdin from the file in (nil: the
// terminal), stdout and stderr captured, the pty as its controlling
// terminal, and no PIN given anywhere but the prompt.
func (c *rig) startOnPTY(in *os.File, args ...string) *ptyProc {
	c.t.Helper()
	return c.onPTY(in, "", args...)
}

// startShellOnPTY is startOnPTY for another program (a shell), which
// finds tokenseal on $PATH.
func (c *rig) startShellOnPTY(prog string, args ...string) *ptyProc {
	c.t.Helper()
	return c.onPTY(nil, prog, args...)
}

func (c *rig) onPTY(in *os.File, prog string, args ...string) *ptyProc {
	c.t.Helper()
	master, slave := openPTY(c.t)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	c.t.Cleanup(cancel)
	cmd := c.command(ctx, c.recv, args...)
	if prog != "" {
		cmd.Path, cmd.Args = prog, append([]string{prog}, args...)
	}
	cmd.Env = append(cmd.Env, "TOKENSEAL_BATCH=", "TOKENSEAL_PIN=", "TOKENSEAL_PIN_FILE=")
	p := &ptyProc{t: c.t, cmd: cmd, master: master, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	cmd.ExtraFiles = []*os.File{slave} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 3}
	switch {
	case in != nil:
		cmd.Stdin = in
	case prog != "":
		// A shell does job control on the terminal it has as stdin,
		// stdout and stderr.
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	default:
		cmd.Stdin = slave
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	slave.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.screen.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	c.t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		master.Close()
	})
	return p
}

// waitFor waits until the terminal shows want (after what was already
// consumed) and consumes up to it.
func (p *ptyProc) waitFor(want string) {
	p.t.Helper()
	end := time.Now().Add(30 * time.Second)
	for time.Now().Before(end) {
		p.mu.Lock()
		s := p.screen.String()
		if i := strings.Index(s, want); i >= 0 {
			p.screen.Next(i + len(want))
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			p.t.Fatalf("process ended (%v) before the terminal showed %q; it showed %q, stderr %q", p.err, want, s, p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.t.Fatalf("the terminal never showed %q", want)
}

func (p *ptyProc) typeIn(s string) {
	p.t.Helper()
	if _, err := p.master.Write([]byte(s)); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for the process to end and returns its wait status.
func (p *ptyProc) wait() syscall.WaitStatus {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(deadline):
		p.t.Fatal("tokenseal still running")
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		p.t.Fatal(p.err)
	}
	return p.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// echoOn reports whether the terminal echoes again.
func (p *ptyProc) echoOn() bool {
	p.t.Helper()
	tio, err := unix.IoctlGetTermios(int(p.master.Fd()), unix.TCGETS)
	if err != nil {
		p.t.Fatal(err)
	}
	return tio.Lflag&unix.ECHO != 0
}

// ptyRig is a token with an exchange key and an anonymous armored
// envelope to it, notes.tseal.asc.
func ptyRig(t *testing.T) (*rig, *os.File) {
	c := newRig(t)
	pem := c.key("bob", "p256", "exchange")
	c.write("notes.txt", []byte("meeting at noon\n"))
	c.expect(0, c.send, "seal", "--anonymous", "--armor", "-r", pem, "-o", c.path("notes.tseal.asc"), c.path("notes.txt"))
	f, err := os.Open(c.path("notes.tseal.asc"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return c, f
}

// TestPINPromptOnTTY: `tokenseal open < notes.tseal.asc` asks for the
// PIN on the terminal although stdin is a file; the PIN is not echoed; a
// wrong PIN is asked again only once the user confirms (SoftHSM2 reports
// CKF_USER_PIN_COUNT_LOW after one), and the right one opens.
func TestPINPromptOnTTY(t *testing.T) {
	c, in := ptyRig(t)
	p := c.startOnPTY(in, "open", "--allow-anonymous")
	p.waitFor(fmt.Sprintf("PIN for token %q: ", c.tok.Label))
	p.typeIn("0000-wrong\n")
	p.waitFor("wrong PIN; the token reports few tries left (CKF_USER_PIN_COUNT_LOW)")
	p.waitFor("Try again? [y/N] ")
	p.typeIn("y\n")
	p.waitFor("PIN for token")
	p.typeIn("\x01bad\n")
	p.waitFor("it was not sent to the token (no try spent)")
	p.waitFor("PIN for token")
	p.typeIn(c.tok.PIN + "\n")
	if st := p.wait(); st.ExitStatus() != 0 {
		t.Fatalf("exit %v, stderr %q", st, p.stderr.String())
	}
	if p.stdout.String() != "meeting at noon\n" {
		t.Fatalf("stdout %q", p.stdout.String())
	}
	p.mu.Lock()
	rest := p.screen.String()
	p.mu.Unlock()
	if strings.Contains(rest, c.tok.PIN) {
		t.Fatalf("the PIN was echoed: %q", rest)
	}
	if !p.echoOn() {
		t.Fatal("echo left off")
	}
}

// TestPINPromptDeclined: no to "Try again?" ends with the login failure
// (exit 3); --batch never asks.
func TestPINPromptDeclined(t *testing.T) {
	c, in := ptyRig(t)
	p := c.startOnPTY(in, "open", "--allow-anonymous")
	p.waitFor("PIN for token")
	p.typeIn("0000-wrong\n")
	p.waitFor("Try again? [y/N] ")
	p.typeIn("\n")
	if st := p.wait(); st.ExitStatus() != exitToken || !strings.Contains(p.stderr.String(), "CKR_PIN_INCORRECT") {
		t.Fatalf("exit %v, stderr %q", st, p.stderr.String())
	}
	in.Seek(0, 0)
	p = c.startOnPTY(in, "open", "--allow-anonymous", "--batch")
	if st := p.wait(); st.ExitStatus() != exitToken || !strings.Contains(p.stderr.String(), "no pin given") {
		t.Fatalf("--batch: exit %v, stderr %q", st, p.stderr.String())
	}
}

// TestPINPromptSignals: Ctrl-C or a kill at the prompt ends tokenseal by
// that signal with the terminal's echo on again; Ctrl-Z stops it with
// echo on, and once continued it asks again.
func TestPINPromptSignals(t *testing.T) {
	c, in := ptyRig(t)
	for _, tc := range []struct {
		name string
		send func(p *ptyProc)
		sig  syscall.Signal
	}{
		{"ctrl-c", func(p *ptyProc) { p.typeIn("\x03") }, syscall.SIGINT},
		{"sigterm", func(p *ptyProc) { p.cmd.Process.Signal(syscall.SIGTERM) }, syscall.SIGTERM},
		{"sighup", func(p *ptyProc) { p.cmd.Process.Signal(syscall.SIGHUP) }, syscall.SIGHUP},
	} {
		in.Seek(0, 0)
		p := c.startOnPTY(in, "open", "--allow-anonymous")
		p.waitFor("PIN for token")
		if p.echoOn() {
			t.Fatalf("%s: echo on at the prompt", tc.name)
		}
		tc.send(p)
		st := p.wait()
		if !st.Signaled() || st.Signal() != tc.sig {
			t.Fatalf("%s: ended %v, want killed by %v", tc.name, st, tc.sig)
		}
		if !p.echoOn() {
			t.Fatalf("%s: echo left off", tc.name)
		}
	}

}

// TestPINPromptCtrlZ: Ctrl-Z at the prompt stops tokenseal with the
// terminal's echo on; continued (fg), it asks again. A stop needs a
// job-controlling shell (a process group without one is orphaned, and
// the kernel drops its SIGTSTP): bash -m runs tokenseal as a job, and
// waits on a FIFO before fg, so the test sees it stopped.
func TestPINPromptCtrlZ(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := ptyRig(t)
	fifo := c.path("go-on")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `tokenseal open --allow-anonymous < notes.tseal.asc > out.txt; read -r x < go-on; fg`
	p := c.startShellOnPTY(bash, "-mc", script)
	p.waitFor("PIN for token")
	p.typeIn("\x1a") // Ctrl-Z
	pid := waitStoppedChild(t, p.cmd.Process.Pid)
	if !p.echoOn() {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		p.mu.Lock()
		screen := p.screen.String()
		p.mu.Unlock()
		t.Fatalf("stopped with echo off: %s %q screen %q", st, cmdline, screen)
	}
	if err := os.WriteFile(fifo, []byte("\n"), 0); err != nil {
		t.Fatal(err)
	}
	p.waitFor("PIN for token")
	p.typeIn(c.tok.PIN + "\n")
	if st := p.wait(); st.ExitStatus() != 0 {
		t.Fatalf("exit %v, stderr %q", st, p.stderr.String())
	}
	if got := string(c.read(c.path("out.txt"))); got != "meeting at noon\n" {
		t.Fatalf("tokenseal (pid %d) wrote %q", pid, got)
	}
	if !p.echoOn() {
		t.Fatal("echo left off")
	}
}

// waitStoppedChild waits until a child of process ppid is stopped (state
// T in /proc) and returns its pid.
func waitStoppedChild(t *testing.T, ppid int) int {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", ppid, ppid))
		for _, f := range strings.Fields(string(b)) {
			var pid int
			fmt.Sscan(f, &pid)
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue
			}
			if f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:])); len(f) > 0 && f[0] == "T" {
				return pid
			}
		}
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", ppid, ppid))
	t.Fatalf("tokenseal never stopped; children of %d: %q", ppid, b)
	return 0
}
