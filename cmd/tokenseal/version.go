package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// printVersion is --version: the version the build was given (make
// build: git describe), then what the binary itself records of its
// build (runtime/debug.ReadBuildInfo): the Go toolchain, the module and
// every module compiled in, with its version.
func printVersion(c *cli.Context) {
	writeVersion(c.App.Writer)
}

func writeVersion(w io.Writer) {
	fmt.Fprintf(w, "tokenseal version %s\n", version)
	fmt.Fprintf(w, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	fmt.Fprintf(w, "module: %s %s\n", bi.Main.Path, bi.Main.Version)
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" || s.Key == "vcs.modified" || s.Key == "CGO_ENABLED" {
			fmt.Fprintf(w, "build: %s=%s\n", s.Key, s.Value)
		}
	}
	for _, d := range bi.Deps {
		v := d.Version
		if d.Replace != nil {
			v += " => " + d.Replace.Path + " " + d.Replace.Version
		}
		fmt.Fprintf(w, "dependency: %s %s\n", d.Path, v)
	}
}
