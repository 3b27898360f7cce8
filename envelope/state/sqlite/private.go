package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/tokenseal/tokenseal/envelope/state"
)

// unsafeError is a state directory or file others could change.
type unsafeError struct{ msg string }

func (e *unsafeError) Error() string        { return e.msg }
func (e *unsafeError) Is(target error) bool { return target == state.ErrUnsafe }

// preparePrivate creates dir (0700) and dir/state.db (0600) when missing
// and checks both are the user's own and private, without following a
// symbolic link at either. It returns the database's path.
func preparePrivate(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	if err := privateProblem("state directory", dir, fi, true); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "state.db")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return "", privateProblem("state database", path, nil, false)
	}
	if err != nil {
		return "", fmt.Errorf("state database: %w", err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return "", fmt.Errorf("state database: %w", err)
	}
	if err := privateProblem("state database", path, fi, false); err != nil {
		return "", err
	}
	return path, checkSideFiles(path)
}

// checkSideFiles checks SQLite's -wal and -shm files, when they exist,
// as state.db itself.
func checkSideFiles(path string) error {
	for _, side := range []string{path + "-wal", path + "-shm"} {
		fi, err := os.Lstat(side)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := privateProblem("state file", side, fi, false); err != nil {
			return err
		}
	}
	return nil
}

// privateProblem returns what makes path (of kind "state directory",
// "state database"...) unsafe to use, with the command that fixes it, or
// nil. fi is its Lstat; nil means it is a symbolic link.
func privateProblem(kind, path string, fi fs.FileInfo, isDir bool) error {
	switch {
	case fi == nil || fi.Mode()&fs.ModeSymlink != 0:
		return &unsafeError{fmt.Sprintf("%s %s is a symbolic link: refused, since whoever controls its target controls the trusted senders and the ledger (replace it with what it points to: mv \"$(readlink -f %s)\" %s)", kind, path, path, path)}
	case isDir && !fi.IsDir():
		return &unsafeError{fmt.Sprintf("%s %s is not a directory", kind, path)}
	case !isDir && !fi.Mode().IsRegular():
		return &unsafeError{fmt.Sprintf("%s %s is not a regular file", kind, path)}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return &unsafeError{fmt.Sprintf("%s %s belongs to uid %d, not to you: others could change the trusted senders and the ledger (chown %s %s)", kind, path, st.Uid, userName(), path)}
	}
	want := fs.FileMode(0o600)
	if isDir {
		want = 0o700
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return &unsafeError{fmt.Sprintf("%s %s has mode %04o, want %04o (chmod %o %s)", kind, path, perm, want, want, path)}
	}
	return nil
}

// userName is the user's name, or uid.
func userName() string {
	uid := strconv.Itoa(os.Geteuid())
	if u, err := user.LookupId(uid); err == nil {
		return u.Username
	}
	return uid
}
