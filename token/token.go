package token

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/miekg/pkcs11"
)

// maxSessions is the size of the session pool lent by withSession.
const maxSessions = 4

// Token is an open, logged-in PKCS#11 token. It owns the module: one
// C_Initialize, one login, held by a session that stays open until Close
// (PKCS#11 logs the user out when an application's last session closes).
// Other sessions come from a small pool. All methods are safe for
// concurrent use; Close must be called once when done.
type Token struct {
	m       *module
	info    Info
	login   pkcs11.SessionHandle
	loginMu sync.Mutex // for withLoginSession

	mu     sync.Mutex
	closed bool
	idle   chan pkcs11.SessionHandle
	slots  chan struct{}                 // capacity maxSessions: one token per open session
	spoilt map[pkcs11.SessionHandle]bool // sessions to close after use, not reuse

	mechMu   sync.Mutex
	mechList []uint // C_GetMechanismList, once
	mechs    map[uint]*pkcs11.MechanismInfo

	choiceMu sync.Mutex
	choices  map[choiceKey]choice // per-key choices made once (paths, checks)
}

type choiceKey struct {
	obj  pkcs11.ObjectHandle
	what string
}

type choice struct {
	v   string
	err error
}

// cached returns the choice what for the key whose private object is obj,
// computing it with f the first time. A choice, or a refusal for want of
// a mechanism ([ErrMechanism]) or a mismatch ([ErrKeyMismatch]), is kept
// for the life of the Token; other failures (the token went away) are
// not.
func (t *Token) cached(obj pkcs11.ObjectHandle, what string, f func() (string, error)) (string, error) {
	key := choiceKey{obj, what}
	t.choiceMu.Lock()
	c, ok := t.choices[key]
	t.choiceMu.Unlock()
	if ok {
		return c.v, c.err
	}
	// Not under the lock: f may need other choices. Two callers at once
	// may both compute; the first result stored wins.
	v, err := f()
	if err != nil && !errors.Is(err, ErrMechanism) && !errors.Is(err, ErrKeyMismatch) {
		return v, err
	}
	t.choiceMu.Lock()
	defer t.choiceMu.Unlock()
	if c, ok := t.choices[key]; ok {
		return c.v, c.err
	}
	if t.choices == nil {
		t.choices = map[choiceKey]choice{}
	}
	t.choices[key] = choice{v, err}
	return v, err
}

// chosen reports whether a choice (or a lasting failure to make one) is
// cached for obj and what.
func (t *Token) chosen(obj pkcs11.ObjectHandle, what string) bool {
	t.choiceMu.Lock()
	defer t.choiceMu.Unlock()
	_, ok := t.choices[choiceKey{obj, what}]
	return ok
}

// bind makes the Token of a logged-in session.
func bind(m *module, info Info, login pkcs11.SessionHandle) *Token {
	return &Token{
		m:     m,
		info:  info,
		login: login,
		idle:  make(chan pkcs11.SessionHandle, maxSessions),
		slots: make(chan struct{}, maxSessions),
		mechs: map[uint]*pkcs11.MechanismInfo{},
	}
}

// Module returns the path of the loaded module.
func (t *Token) Module() string { return t.m.path }

// Info returns the token's description as of Open.
func (t *Token) Info() Info { return t.info }

func (t *Token) ctx() *pkcs11.Ctx { return t.m.ctx }

// withSession lends f a logged-in session from a small pool, opening one
// when none is idle and fewer than maxSessions exist, else waiting. When
// f fails the session is closed rather than returned: a failed operation
// may leave it unusable (tpm2-pkcs11 1.9.0 keeps a failed C_Decrypt
// active, so every later C_DecryptInit on that session fails), and
// closing it destroys any session object f left behind.
func (t *Token) withSession(f func(pkcs11.SessionHandle) error) error {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return ErrClosed
	}
	var sh pkcs11.SessionHandle
	select {
	case sh = <-t.idle:
	default:
		select {
		case sh = <-t.idle:
		case t.slots <- struct{}{}:
			s, err := t.ctx().OpenSession(t.info.Slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
			if err != nil {
				<-t.slots
				return p11err("C_OpenSession", err)
			}
			sh = s
		}
	}
	err := f(sh)
	t.mu.Lock()
	spoilt := t.spoilt[sh]
	delete(t.spoilt, sh)
	t.mu.Unlock()
	if err != nil || spoilt {
		_ = t.ctx().CloseSession(sh)
		<-t.slots
		return err
	}
	t.idle <- sh
	return nil
}

// withLoginSession lends f the session that holds the login, one caller
// at a time. It is never closed before the Token is, so session objects
// made in it (the doctor's temporary key pairs) live as long as the Token.
func (t *Token) withLoginSession(f func(pkcs11.SessionHandle) error) error {
	t.loginMu.Lock()
	defer t.loginMu.Unlock()
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return f(t.login)
}

// destroySecret destroys a session object that holds key material. If
// the token refuses, the session is closed after use instead of going
// back to the pool: closing a session destroys its objects.
func (t *Token) destroySecret(sh pkcs11.SessionHandle, obj pkcs11.ObjectHandle) {
	if err := t.ctx().DestroyObject(sh, obj); err != nil {
		slog.Warn("destroying a session key failed; closing its session", "err", p11err("C_DestroyObject", err))
		t.mu.Lock()
		if t.spoilt == nil {
			t.spoilt = map[pkcs11.SessionHandle]bool{}
		}
		t.spoilt[sh] = true
		t.mu.Unlock()
	}
}

// destroy destroys an object, naming the failure.
func (t *Token) destroy(sh pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
	return p11err("C_DestroyObject", t.ctx().DestroyObject(sh, h))
}

// Close logs out and finalizes the module (which closes every session).
func (t *Token) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	var errs []error
	if err := t.ctx().Logout(t.login); err != nil && !hasCode(err, pkcs11.CKR_USER_NOT_LOGGED_IN) {
		errs = append(errs, p11err("C_Logout", err))
	}
	if err := t.m.close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// GenerateRandom returns n random bytes from the token (C_GenerateRandom).
func (t *Token) GenerateRandom(n int) ([]byte, error) {
	if n <= 0 || n > 1<<16 {
		return nil, fmt.Errorf("generate random: bad length %d", n)
	}
	var out []byte
	err := t.withSession(func(sh pkcs11.SessionHandle) error {
		b, err := t.ctx().GenerateRandom(sh, n)
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
