package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// atomicFile is an output file written under a temporary name beside its
// final path and renamed into place only by Commit. Abort (or a Commit that
// fails) removes the temporary file, so a failure leaves nothing at the
// final path.
type atomicFile struct {
	*os.File
	final string
	done  bool
}

// createOutput creates the temporary file for path with mode perm. It
// refuses an existing path unless force.
func createOutput(path string, force bool, perm os.FileMode) (*atomicFile, error) {
	if fi, err := os.Lstat(path); err == nil {
		// Renaming over a device, a FIFO or a symlink would replace it
		// (as root, /dev/null itself): refuse whatever is not a regular
		// file, even with --force.
		if !fi.Mode().IsRegular() {
			return nil, &outputNotRegularError{path}
		}
		if !force {
			return nil, &outputExistsError{path}
		}
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tokenseal-*")
	if err != nil {
		return nil, fmt.Errorf("creating output: %w", err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("creating output: %w", err)
	}
	return &atomicFile{File: f, final: path}, nil
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
		return fmt.Errorf("writing output: %w", err)
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
	if err := a.File.Close(); err != nil {
		a.Abort()
		return fmt.Errorf("writing output: %w", err)
	}
	if !force {
		// Link fails if the final path appeared meanwhile; rename would
		// silently replace it.
		if err := os.Link(a.Name(), a.final); err != nil {
			a.Abort()
			if errors.Is(err, os.ErrExist) {
				return &outputExistsError{a.final}
			}
			return fmt.Errorf("writing output: %w", err)
		}
		os.Remove(a.Name())
	} else if err := os.Rename(a.Name(), a.final); err != nil {
		a.Abort()
		return fmt.Errorf("writing output: %w", err)
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

// Abort removes the temporary file. It is safe to call after Commit.
func (a *atomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.File.Close()
	os.Remove(a.Name())
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
