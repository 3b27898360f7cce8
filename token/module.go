package token

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// ModuleCandidates are the paths probed, in order, when no module is given:
// SoftHSM2, OpenSC, p11-kit's proxy, YubiKey's ykcs11, tpm2-pkcs11 and
// opencryptoki, in the places Debian, Ubuntu, Fedora and /usr/local
// installs put them.
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
	// tpm2-pkcs11
	"/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
	"/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
	"/usr/lib64/pkcs11/libtpm2_pkcs11.so",
	"/usr/local/lib/pkcs11/libtpm2_pkcs11.so",
	// opencryptoki
	"/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so",
	"/usr/lib/aarch64-linux-gnu/pkcs11/libopencryptoki.so",
	"/usr/lib64/pkcs11/libopencryptoki.so",
	"/usr/lib/opencryptoki/libopencryptoki.so",
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
		if !strings.Contains(path, "/") {
			// The file checked is the file loaded: dlopen would look a
			// bare name up in the library path instead.
			path = "./" + path
		}
		return path, nil
	}
	for _, p := range ModuleCandidates {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: none in the usual places (softhsm2, opensc, p11-kit, ykcs11, tpm2-pkcs11, opencryptoki)", ErrModuleNotFound)
}

// inUse records the modules initialized in this process. A second user
// of the same module would share its C_Initialize and have it finalized
// under it, so it is refused. loaded keeps every module ever loaded: a
// module is never unloaded (dlclose), since some cannot be loaded again
// in the same process (tpm2-pkcs11's D-Bus TCTI crashes in C_Initialize
// after a dlclose and a second dlopen).
var (
	inUseMu sync.Mutex
	inUse   = map[string]bool{}
	loaded  = map[string]*pkcs11.Ctx{}
)

// module is a loaded, initialized PKCS#11 module claimed by this process.
type module struct {
	path string
	ctx  *pkcs11.Ctx
}

// loadModule finds the module (see [FindModule]), refuses one others
// could replace ([CheckNotWritable]: it would get the PIN), claims it,
// dlopens it and calls C_Initialize. The caller calls close.
func loadModule(given string) (*module, error) {
	path, err := FindModule(given)
	if err != nil {
		return nil, err
	}
	slog.Debug("pkcs11 module", "path", path, "probed", given == "")
	if err := CheckNotWritable("pkcs11 module", path); err != nil {
		return nil, err
	}
	inUseMu.Lock()
	defer inUseMu.Unlock()
	if inUse[path] {
		return nil, fmt.Errorf("module %s is already in use by an open token in this process", path)
	}
	quietModule()
	ctx := loaded[path]
	if ctx == nil {
		if ctx = pkcs11.New(path); ctx == nil {
			return nil, fmt.Errorf("%w: cannot load %s", ErrModuleNotFound, path)
		}
		loaded[path] = ctx
	}
	if err := ctx.Initialize(); err != nil && !hasCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return nil, p11err("C_Initialize", err)
	}
	inUse[path] = true
	return &module{path: path, ctx: ctx}, nil
}

// reinitialize finalizes and initializes the module again, which makes
// modules such as SoftHSM2 read their tokens afresh.
func (m *module) reinitialize() error {
	if err := m.ctx.Finalize(); err != nil {
		return p11err("C_Finalize", err)
	}
	if err := m.ctx.Initialize(); err != nil {
		return p11err("C_Initialize", err)
	}
	return nil
}

// close calls C_Finalize, which closes every session, logging out.
func (m *module) close() error {
	err := m.ctx.Finalize()
	inUseMu.Lock()
	delete(inUse, m.path)
	inUseMu.Unlock()
	return p11err("C_Finalize", err)
}

// quietModule silences the TPM software stack's own WARNING and ERROR
// lines on stderr (TSS2_LOG), unless the user set it or asked for Debug
// logs: they are the module's chatter about refusals tokenseal expects
// (tpm2-pkcs11's own "ERROR:" lines cannot be turned off).
func quietModule() {
	if _, set := os.LookupEnv("TSS2_LOG"); set || slog.Default().Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	os.Setenv("TSS2_LOG", "all+none")
}
