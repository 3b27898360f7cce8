package token

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUnsafeFile is wrapped by the refusal of a local file that others
// could read or change: a PIN file others can read, a module others can
// replace (issue 11, finding 4). It is not a token error: nothing was
// sent to a token, and the fix is a chmod or chown (exit 1).
var ErrUnsafeFile = errors.New("unsafe file")

// unsafeFileError is a refusal that names the file, its problem and the
// fix; it matches [ErrUnsafeFile].
type unsafeFileError struct{ msg string }

func (e *unsafeFileError) Error() string        { return e.msg }
func (e *unsafeFileError) Is(target error) bool { return target == ErrUnsafeFile }

func unsafeFile(format string, a ...any) error {
	return &unsafeFileError{fmt.Sprintf(format, a...)}
}

// ownerProblem names another owner than the user or root, or "".
func ownerProblem(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 || int(st.Uid) == os.Geteuid() {
		return ""
	}
	return fmt.Sprintf("belongs to uid %d, neither you nor root", st.Uid)
}

// checkPINFile refuses a PIN file, given its open file's Stat, that group
// or others may read or write, or that another user owns, as ssh refuses
// such a private key. Only a regular file is checked: a pipe or a
// terminal (--pin-file <(pass show ...), /dev/stdin) keeps nothing.
func checkPINFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return nil
	}
	if p := ownerProblem(fi); p != "" {
		return unsafeFile("pin file %s %s: refused, as ssh refuses such a private key", path, p)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return unsafeFile("pin file %s has mode %04o, readable by others: refused, as ssh refuses such a private key (chmod 600 %s)", path, perm, path)
	}
	return nil
}

// CheckNotWritable refuses a file, and the directory that holds it, that
// group or others may write, or that a user other than the user or root
// owns: whoever could replace a module runs code with the PIN, whoever
// could rewrite the config file chooses the module. kind names the file
// in the error ("pkcs11 module", "config file"). Symbolic links are
// followed, and the directories of the link and of its target are
// checked both. A path that is not a regular file (/dev/null) is left
// alone.
func CheckNotWritable(kind, path string) error {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if err := notWritable(kind, path, fi); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil
	}
	for _, dir := range []string{filepath.Dir(path), filepath.Dir(real)} {
		di, err := os.Stat(dir)
		if err != nil {
			continue
		}
		if err := notWritable("directory of "+kind, dir, di); err != nil {
			return err
		}
	}
	return nil
}

func notWritable(kind, path string, fi fs.FileInfo) error {
	if p := ownerProblem(fi); p != "" {
		return unsafeFile("%s %s %s: refused (chown it to yourself or root)", kind, path, p)
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 {
		return nil
	}
	if fi.IsDir() && fi.Mode()&fs.ModeSticky != 0 && perm&0o002 != 0 {
		return unsafeFile("%s %s is a shared directory (mode %04o): refused, since another user could have put the file there", kind, path, perm)
	}
	return unsafeFile("%s %s has mode %04o, writable by others: refused (chmod go-w %s)", kind, path, perm, path)
}
