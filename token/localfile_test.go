package token

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// asRoot runs the test only as root (CI runs as root): other owners need
// chown.
func asRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root: this test needs chown")
		}
		t.Skip("needs root for chown")
	}
}

// TestPINFileOwners: as ssh with a private key, only a PIN file of the
// user's own is held to mode 0600; one root or another user owns (a
// systemd credential, a root:service 0640 file) is its owner's business.
func TestPINFileOwners(t *testing.T) {
	asRoot(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "pin")
	if err := os.WriteFile(p, []byte("1234\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	// root's own (the user's own here): refused.
	if _, err := ReadPINFile(p); !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Fatalf("own 0640 pin file: %v", err)
	}
	// Another user's: read.
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if pin, err := ReadPINFile(p); err != nil || pin != "1234" {
		t.Fatalf("another user's 0640 pin file: %q, %v", pin, err)
	}
}

// TestModuleOwners: a module another user owns, or in a directory another
// user owns, is refused; root's is loaded.
func TestModuleOwners(t *testing.T) {
	asRoot(t)
	dir := t.TempDir()
	sub := filepath.Join(dir, "lib")
	mod := filepath.Join(sub, "module.so")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mod, []byte("not a module"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckNotWritable("pkcs11 module", mod); err != nil {
		t.Fatalf("root's module: %v", err)
	}
	os.Chown(mod, 65534, 65534)
	if err := CheckNotWritable("pkcs11 module", mod); !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Fatalf("another user's module: %v", err)
	}
	os.Chown(mod, 0, 0)
	os.Chown(sub, 65534, 65534)
	if err := CheckNotWritable("pkcs11 module", mod); !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), "directory of pkcs11 module "+sub+" belongs to uid 65534") {
		t.Fatalf("module in another user's directory: %v", err)
	}
}
