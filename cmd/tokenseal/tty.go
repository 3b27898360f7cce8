package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// The terminal. Prompts and confirmations go to /dev/tty whenever the
// process has a controlling terminal, whatever stdin and stdout are (a
// file, a pipe), as gpg, ssh and age do: `tokenseal open < x.tseal` asks
// for the PIN there. --batch (TOKENSEAL_BATCH) never asks: a PIN or a
// confirmation not given otherwise is then an error, as without a
// terminal (cron, CI).

var flagBatch = &cli.BoolFlag{
	Name:    "batch",
	Usage:   "never ask on the terminal: a PIN or confirmation not given otherwise is an error (for scripts)",
	EnvVars: []string{"TOKENSEAL_BATCH"},
}

// errNoTTY is a prompt without a terminal to ask on.
var errNoTTY = errors.New("no terminal to ask on")

// openTTY opens the controlling terminal.
func openTTY() (*os.File, error) {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, errNoTTY
	}
	return f, nil
}

// canAsk reports whether tokenseal may ask the user: there is a
// controlling terminal and --batch is not given.
func canAsk(c *cli.Context) bool {
	if c.Bool("batch") {
		return false
	}
	f, err := openTTY()
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// terminalSignals end or stop the process; the terminal is restored
// before any of them takes effect.
var terminalSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTSTP}

// readSecret prompts on /dev/tty and reads a line with echo off. The
// terminal's settings are restored when it returns and before any
// signal of terminalSignals takes effect: Ctrl-C (or a kill) at the
// prompt ends the process by that signal with echo on again; Ctrl-Z
// stops it with echo on, and it asks again when continued.
func readSecret(prompt string) (string, error) {
	tty, err := openTTY()
	if err != nil {
		return "", err
	}
	defer tty.Close()
	fd := int(tty.Fd())
	saved, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("reading the terminal's settings: %w", err)
	}
	quiet := *saved
	quiet.Lflag = quiet.Lflag&^unix.ECHO | unix.ICANON | unix.ISIG | unix.ECHONL
	quiet.Iflag |= unix.ICRNL
	hide := func() { unix.IoctlSetTermios(fd, unix.TCSETS, &quiet) }
	restore := func() { unix.IoctlSetTermios(fd, unix.TCSETS, saved) }

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, terminalSignals...)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case sig := <-sigs:
				restore()
				fmt.Fprintln(tty)
				resignal(sig.(syscall.Signal))
				// Only SIGTSTP comes back here, once continued.
				hide()
				fmt.Fprint(tty, prompt)
			}
		}
	}()
	defer func() {
		signal.Stop(sigs)
		close(done)
		<-finished
		restore()
	}()
	hide()
	fmt.Fprint(tty, prompt)
	line, err := readLine(tty)
	if err != nil {
		return "", fmt.Errorf("reading from the terminal: %w", err)
	}
	return line, nil
}

// resignal lets sig take its default effect on this process: ended by
// SIGINT and the others, stopped by SIGTSTP (returning once continued).
// The stop is SIGSTOP: Go's runtime keeps its handler for SIGTSTP after
// signal.Reset and would drop a SIGTSTP sent to itself.
func resignal(sig syscall.Signal) {
	if sig == syscall.SIGTSTP {
		// The stop takes effect a moment after kill returns: wait for
		// the SIGCONT that ends it.
		cont := make(chan os.Signal, 1)
		signal.Notify(cont, syscall.SIGCONT)
		defer signal.Stop(cont)
		syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		<-cont
		return
	}
	signal.Reset(sig)
	syscall.Kill(os.Getpid(), sig)
	select {} // the signal ends the process
}

// readLine reads up to a newline (dropped, with a carriage return
// before it); EOF before any newline is an error.
func readLine(r io.Reader) (string, error) {
	var b []byte
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				s := strings.TrimSuffix(string(b), "\r")
				clear(b)
				return s, nil
			}
			b = append(b, buf[0])
		}
		if err != nil {
			clear(b)
			if errors.Is(err, io.EOF) {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// confirm asks a yes/no question on /dev/tty; no is the default.
func confirm(question string) (bool, error) {
	tty, err := openTTY()
	if err != nil {
		return false, usageErrorf("no terminal to confirm on: use --yes")
	}
	defer tty.Close()
	fmt.Fprintf(tty, "%s [y/N] ", question)
	line, err := readLine(tty)
	if err != nil {
		return false, nil
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}
