// Command gcmref is the plain-Go reference stream for scripts/bench.sh:
// AES-256-GCM over 64 KiB chunks with 1 MiB buffered I/O, one goroutine,
// no header and no framing beyond the 16-byte tags. The nonce is a chunk
// counter with a last-chunk flag, as in STREAM; the key is fixed, since it
// measures speed only.
//
//	gcmref IN OUT      encrypt
//	gcmref -d IN OUT   decrypt
package main

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const (
	chunk = 64 << 10
	bufSz = 1 << 20
)

func main() {
	decrypt := flag.Bool("d", false, "decrypt")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: gcmref [-d] IN OUT")
		os.Exit(2)
	}
	if err := run(*decrypt, flag.Arg(0), flag.Arg(1)); err != nil {
		fmt.Fprintln(os.Stderr, "gcmref: error:", err)
		os.Exit(1)
	}
}

func run(decrypt bool, in, out string) error {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	src, err := os.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		return err
	}
	r := bufio.NewReaderSize(src, bufSz)
	w := bufio.NewWriterSize(dst, bufSz)
	n := chunk
	if decrypt {
		n += aead.Overhead()
	}
	buf := make([]byte, n, chunk+aead.Overhead())
	var nonce [12]byte
	for ctr := uint64(0); ; ctr++ {
		m, err := io.ReadFull(r, buf[:n])
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return err
		}
		_, perr := r.Peek(1)
		if perr != nil && perr != io.EOF {
			return perr
		}
		last := perr != nil
		binary.BigEndian.PutUint64(nonce[3:11], ctr)
		if last {
			nonce[11] = 1
		}
		var res []byte
		if decrypt {
			if res, err = aead.Open(buf[:0], nonce[:], buf[:m], nil); err != nil {
				return errors.New("authentication failed")
			}
		} else {
			res = aead.Seal(buf[:0], nonce[:], buf[:m], nil)
		}
		if _, err := w.Write(res); err != nil {
			return err
		}
		if last {
			break
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return dst.Close()
}
