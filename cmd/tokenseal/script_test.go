package main

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	ref "github.com/tokenseal/tokenseal/internal/reference"
	"github.com/tokenseal/tokenseal/internal/softhsmtest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"tokenseal": func() { os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs testdata/*.txtar, each against a fresh SoftHSM2 token
// made by softhsmtest. The script sees SOFTHSM2_CONF, TOKENSEAL_MODULE,
// TOKENSEAL_TOKEN, TOKENSEAL_PIN, and TOKEN_SERIAL, SO_PIN.
//
// Besides the standard commands, "exits CODE PROGRAM ARGS..." runs a
// program like exec and checks its exact exit code; "flipbyte FILE OFFSET"
// flips the low bit of one byte (a negative OFFSET counts from the end);
// "truncate FILE SIZE" cuts a file; "armor IN OUT" writes the ASCII
// armor of the binary envelope IN (FORMAT.md, section 7, as
// internal/reference writes it).
func TestScripts(t *testing.T) {
	if _, err := softhsmtest.FindModule(); err != nil {
		t.Fatal(err) // never skip: CI must have SoftHSM2
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"exits": cmdExits, "flipbyte": cmdFlipByte, "truncate": cmdTruncate, "armor": cmdArmor,
			"randfile": cmdRandFile, "cmsreorder": cmdCMSReorder},
		Setup: func(env *testscript.Env) error {
			dir, err := os.MkdirTemp("", "tokenseal-script-")
			if err != nil {
				return err
			}
			env.Defer(func() { os.RemoveAll(dir) })
			tok, err := softhsmtest.Make(dir)
			if err != nil {
				return err
			}
			env.Setenv("SOFTHSM2_CONF", tok.Conf)
			env.Setenv("TOKENSEAL_MODULE", tok.Module)
			env.Setenv("TOKENSEAL_TOKEN", tok.Label)
			env.Setenv("TOKENSEAL_PIN", tok.PIN)
			env.Setenv("TOKEN_SERIAL", tok.Serial)
			env.Setenv("SO_PIN", tok.SOPIN)
			// The race detector sleeps a second at every exit by default.
			env.Setenv("GORACE", "atexit_sleep_ms=0")
			return nil
		},
	})
}

func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exits")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("exits: %v", err)
	}
	if got != want {
		ts.Fatalf("exit code %d, want %d", got, want)
	}
}

func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbyte FILE OFFSET")
	}
	path := ts.MkAbs(args[0])
	b, err := os.ReadFile(path)
	ts.Check(err)
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	if off < 0 {
		off += len(b)
	}
	if off < 0 || off >= len(b) {
		ts.Fatalf("flipbyte: offset %s out of range for %d bytes", args[1], len(b))
	}
	b[off] ^= 1
	ts.Check(os.WriteFile(path, b, 0o644))
}

func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncate FILE SIZE")
	}
	n, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	ts.Check(os.Truncate(ts.MkAbs(args[0]), n))
}

func cmdArmor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: armor IN OUT")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), ref.Armor(b), 0o644))
}
