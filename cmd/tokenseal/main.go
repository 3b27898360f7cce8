// Command tokenseal seals files to keys held on PKCS#11 tokens and opens
// them on the token. This file holds main and run; commands.go lists the
// commands, exit.go maps errors to exit codes, and each command's action
// lives in a file of its own.
package main

import (
	"io"
	"os"
	"runtime/pprof"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// TOKENSEAL_CPUPROFILE=FILE writes a CPU profile, for `go tool pprof`.
	if f := os.Getenv("TOKENSEAL_CPUPROFILE"); f != "" {
		if out, err := os.Create(f); err == nil {
			pprof.StartCPUProfile(out)
			code := run(os.Args, os.Stdin, os.Stdout, os.Stderr)
			pprof.StopCPUProfile()
			out.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run runs the CLI and returns the exit code; it never calls os.Exit, so
// the CLI can be driven in-process by tests.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	if len(args) > 1 && args[1] == completeCommand {
		return runComplete(app, args[2:], stdout)
	}
	line := parseCmdLine(app, args)
	app.Metadata = map[string]any{typedMetadataKey: line.typed(app)}
	err := app.Run(line.reordered(app))
	return report(stderr, err)
}
