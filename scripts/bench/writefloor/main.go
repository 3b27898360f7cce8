// Command writefloor is the file-system floor that scripts/bench.sh holds
// a batch `tokenseal open -o DIR` to: it writes n files of size bytes
// into dir the way that batch writes its outputs, and does nothing else
// (no input, no cryptography, no token, no ledger). Each file is an
// unnamed O_TMPFILE inode, written and then linked to its name, by
// 2×GOMAXPROCS workers (the batch's), with the same durability as
// `tokenseal open` without --sync: nothing is flushed to stable storage
// (-sync flushes each file and then the directory, as --sync does).
//
//	writefloor -dir DIR [-n 2000] [-size 1024] [-sync]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

func main() {
	dir := flag.String("dir", "", "an existing, empty `DIR` to write into")
	n := flag.Int("n", 2000, "number of files")
	size := flag.Int("size", 1024, "bytes per file")
	syncFlag := flag.Bool("sync", false, "fsync each file and the directory, as tokenseal open --sync")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "writefloor: error: need -dir")
		os.Exit(2)
	}
	if err := run(*dir, *n, *size, *syncFlag); err != nil {
		fmt.Fprintln(os.Stderr, "writefloor: error:", err)
		os.Exit(1)
	}
}

func run(dir string, n, size int, flush bool) error {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	jobs := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(n, 2*runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := write(dir, fmt.Sprintf("m%05d.out", i), data, flush); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if flush {
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		return d.Sync()
	}
	return nil
}

// write writes one file: an O_TMPFILE inode, linked to name when whole.
func write(dir, name string, data []byte, flush bool) error {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("O_TMPFILE in %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if flush {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	proc := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	return unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, filepath.Join(dir, name), unix.AT_SYMLINK_FOLLOW)
}
