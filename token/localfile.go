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

// ownerOf is the uid that owns fi, and whether it is known.
func ownerOf(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// checkPINFile refuses, given its open file's Stat, a PIN file of the
// user's own that group or others may read or write: what ssh refuses
// for a private key (sshkey_perm_ok). A file another user or root owns
// (a systemd credential, a root:service 0640 file) is left to its owner,
// as ssh leaves it; so is what is not a regular file (a pipe).
func checkPINFile(path string, fi fs.FileInfo) error {
	uid, ok := ownerOf(fi)
	if !fi.Mode().IsRegular() || !ok || uid != os.Geteuid() {
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return unsafeFile("pin file %s has mode %04o, accessible by others: refused, as ssh refuses such a private key (chmod 600 %s)", path, perm, path)
	}
	return nil
}

// CheckNotWritable refuses a file that a user other than the user or
// root could replace: whoever could replace a module runs code with the
// PIN, whoever could rewrite the config file chooses the module. The
// file, and every directory that holds it or a symbolic link on the way
// to it, up to /, must be owned by the user or root and not writable by
// group or others (a directory with the sticky bit, such as /tmp, may
// be: nobody else can replace what is in it). kind names the file in the
// error ("pkcs11 module", "config file"). A path that is not a regular
// file (/dev/null) is left alone.
func CheckNotWritable(kind, path string) error {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if err := notWritable(kind, path, fi); err != nil {
		return err
	}
	for _, dir := range holders(path) {
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

// holders are the directories, each once, that hold path, each symbolic
// link it goes through and its final target, with all their ancestors.
func holders(path string) []string {
	seen := map[string]bool{}
	var dirs []string
	add := func(p string) {
		for d := filepath.Dir(p); !seen[d]; d = filepath.Dir(d) {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	p, err := filepath.Abs(path)
	if err != nil {
		return nil
	}
	for hop := 0; hop < 40; hop++ {
		add(p)
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			break
		}
		t, err := os.Readlink(p)
		if err != nil {
			break
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(p), t)
		}
		p = t
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		if real, err = filepath.Abs(real); err == nil {
			add(real)
		}
	}
	return dirs
}

func notWritable(kind, path string, fi fs.FileInfo) error {
	if uid, ok := ownerOf(fi); ok && uid != 0 && uid != os.Geteuid() {
		return unsafeFile("%s %s belongs to uid %d, neither you nor root: refused (chown it to yourself or root)", kind, path, uid)
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 || (fi.IsDir() && fi.Mode()&fs.ModeSticky != 0) {
		return nil
	}
	return unsafeFile("%s %s has mode %04o, writable by others: refused (chmod go-w %s)", kind, path, perm, path)
}
