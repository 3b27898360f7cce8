package token

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
)

// ReadPINFile reads a PIN from a file, stripping exactly one trailing
// newline ("\n" or "\r\n"). A regular file that group or others may
// read, or that another user owns, is refused with [ErrUnsafeFile]
// before it is read. A file that cannot be read, or that holds an
// empty PIN, is an error that names the file but never its contents.
// What is left is checked as every PIN is before it reaches the token
// (see [CheckPIN]'s rules on control characters) when it is used.
func ReadPINFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: cannot read pin file %s", ErrNoPIN, path)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%w: cannot read pin file %s", ErrNoPIN, path)
	}
	if err := checkPINFile(path, fi); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("%w: cannot read pin file %s", ErrNoPIN, path)
	}
	s := string(b)
	clear(b)
	if t, ok := strings.CutSuffix(s, "\r\n"); ok {
		s = t
	} else {
		s = strings.TrimSuffix(s, "\n")
	}
	if s == "" {
		return "", fmt.Errorf("%w: pin file %s is empty", ErrNoPIN, path)
	}
	return s, nil
}

// CheckPIN refuses, with [ErrPINInvalid], a PIN that cannot be right for
// the token described by info, so that it never costs a try: one holding
// a control character (a second newline left in a PIN file, a stray
// carriage return), or one whose length in bytes is outside the token's
// ulMinPinLen..ulMaxPinLen (when the token states a usable range).
func CheckPIN(pin string, info Info) error {
	if pin == "" {
		return fmt.Errorf("%w: empty pin", ErrNoPIN)
	}
	if strings.IndexFunc(pin, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: the pin holds a control character (a newline or carriage return left in a pin file?)", ErrPINInvalid)
	}
	min, max := info.MinPINLen, info.MaxPINLen
	if max > 0 && max >= min && (uint(len(pin)) < min || uint(len(pin)) > max) {
		return fmt.Errorf("%w: token %q takes pins of %d to %d characters", ErrPINInvalid, info.Label, min, max)
	}
	return nil
}
