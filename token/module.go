package token

import (
	"fmt"
	"os"
)

// ModuleCandidates are the paths probed, in order, when no module is given:
// SoftHSM2, OpenSC, p11-kit's proxy and YubiKey's ykcs11, in the places
// Debian, Ubuntu, Fedora and /usr/local installs put them.
var ModuleCandidates = []string{
	// SoftHSM2
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/lib/pkcs11/libsofthsm2.so",
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",
	// OpenSC
	"/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
	"/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
	"/usr/lib/opensc-pkcs11.so",
	"/usr/lib64/opensc-pkcs11.so",
	"/usr/local/lib/opensc-pkcs11.so",
	// p11-kit
	"/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so",
	"/usr/lib/aarch64-linux-gnu/p11-kit-proxy.so",
	"/usr/lib64/p11-kit-proxy.so",
	"/usr/lib/p11-kit-proxy.so",
	// YubiKey PIV
	"/usr/lib/x86_64-linux-gnu/libykcs11.so",
	"/usr/lib/aarch64-linux-gnu/libykcs11.so",
	"/usr/lib64/libykcs11.so",
	"/usr/local/lib/libykcs11.so",
}

// FindModule returns path when it names a readable file, or, when path is
// empty, the first of [ModuleCandidates] that exists. The error matches
// [ErrModuleNotFound].
func FindModule(path string) (string, error) {
	if path != "" {
		st, err := os.Stat(path)
		if err != nil || st.IsDir() {
			return "", fmt.Errorf("%w: %s", ErrModuleNotFound, path)
		}
		return path, nil
	}
	for _, p := range ModuleCandidates {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: none in the usual places (softhsm2, opensc, p11-kit, ykcs11)", ErrModuleNotFound)
}
