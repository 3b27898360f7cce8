package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// atomicFile is an output file that appears at its final path only when
// Commit succeeds. Where the file system allows it (Linux: ext4, XFS,
// btrfs, tmpfs) it is an unnamed O_TMPFILE inode beside the final path,
// linked into place by Commit: a process killed before that leaves no
// file at all. Elsewhere it is a hidden temporary file renamed into place.
// Abort (or a Commit that fails) removes it, so a failure leaves nothing at
// the final path.
type atomicFile struct {
	*os.File
	final   string
	unnamed bool // O_TMPFILE: no name until Commit
	done    bool
}

// checkOutput refuses an existing path unless force, and whatever is not
// a regular file even with force: renaming over a device, a FIFO or a
// symlink would replace it (as root, /dev/null itself). Callers run it
// before expensive work too, so that a doomed output costs nothing.
func checkOutput(path string, force bool) error {
	if fi, err := os.Lstat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return &outputNotRegularError{path}
		}
		if !force {
			return &outputExistsError{path}
		}
	}
	return nil
}

// createOutput creates the temporary file for path with mode perm. It
// refuses an existing path unless force.
func createOutput(path string, force bool, perm os.FileMode) (*atomicFile, error) {
	if err := checkOutput(path, force); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	// perm is the most the file gets; the umask still applies, as for
	// any file a program creates (0600 plaintext stays 0600 or less).
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err == nil {
		return &atomicFile{File: os.NewFile(uintptr(fd), path), final: path, unnamed: true}, nil
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tokenseal-*")
	if err != nil {
		return nil, fmt.Errorf("creating output %s: %w", path, cause(err))
	}
	if err := f.Chmod(perm &^ umask()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("creating output %s: %w", path, cause(err))
	}
	return &atomicFile{File: f, final: path}, nil
}

// cause is the system error inside err, without the path it names: the
// messages of an atomicFile name its final path, never a temporary one.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// Write writes to the output; an error names the final path.
func (a *atomicFile) Write(p []byte) (int, error) {
	n, err := a.File.Write(p)
	if err != nil {
		err = fmt.Errorf("writing output %s: %w", a.final, cause(err))
	}
	return n, err
}

// ReadFrom is io.Copy's way in: through Write, so that errors name the
// final path.
func (a *atomicFile) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{a}, r)
}

// umask returns the process's umask, read from /proc/self/status (setting
// it to read it would race with other threads creating files); 022 when
// unknown.
func umask() os.FileMode {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return os.FileMode(m)
				}
			}
		}
	}
	return 0o022
}

type outputNotRegularError struct{ path string }

func (e *outputNotRegularError) Error() string {
	return fmt.Sprintf("output %s exists and is not a regular file; write to stdout instead (> %s)", e.path, e.path)
}

type outputExistsError struct{ path string }

func (e *outputExistsError) Error() string {
	return fmt.Sprintf("output file %s exists; use --force to overwrite it", e.path)
}

// Sync flushes the data to stable storage, so that a full disk or an I/O
// error is seen before anything is committed.
func (a *atomicFile) Sync() error {
	if err := a.File.Sync(); err != nil {
		return fmt.Errorf("writing output %s: %w", a.final, cause(err))
	}
	return nil
}

// Commit closes the file and moves it into place. With sync it first
// flushes the data to stable storage and afterwards syncs the directory,
// so that the file survives a power loss; without, the data reaches the
// disk when the kernel writes it back, as with cp, age or gpg.
func (a *atomicFile) Commit(force, sync bool) error {
	if sync {
		if err := a.Sync(); err != nil {
			a.Abort()
			return err
		}
	}
	if a.unnamed {
		if err := a.linkUnnamed(force); err != nil {
			a.Abort()
			return err
		}
	} else {
		if err := a.File.Close(); err != nil {
			a.Abort()
			return fmt.Errorf("writing output %s: %w", a.final, cause(err))
		}
		if err := place(a.Name(), a.final, force); err != nil {
			a.Abort()
			return err
		}
	}
	a.done = true
	if sync {
		if d, err := os.Open(filepath.Dir(a.final)); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return nil
}

// linkUnnamed gives the O_TMPFILE inode its final name, then closes it.
func (a *atomicFile) linkUnnamed(force bool) error {
	proc := "/proc/self/fd/" + strconv.Itoa(int(a.File.Fd()))
	link := func(name string) error {
		return unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW)
	}
	var err error
	if force {
		// Link under a hidden name, then rename over the final path.
		var tmp string
		if tmp, err = linkTemp(a.final, link); err == nil {
			if err = os.Rename(tmp, a.final); err != nil {
				os.Remove(tmp)
			}
		}
	} else {
		err = link(a.final)
	}
	if cerr := a.File.Close(); err == nil && cerr != nil {
		os.Remove(a.final)
		err = cerr
	}
	if errors.Is(err, os.ErrExist) {
		return &outputExistsError{a.final}
	}
	if err != nil {
		return fmt.Errorf("writing output %s: %w", a.final, cause(err))
	}
	return nil
}

// linkTemp links a file under a hidden name beside final that no one can
// guess (random), made exclusively (link fails on a name that exists):
// in a directory others can write to, nobody can make the commit fail
// by taking the name first (issue 11, finding 6). It returns the name.
func linkTemp(final string, link func(string) error) (string, error) {
	var err error
	for range 8 {
		var b [12]byte
		rand.Read(b[:])
		tmp := filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+".tokenseal-"+hex.EncodeToString(b[:]))
		if err = link(tmp); !errors.Is(err, os.ErrExist) {
			return tmp, err
		}
	}
	return "", err
}

// place moves the named temporary file tmp to final.
func place(tmp, final string, force bool) error {
	if force {
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("writing output %s: %w", final, cause(err))
		}
		return nil
	}
	// Link fails if the final path appeared meanwhile; rename would
	// silently replace it.
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, os.ErrExist) {
			return &outputExistsError{final}
		}
		return fmt.Errorf("writing output %s: %w", final, cause(err))
	}
	os.Remove(tmp)
	return nil
}

// Abort removes the temporary file. It is safe to call after Commit.
func (a *atomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.File.Close()
	if !a.unnamed {
		os.Remove(a.Name())
	}
}

// sameFile reports whether in and out name the same existing file.
func sameFile(in, out string) bool {
	a, err := os.Stat(in)
	if err != nil {
		return false
	}
	b, err := os.Stat(out)
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
}

// openInput opens IN, or stdin for "" and "-".
func openInput(stdin io.Reader, path string) (io.ReadCloser, error) {
	if path == "" || path == "-" {
		return io.NopCloser(stdin), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening input: %w", err)
	}
	return f, nil
}

// Paths users type for -o. A directory (one that exists, or any path
// ending in "/", made if missing with mode 0700: it is to hold
// plaintexts) takes each output under a name derived from its input. A
// character device or a FIFO (-o /dev/null, -o /dev/stdout, a named
// pipe) is written directly, as a stream: nothing can be taken back
// there, so it is treated as standard output is.

// outputDir reports whether the -o value out names a directory, making
// one that ends in "/" if it is missing.
func outputDir(out string) (bool, error) {
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return true, nil
	}
	if !strings.HasSuffix(out, "/") {
		return false, nil
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return false, fmt.Errorf("creating output directory %s: %w", out, cause(err))
	}
	return true, nil
}

// outputStream opens out for writing when it is a character device or
// a FIFO, itself or through one of the system's links to one (/dev/stdout,
// /dev/fd/N); nil when it is neither. Other symbolic links are never
// followed.
func outputStream(out string) (*os.File, error) {
	fi, err := os.Lstat(out)
	if err != nil {
		return nil, nil
	}
	if fi.Mode()&fs.ModeSymlink != 0 && (strings.HasPrefix(out, "/dev/") || strings.HasPrefix(out, "/proc/self/fd/")) {
		if fi, err = os.Stat(out); err != nil {
			return nil, nil
		}
	}
	if fi.Mode()&(fs.ModeCharDevice|fs.ModeNamedPipe) == 0 {
		return nil, nil
	}
	f, err := os.OpenFile(out, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening output %s: %w", out, cause(err))
	}
	return f, nil
}
