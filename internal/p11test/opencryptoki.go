package p11test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// opencryptoki's soft token: one per machine, in slot 3 of the module,
// with the SO PIN the package sets and user PINs of 4 to 8 characters.
const (
	ockSlot  = 3
	ockSOPIN = "87654321"
	ockPIN   = "us3r-pin"
	// ockLock serialises every test of every process that uses the one
	// soft token.
	ockLock = "/tmp/tokenseal-opencryptoki.lock"
)

// OpenCryptokiModule returns opencryptoki's module.
func OpenCryptokiModule() (string, error) {
	return findFile("opencryptoki module",
		"/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so",
		"/usr/lib/aarch64-linux-gnu/pkcs11/libopencryptoki.so",
		"/usr/lib64/pkcs11/libopencryptoki.so",
		"/usr/lib/opencryptoki/libopencryptoki.so")
}

// lockOpenCryptoki takes the machine-wide lock on the soft token.
func lockOpenCryptoki() (func(), error) {
	f, err := os.OpenFile(ockLock, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", ockLock, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// slotdRunning reports whether a live pkcsslotd process exists.
func slotdRunning() bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ...
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open || s[open+1:close] != "pkcsslotd" {
			continue
		}
		if f := strings.Fields(s[close+1:]); len(f) > 0 && f[0] != "Z" {
			return true
		}
	}
	return false
}

// ensureSlotd starts pkcsslotd when none runs. It forks into the
// background and stays: it is the machine's, shared by every user of
// opencryptoki.
func ensureSlotd(module string) error {
	if !slotdRunning() {
		if _, err := findFile("pkcsslotd", "/usr/sbin/pkcsslotd", "/usr/bin/pkcsslotd"); err != nil {
			return err
		}
		os.Remove("/var/run/pkcsslotd.pid") // left by one that died
		if _, err := run(nil, "pkcsslotd"); err != nil {
			return err
		}
	}
	return waitFor("pkcsslotd", 10*time.Second, func() error { _, err := listSlots(nil, module); return err })
}

// makeOpenCryptoki takes the lock, makes sure pkcsslotd runs and
// re-initialises the soft token with a fresh label.
func makeOpenCryptoki() (*Token, func(), error) {
	module, err := OpenCryptokiModule()
	if err != nil {
		return nil, func() {}, err
	}
	unlock, err := lockOpenCryptoki()
	if err != nil {
		return nil, func() {}, err
	}
	if err := ensureSlotd(module); err != nil {
		return nil, unlock, err
	}
	tok := &Token{Kind: OpenCryptoki, Module: module, Label: uniqueLabel(), Slot: ockSlot, SOPIN: ockSOPIN, PIN: ockPIN}
	if err := initWithTool(nil, module, ockSlot, tok.Label, tok.SOPIN, tok.PIN); err != nil {
		return nil, unlock, err
	}
	s, err := lookUp(nil, module, ockSlot)
	if err != nil {
		return nil, unlock, err
	}
	tok.Serial = s.serial
	return tok, unlock, nil
}
