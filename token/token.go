package token

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// Config says which module and token to open and how to get the PIN.
type Config struct {
	// Module is the PKCS#11 module path; empty means [FindModule] probes
	// the usual places (or the module-path of a Token URI).
	Module string
	// Token selects the token: a label, or an RFC 7512 "pkcs11:" URI
	// (token=, serial=, module-path, pin-source are honoured). Empty
	// means the only initialized token, if there is exactly one.
	Token string
	// Serial selects the token by serial number.
	Serial string
	// PIN is the user PIN. If empty, the URI's pin-source is read; if
	// there is none, Prompt is called.
	PIN string
	// Prompt asks for the PIN (e.g. on /dev/tty without echo). It is
	// given the token label. Nil means no prompt: a missing PIN is
	// [ErrNoPIN].
	Prompt func(tokenLabel string) (string, error)
}

// TokenInfo describes a token as C_GetTokenInfo reports it.
type TokenInfo struct {
	Slot            uint
	Label           string
	Serial          string
	Manufacturer    string
	Model           string
	Initialized     bool
	LoginRequired   bool
	UserPINInit     bool
	Flags           uint
	SlotPresent     bool   // a token is present in the slot
	SlotDescription string // C_GetSlotInfo's description
}

func tokenInfo(slot uint, ti pkcs11.TokenInfo) TokenInfo {
	return TokenInfo{
		Slot:          slot,
		Label:         strings.TrimRight(ti.Label, " \x00"),
		Serial:        strings.TrimRight(ti.SerialNumber, " \x00"),
		Manufacturer:  strings.TrimRight(ti.ManufacturerID, " \x00"),
		Model:         strings.TrimRight(ti.Model, " \x00"),
		Initialized:   ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0,
		LoginRequired: ti.Flags&pkcs11.CKF_LOGIN_REQUIRED != 0,
		UserPINInit:   ti.Flags&pkcs11.CKF_USER_PIN_INITIALIZED != 0,
		Flags:         ti.Flags,
		SlotPresent:   true,
	}
}

// inUse records the modules an open Token holds. A second user of the
// same module in this process would finalize it under the first (crypto11
// does not share an initialized module with others), so it is refused.
var (
	inUseMu sync.Mutex
	inUse   = map[string]bool{}
)

// findAndClaim finds the module (see [FindModule]), says which at
// --verbose, and claims it for this process; the caller releases it.
func findAndClaim(module string) (string, error) {
	path, err := FindModule(module)
	if err != nil {
		return "", err
	}
	slog.Debug("pkcs11 module", "path", path, "probed", module == "")
	if err := claimModule(path); err != nil {
		return "", err
	}
	return path, nil
}

func claimModule(path string) error {
	inUseMu.Lock()
	defer inUseMu.Unlock()
	if inUse[path] {
		return fmt.Errorf("module %s is already in use by an open token in this process", path)
	}
	inUse[path] = true
	return nil
}

func releaseModule(path string) {
	inUseMu.Lock()
	defer inUseMu.Unlock()
	delete(inUse, path)
}

// loadModule dlopens a module and initializes it, tolerating
// CKR_CRYPTOKI_ALREADY_INITIALIZED.
func loadModule(path string) (*pkcs11.Ctx, error) {
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("%w: cannot load %s", ErrModuleNotFound, path)
	}
	if err := ctx.Initialize(); err != nil && !hasCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, p11err("C_Initialize", err)
	}
	return ctx, nil
}

// listTokens lists every slot; tokens are listed with their info.
func listTokens(ctx *pkcs11.Ctx) ([]TokenInfo, error) {
	slots, err := ctx.GetSlotList(false)
	if err != nil {
		return nil, p11err("C_GetSlotList", err)
	}
	var out []TokenInfo
	for _, s := range slots {
		si, err := ctx.GetSlotInfo(s)
		if err != nil {
			return nil, p11err("C_GetSlotInfo", err)
		}
		desc := strings.TrimRight(si.SlotDescription, " \x00")
		if si.Flags&pkcs11.CKF_TOKEN_PRESENT == 0 {
			out = append(out, TokenInfo{Slot: s, SlotDescription: desc})
			continue
		}
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			return nil, p11err("C_GetTokenInfo", err)
		}
		info := tokenInfo(s, ti)
		info.SlotDescription = desc
		out = append(out, info)
	}
	return out, nil
}

// ListTokens loads the module (see [FindModule]) and lists its slots and
// tokens. It does not log in. It returns the module path used.
func ListTokens(module string) (string, []TokenInfo, error) {
	path, err := findAndClaim(module)
	if err != nil {
		return "", nil, err
	}
	defer releaseModule(path)
	ctx, err := loadModule(path)
	if err != nil {
		return path, nil, err
	}
	defer ctx.Destroy()
	defer ctx.Finalize()
	toks, err := listTokens(ctx)
	return path, toks, err
}

// selectToken picks the token matching label or serial (both optional); with
// neither, the only initialized token.
func selectToken(toks []TokenInfo, label, serial string) (TokenInfo, error) {
	var match []TokenInfo
	var names []string
	for _, t := range toks {
		if !t.SlotPresent || !t.Initialized {
			continue
		}
		names = append(names, fmt.Sprintf("%q (serial %s)", t.Label, t.Serial))
		if label != "" && t.Label != label {
			continue
		}
		if serial != "" && t.Serial != serial {
			continue
		}
		match = append(match, t)
	}
	have := "none"
	if len(names) > 0 {
		have = strings.Join(names, ", ")
	}
	switch {
	case len(match) == 1:
		return match[0], nil
	case len(match) == 0 && label == "" && serial == "":
		return TokenInfo{}, fmt.Errorf("%w: no initialized token", ErrTokenNotFound)
	case len(match) == 0:
		sel := label
		if serial != "" {
			sel = "serial " + serial
		}
		return TokenInfo{}, fmt.Errorf("%w: %s (initialized tokens: %s)", ErrTokenNotFound, sel, have)
	case label == "" && serial == "":
		return TokenInfo{}, fmt.Errorf("%w: several tokens, choose one with --token: %s", ErrTokenNotFound, have)
	default:
		return TokenInfo{}, fmt.Errorf("%w: several tokens match, choose by serial: %s", ErrTokenNotFound, have)
	}
}

// openAttempts bounds the retries of Open when a token looks absent or
// gives CKR_GENERAL_ERROR for a moment, as SoftHSM2 does while another
// process logs in and rewrites its token file.
const openAttempts = 4

// transient reports whether an error opening a token may go away on its
// own. A refused PIN is never transient.
func transient(err error) bool {
	if errors.Is(err, ErrLoginFailed) {
		return false
	}
	return errors.Is(err, ErrTokenNotFound) ||
		hasCode(err, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_DEVICE_ERROR)
}

// maxSessions is the size of the session pool lent by withSession.
const maxSessions = 4

// Token is an open, logged-in PKCS#11 token. It owns the module: crypto11
// (key generation, lookup, signing, OAEP decryption) and raw miekg/pkcs11
// calls (unwrap, derive, attributes, mechanisms) share one initialized
// module and one login. All methods are safe for concurrent use; Close
// must be called once when done.
//
// # Binding order
//
// crypto11 calls C_Initialize itself and does not tolerate
// CKR_CRYPTOKI_ALREADY_INITIALIZED, and its Close calls C_Finalize. So
// Open (1) probes with its own context to resolve the selector to a
// serial and finalizes it (skipped when the token is named by label or
// serial: crypto11 finds it, and a duplicate label is refused in step 3),
// (2) lets crypto11 initialize and log in once,
// (3) initializes its own context again, tolerating
// CKR_CRYPTOKI_ALREADY_INITIALIZED, and opens sessions on the same slot:
// PKCS#11 login state is per application, so they are logged in.
type Token struct {
	module string
	info   TokenInfo
	ctx    *pkcs11.Ctx
	c11    *crypto11.Context

	mu       sync.Mutex
	closed   bool
	open     []pkcs11.SessionHandle // every session we opened
	idle     chan pkcs11.SessionHandle
	slots    chan struct{}                 // capacity maxSessions: one token per open session
	tainted  map[pkcs11.SessionHandle]bool // sessions to close, not reuse
	mechMu   sync.Mutex
	mechs    map[uint]*pkcs11.MechanismInfo
	deriveVL int // ECDH template: 0 unknown, 1 with CKA_VALUE_LEN, 2 without
}

// Open loads the module, selects the token, logs in and returns it.
func Open(cfg Config) (*Token, error) {
	t, err := open(cfg, true)
	if errors.Is(err, errProbe) {
		// Not found by name alone: the probe finds out why, and lists
		// the tokens there are.
		return open(cfg, false)
	}
	return t, err
}

// resolveSelector applies a pkcs11: URI in cfg.Token, for [Open] and the
// other entry points: the label, serial and module-path it names.
func resolveSelector(cfg Config) (module, label, serial string, uri *URI, err error) {
	module, label, serial = cfg.Module, cfg.Token, cfg.Serial
	if !strings.HasPrefix(strings.ToLower(cfg.Token), "pkcs11:") {
		return module, label, serial, nil, nil
	}
	uri, err = ParseURI(cfg.Token)
	if err != nil {
		return "", "", "", nil, err
	}
	label = uri.TokenLabel()
	if s := uri.Serial(); s != "" {
		if serial != "" && serial != s {
			return "", "", "", nil, fmt.Errorf("%w: serial differs from the one given", ErrBadURI)
		}
		serial = s
	}
	if mp := uri.ModulePath(); mp != "" {
		if module != "" && module != mp {
			return "", "", "", nil, fmt.Errorf("%w: module-path %s differs from the module given (%s)", ErrBadURI, mp, module)
		}
		module = mp
	}
	return module, label, serial, uri, nil
}

// errProbe sends Open from its fast path back to the probe.
var errProbe = errors.New("token: probe needed")

// open opens the token. With named, when the token is named by label or
// serial, it skips the probe (a whole C_Initialize/C_Finalize cycle, which
// on SoftHSM2 reads every token file) and lets crypto11 find the token; a
// duplicate label is still refused afterwards.
func open(cfg Config, named bool) (_ *Token, err error) {
	module, label, serial, uri, err := resolveSelector(cfg)
	if err != nil {
		return nil, err
	}
	pin := cfg.PIN
	path, err := findAndClaim(module)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			releaseModule(path)
		}
	}()

	named = named && (label != "" || serial != "")
	var ctx *pkcs11.Ctx
	if named {
		if ctx = pkcs11.New(path); ctx == nil {
			return nil, fmt.Errorf("%w: cannot load %s", ErrModuleNotFound, path)
		}
	} else if ctx, err = loadModule(path); err != nil {
		return nil, err
	}
	// (1) Probe: resolve the selector to a serial.
	wantLabel, wantSerial := label, serial
	for attempt := 1; !named; attempt++ {
		if attempt > 1 {
			if ierr := ctx.Initialize(); ierr != nil && !hasCode(ierr, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
				err = p11err("C_Initialize", ierr)
				break
			}
		}
		var toks []TokenInfo
		toks, err = listTokens(ctx)
		if err == nil {
			var sel TokenInfo
			sel, err = selectToken(toks, wantLabel, wantSerial)
			serial, label = sel.Serial, sel.Label
		}
		if ferr := ctx.Finalize(); err == nil && ferr != nil {
			err = p11err("C_Finalize", ferr)
		}
		if err == nil || !transient(err) || attempt == openAttempts {
			break
		}
		slog.Debug("token probe failed, retrying", "attempt", attempt, "err", err)
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
	}
	if err != nil {
		ctx.Destroy()
		return nil, err
	}
	if serial == "" && !named {
		ctx.Destroy()
		return nil, fmt.Errorf("%w: token %q has no serial number to select it by", ErrTokenNotFound, label)
	}
	slog.Debug("token selected", "label", label, "serial", serial, "probed", !named)

	// PIN: explicit, then the URI's pin-source, then the prompt.
	if pin == "" && uri != nil {
		p, ok, err := uri.PIN()
		if err != nil {
			ctx.Destroy()
			return nil, err
		}
		if ok {
			pin = p
		}
	}
	if pin == "" && cfg.Prompt != nil {
		p, err := cfg.Prompt(label)
		if err != nil {
			ctx.Destroy()
			return nil, err
		}
		pin = p
	}
	if pin == "" {
		ctx.Destroy()
		return nil, fmt.Errorf("%w: use --pin-file, TOKENSEAL_PIN, a pin-source in the uri, or a terminal", ErrNoPIN)
	}

	// (2) crypto11 initializes the module and logs in once.
	var c11 *crypto11.Context
	for attempt := 1; ; attempt++ {
		c11cfg := &crypto11.Config{Path: path, TokenSerial: serial, Pin: pin, MaxSessions: maxSessions + 1}
		if serial == "" {
			c11cfg.TokenSerial, c11cfg.TokenLabel = "", label
		}
		c11, err = crypto11.Configure(c11cfg)
		if err == nil {
			break
		}
		err = loginError(ctx, label, serial, err)
		if named && errors.Is(err, ErrTokenNotFound) {
			pin = ""
			ctx.Destroy()
			return nil, errProbe
		}
		// A refused PIN is never retried: each try counts against it.
		if errors.Is(err, ErrLoginFailed) || !transient(err) || attempt == openAttempts {
			pin = ""
			ctx.Destroy()
			return nil, err
		}
		slog.Debug("opening token failed, retrying", "attempt", attempt, "err", err)
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
	}
	pin = ""

	// (3) Our context on the same initialized module.
	if err := ctx.Initialize(); err != nil && !hasCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		c11.Close()
		ctx.Destroy()
		return nil, p11err("C_Initialize", err)
	}
	toks, err := listTokens(ctx)
	var info TokenInfo
	if err == nil {
		if serial != "" {
			info, err = selectToken(toks, "", serial)
		} else {
			// Named by label: crypto11 took the first token of that
			// label; refuse if there are several.
			info, err = selectToken(toks, label, "")
		}
	}
	if err != nil {
		c11.Close()
		ctx.Destroy()
		return nil, err
	}
	t := &Token{
		module: path,
		info:   info,
		ctx:    ctx,
		c11:    c11,
		idle:   make(chan pkcs11.SessionHandle, maxSessions),
		slots:  make(chan struct{}, maxSessions),
		mechs:  map[uint]*pkcs11.MechanismInfo{},
	}
	// Check the login state is shared, as the binding order relies on.
	err = t.withSession(func(sh pkcs11.SessionHandle) error {
		si, err := t.ctx.GetSessionInfo(sh)
		if err != nil {
			return p11err("C_GetSessionInfo", err)
		}
		if si.State != pkcs11.CKS_RW_USER_FUNCTIONS && si.State != pkcs11.CKS_RO_USER_FUNCTIONS {
			return fmt.Errorf("%w: session not logged in after crypto11 login (state %d)", ErrLoginFailed, si.State)
		}
		return nil
	})
	if err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// loginError explains a failed crypto11.Configure: a C_Login refusal
// becomes ErrLoginFailed with the token's PIN flags (re-read after the
// failure); the PIN itself is never part of the message.
func loginError(ctx *pkcs11.Ctx, label, serial string, err error) error {
	code, ok := codeOf(err)
	if !ok {
		if strings.Contains(err.Error(), "could not find PKCS#11 token") {
			if serial == "" {
				return fmt.Errorf("%w: no token labelled %q", ErrTokenNotFound, label)
			}
			return fmt.Errorf("%w: serial %s (it went away while opening)", ErrTokenNotFound, serial)
		}
		return fmt.Errorf("%w: opening token: %v", ErrToken, err)
	}
	switch code {
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LOCKED, pkcs11.CKR_PIN_INVALID,
		pkcs11.CKR_PIN_LEN_RANGE, pkcs11.CKR_PIN_EXPIRED:
	default:
		return p11err("C_Login", err)
	}
	var flags []string
	// crypto11 finalized the module on failure: look again with ours.
	if ierr := ctx.Initialize(); ierr == nil || hasCode(ierr, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		if toks, lerr := listTokens(ctx); lerr == nil {
			for _, t := range toks {
				if t.SlotPresent && (serial != "" && t.Serial == serial || serial == "" && t.Label == label) {
					flags = pinFlags(t.Flags)
				}
			}
		}
		_ = ctx.Finalize()
	}
	msg := fmt.Errorf("%w: %w", ErrLoginFailed, &Error{Op: "C_Login", Code: code})
	if len(flags) > 0 {
		return fmt.Errorf("%w (token flags: %s)", msg, strings.Join(flags, ", "))
	}
	return msg
}

func pinFlags(f uint) []string {
	var out []string
	if f&pkcs11.CKF_USER_PIN_COUNT_LOW != 0 {
		out = append(out, "CKF_USER_PIN_COUNT_LOW")
	}
	if f&pkcs11.CKF_USER_PIN_FINAL_TRY != 0 {
		out = append(out, "CKF_USER_PIN_FINAL_TRY")
	}
	if f&pkcs11.CKF_USER_PIN_LOCKED != 0 {
		out = append(out, "CKF_USER_PIN_LOCKED")
	}
	return out
}

// Module returns the path of the loaded module.
func (t *Token) Module() string { return t.module }

// Info returns the token's description as of Open.
func (t *Token) Info() TokenInfo { return t.info }

// withSession lends f a logged-in session from a small pool, opening one
// when none is idle and fewer than maxSessions exist, else waiting. A
// session whose handle went bad is dropped rather than returned.
func (t *Token) withSession(f func(pkcs11.SessionHandle) error) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	t.mu.Unlock()
	var sh pkcs11.SessionHandle
	select {
	case sh = <-t.idle:
	default:
		select {
		case sh = <-t.idle:
		case t.slots <- struct{}{}:
			s, err := t.ctx.OpenSession(t.info.Slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
			if err != nil {
				<-t.slots
				return p11err("C_OpenSession", err)
			}
			t.mu.Lock()
			t.open = append(t.open, s)
			t.mu.Unlock()
			sh = s
		}
	}
	err := f(sh)
	t.mu.Lock()
	tainted := t.tainted[sh]
	delete(t.tainted, sh)
	t.mu.Unlock()
	if tainted {
		// It may still hold a secret session object: closing the session
		// destroys every object in it.
		_ = t.ctx.CloseSession(sh)
	}
	if tainted || hasCode(err, pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED) {
		t.mu.Lock()
		for i, s := range t.open {
			if s == sh {
				t.open = append(t.open[:i], t.open[i+1:]...)
				break
			}
		}
		t.mu.Unlock()
		<-t.slots
		return err
	}
	t.idle <- sh
	return err
}

// destroySecret destroys a session object that holds key material. If the
// token refuses, the session is closed instead of going back to the pool
// (closing a session destroys its objects).
func (t *Token) destroySecret(sh pkcs11.SessionHandle, obj pkcs11.ObjectHandle) {
	if err := t.ctx.DestroyObject(sh, obj); err != nil {
		slog.Warn("destroying a session key failed; closing its session", "err", p11err("C_DestroyObject", err))
		t.mu.Lock()
		if t.tainted == nil {
			t.tainted = map[pkcs11.SessionHandle]bool{}
		}
		t.tainted[sh] = true
		t.mu.Unlock()
	}
}

// Close closes our sessions, then crypto11 (which finalizes the module),
// then unloads our handle on the module.
func (t *Token) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	open := t.open
	t.open = nil
	t.mu.Unlock()
	var errs []error
	for _, s := range open {
		if err := t.ctx.CloseSession(s); err != nil {
			errs = append(errs, p11err("C_CloseSession", err))
		}
	}
	if err := t.c11.Close(); err != nil {
		errs = append(errs, p11err("C_Finalize", err))
	}
	t.ctx.Destroy()
	releaseModule(t.module)
	return errors.Join(errs...)
}

// GenerateRandom returns n random bytes from the token (C_GenerateRandom).
func (t *Token) GenerateRandom(n int) ([]byte, error) {
	if n <= 0 || n > 1<<16 {
		return nil, fmt.Errorf("generate random: bad length %d", n)
	}
	var out []byte
	err := t.withSession(func(sh pkcs11.SessionHandle) error {
		b, err := t.ctx.GenerateRandom(sh, n)
		if err != nil {
			return p11err("C_GenerateRandom", err)
		}
		if len(b) != n {
			return fmt.Errorf("C_GenerateRandom: got %d bytes, want %d", len(b), n)
		}
		out = b
		return nil
	})
	return out, err
}
