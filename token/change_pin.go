package token

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/miekg/pkcs11"
)

// ErrPINInvalid: the token (or a check against its PIN length limits)
// refused a new PIN.
var ErrPINInvalid error = &tokenSentinel{"new pin refused"}

// ChangePIN changes the user PIN of the token chosen by cfg with C_SetPIN.
//
// The old PIN comes from cfg as for [Open]: cfg.PIN, else the URI's
// pin-source, else cfg.Prompt. It is checked by logging in (C_Login) on a
// read/write session; a refusal is [ErrLoginFailed] naming the CKR_ value
// and the token's CKF_USER_PIN_* flags as read after the failure. Only
// then is newPIN called (so a prompt for the new PIN comes after the old
// one was accepted); its result must differ from the old PIN and fit the
// token's ulMinPinLen..ulMaxPinLen, else [ErrPINInvalid]. ChangePIN loads
// the module itself and does not use crypto11; it returns the token's
// description as of the change.
func ChangePIN(cfg Config, newPIN func() (string, error)) (TokenInfo, error) {
	module, label, serial, uri, err := resolveSelector(cfg)
	if err != nil {
		return TokenInfo{}, err
	}
	path, err := findAndClaim(module)
	if err != nil {
		return TokenInfo{}, err
	}
	defer releaseModule(path)
	ctx, err := loadModule(path)
	if err != nil {
		return TokenInfo{}, err
	}
	defer ctx.Destroy()
	defer ctx.Finalize()
	toks, err := listTokens(ctx)
	if err != nil {
		return TokenInfo{}, err
	}
	info, err := selectToken(toks, label, serial)
	if err != nil {
		return TokenInfo{}, err
	}
	slog.Debug("token selected", "label", info.Label, "serial", info.Serial)

	old := cfg.PIN
	if old == "" && uri != nil {
		p, ok, err := uri.PIN()
		if err != nil {
			return TokenInfo{}, err
		}
		if ok {
			old = p
		}
	}
	if old == "" && cfg.Prompt != nil {
		if old, err = cfg.Prompt(info.Label); err != nil {
			return TokenInfo{}, err
		}
	}
	if old == "" {
		return TokenInfo{}, fmt.Errorf("%w: no current pin: use --pin-file, TOKENSEAL_PIN, a pin-source in the uri, or a terminal", ErrNoPIN)
	}

	sh, err := ctx.OpenSession(info.Slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return TokenInfo{}, p11err("C_OpenSession", err)
	}
	defer ctx.CloseSession(sh)
	if err := ctx.Login(sh, pkcs11.CKU_USER, old); err != nil {
		return TokenInfo{}, pinRefused(ctx, info.Slot, "C_Login", err)
	}
	defer ctx.Logout(sh)

	nw, err := newPIN()
	if err != nil {
		return TokenInfo{}, err
	}
	raw, err := ctx.GetTokenInfo(info.Slot)
	if err != nil {
		return TokenInfo{}, p11err("C_GetTokenInfo", err)
	}
	switch {
	case nw == "":
		return TokenInfo{}, fmt.Errorf("%w: empty new pin", ErrNoPIN)
	case nw == old:
		return TokenInfo{}, fmt.Errorf("%w: the new pin is the same as the current one", ErrPINInvalid)
	case raw.MaxPinLen > 0 && raw.MaxPinLen >= raw.MinPinLen && (uint(len(nw)) < raw.MinPinLen || uint(len(nw)) > raw.MaxPinLen):
		return TokenInfo{}, fmt.Errorf("%w: token %q takes pins of %d to %d characters", ErrPINInvalid, info.Label, raw.MinPinLen, raw.MaxPinLen)
	}
	if err := ctx.SetPIN(sh, old, nw); err != nil {
		if hasCode(err, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE) {
			return TokenInfo{}, fmt.Errorf("%w: %w", ErrPINInvalid, p11err("C_SetPIN", err))
		}
		return TokenInfo{}, pinRefused(ctx, info.Slot, "C_SetPIN", err)
	}
	slog.Debug("user pin changed", "label", info.Label, "serial", info.Serial)
	raw, err = ctx.GetTokenInfo(info.Slot)
	if err != nil {
		return TokenInfo{}, p11err("C_GetTokenInfo", err)
	}
	out := tokenInfo(info.Slot, raw)
	out.SlotDescription = info.SlotDescription
	return out, nil
}

// pinRefused explains a refused PIN as [ErrLoginFailed] with the CKR_
// value and the token's PIN flags read after the failure ("none" when it
// reports none). Other failures stay plain [*Error] values.
func pinRefused(ctx *pkcs11.Ctx, slot uint, op string, err error) error {
	code, ok := codeOf(err)
	if !ok {
		return p11err(op, err)
	}
	switch code {
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LOCKED, pkcs11.CKR_PIN_EXPIRED,
		pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE:
	default:
		return p11err(op, err)
	}
	flags := "unknown"
	if ti, terr := ctx.GetTokenInfo(slot); terr == nil {
		flags = "none"
		if f := pinFlags(ti.Flags); len(f) > 0 {
			flags = strings.Join(f, ", ")
		}
	}
	return fmt.Errorf("%w: %w (token pin flags: %s)", ErrLoginFailed, &Error{Op: op, Code: code}, flags)
}
