package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdRandFile is "randfile NAME SIZE": SIZE random bytes in NAME.
func cmdRandFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: randfile NAME SIZE")
	}
	n, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	f, err := os.Create(ts.MkAbs(args[0]))
	ts.Check(err)
	_, err = io.CopyN(f, rand.Reader, n)
	ts.Check(err)
	ts.Check(f.Close())
}

// cmsSegment is the header of a full content segment in the CMS tokenseal
// writes: an OCTET STRING of 256 KiB (docs/cms.md, section 1).
var cmsSegment = []byte{0x04, 0x83, 0x04, 0x00, 0x00}

// cmdCMSReorder is "cmsreorder IN OUT": OUT is the binary CMS message IN
// with its first two content segments swapped, every byte kept.
func cmdCMSReorder(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: cmsreorder IN OUT")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	i := bytes.Index(b, cmsSegment)
	seg := len(cmsSegment) + 256<<10
	if i < 0 || i+2*seg > len(b) || !bytes.HasPrefix(b[i+seg:], cmsSegment) {
		ts.Fatalf("cmsreorder: %s has no two full content segments", args[0])
	}
	out := bytes.Clone(b)
	copy(out[i:], b[i+seg:i+2*seg])
	copy(out[i+seg:], b[i:i+seg])
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), out, 0o644))
}
