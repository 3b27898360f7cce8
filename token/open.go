package token

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/miekg/pkcs11"
)

// Config says which module and token to open and how to get the PIN.
type Config struct {
	// Module is the PKCS#11 module path; empty means [FindModule] probes
	// the usual places (or the module-path of a Token URI).
	Module string
	// Token selects the token: a label, or an RFC 7512 "pkcs11:" URI
	// (token=, serial=, slot-id=, module-path, pin-source are honoured).
	Token string
	// Serial selects the token by serial number.
	Serial string
	// Slot selects the token by slot ID (as [ListTokens] shows it); nil
	// means any slot. Label, serial and slot may be combined: the token
	// must match all that are given.
	Slot *uint
	// PIN is the user PIN. If empty, the URI's pin-source is read; if
	// there is none, Prompt is called.
	PIN string
	// Prompt asks for the PIN (e.g. on /dev/tty without echo). It is
	// given the token label. Nil means no prompt: a missing PIN is
	// [ErrNoPIN].
	Prompt func(tokenLabel string) (string, error)
}

// Open loads the module, selects the token, logs in and returns it. It
// goes in four steps, and nothing reaches the token before the step
// that needs it:
//
//  1. probe: list the slots and resolve the label, serial, slot or URI to
//     exactly one initialized token; none or several is an error that
//     lists the tokens there are ([ErrTokenNotFound],
//     [ErrTokenAmbiguous]), before any PIN is asked for;
//  2. PIN: from cfg.PIN, the URI's pin-source or cfg.Prompt, checked by
//     [CheckPIN] against the chosen token's limits (a PIN that cannot be
//     right is never sent), and refused when the token reports its user
//     PIN locked;
//  3. login: C_Login on a session of that slot ([ErrLoginFailed] names
//     the CKR_ value and the token's PIN flags; a refused PIN is never
//     tried again);
//  4. bind: the [*Token] owns the module and keeps the login session
//     open until [Token.Close].
//
// On any failure the module is finalized and released, in one place.
func Open(cfg Config) (_ *Token, err error) {
	sel, err := resolveSelector(cfg)
	if err != nil {
		return nil, err
	}
	m, err := loadModule(sel.module)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	info, err := m.find(sel)
	if err != nil {
		return nil, err
	}
	slog.Debug("token selected", "slot", info.Slot, "label", info.Label, "serial", info.Serial)
	pin, err := obtainPIN(cfg, sel.uri, info)
	if err != nil {
		return nil, err
	}
	sh, err := m.login(info, pin)
	if err != nil {
		return nil, err
	}
	return bind(m, info, sh), nil
}

// obtainPIN takes the PIN from cfg, the URI's pin-source or the prompt,
// and checks it against the token before it may be sent.
func obtainPIN(cfg Config, uri *URI, info Info) (string, error) {
	if info.Flags&pkcs11.CKF_USER_PIN_LOCKED != 0 {
		return "", fmt.Errorf("%w: the user pin of token %q is locked (CKF_USER_PIN_LOCKED)", ErrLoginFailed, info.Label)
	}
	pin := cfg.PIN
	if pin == "" && uri != nil {
		p, _, err := uri.PIN()
		if err != nil {
			return "", err
		}
		pin = p
	}
	if pin == "" && cfg.Prompt != nil {
		p, err := cfg.Prompt(info.Label)
		if err != nil {
			return "", err
		}
		pin = p
	}
	if pin == "" {
		return "", ErrNoPIN
	}
	if err := CheckPIN(pin, info); err != nil {
		return "", err
	}
	return pin, nil
}

// login opens a read/write session on the token's slot and logs the user
// in. Failures that may be transient (the token busy for a moment) are
// tried again a few times; a refused PIN never is.
func (m *module) login(info Info, pin string) (pkcs11.SessionHandle, error) {
	for attempt := 1; ; attempt++ {
		sh, err := m.ctx.OpenSession(info.Slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			err = p11err("C_OpenSession", err)
		} else {
			err = m.ctx.Login(sh, pkcs11.CKU_USER, pin)
			if err == nil || hasCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
				return sh, nil
			}
			m.ctx.CloseSession(sh)
			err = m.pinRefused(info.Slot, "C_Login", err)
		}
		if errors.Is(err, ErrLoginFailed) || !transient(err) || attempt == probeAttempts {
			return 0, err
		}
		slog.Debug("login failed, trying again", "attempt", attempt, "err", err)
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
	}
}

// pinCodes are the CKR_ values of a refused PIN.
var pinCodes = []uint{pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LOCKED, pkcs11.CKR_PIN_INVALID,
	pkcs11.CKR_PIN_LEN_RANGE, pkcs11.CKR_PIN_EXPIRED}

// pinRefused explains a refused PIN as [ErrLoginFailed] with the CKR_
// value and the token's PIN flags read after the failure ("none" when it
// reports none). Other failures stay plain [*Error] values. The PIN is
// never part of the message.
func (m *module) pinRefused(slot uint, op string, err error) error {
	code, ok := codeOf(err)
	if !ok || !hasCode(err, pinCodes...) {
		return p11err(op, err)
	}
	flags := "unknown"
	if ti, terr := m.ctx.GetTokenInfo(slot); terr == nil {
		flags = "none"
		if f := pinFlags(ti.Flags); len(f) > 0 {
			flags = strings.Join(f, ", ")
		}
	}
	return fmt.Errorf("%w: %w (token pin flags: %s)", ErrLoginFailed, &Error{Op: op, Code: code}, flags)
}
