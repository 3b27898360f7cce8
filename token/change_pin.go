package token

import (
	"fmt"
	"log/slog"

	"github.com/miekg/pkcs11"
)

// ChangePIN changes the user PIN of the token chosen by cfg with C_SetPIN.
//
// The token is found and the old PIN obtained and checked as [Open] does
// (cfg.PIN, else the URI's pin-source, else cfg.Prompt; no PIN is sent
// before the token is certain). It is checked by logging in (C_Login) on
// a read/write session; a refusal is [ErrLoginFailed] naming the CKR_
// value and the token's CKF_USER_PIN_* flags as read after the failure.
// Only then is newPIN called (so a prompt for the new PIN comes after the
// old one was accepted); its result must differ from the old PIN and pass
// [CheckPIN], else [ErrPINInvalid]. It returns the token's description as
// of the change.
func ChangePIN(cfg Config, newPIN func() (string, error)) (Info, error) {
	sel, err := resolveSelector(cfg)
	if err != nil {
		return Info{}, err
	}
	m, err := loadModule(sel.module)
	if err != nil {
		return Info{}, err
	}
	defer m.close()
	info, err := m.find(sel)
	if err != nil {
		return Info{}, err
	}
	old, err := obtainPIN(cfg, sel.uri, info)
	if err != nil {
		return Info{}, err
	}
	sh, err := m.login(info, old)
	if err != nil {
		return Info{}, err
	}
	defer m.ctx.Logout(sh)
	nw, err := newPIN()
	if err != nil {
		return Info{}, err
	}
	if nw == old {
		return Info{}, fmt.Errorf("new %w: the new pin is the same as the current one", ErrPINInvalid)
	}
	if err := CheckPIN(nw, info); err != nil {
		return Info{}, fmt.Errorf("new %w", err)
	}
	if err := m.ctx.SetPIN(sh, old, nw); err != nil {
		if hasCode(err, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE) {
			return Info{}, fmt.Errorf("new %w: %w", ErrPINInvalid, p11err("C_SetPIN", err))
		}
		return Info{}, m.pinRefused(info.Slot, "C_SetPIN", err)
	}
	slog.Debug("user pin changed", "slot", info.Slot, "label", info.Label, "serial", info.Serial)
	return m.tokenInfo(info.Slot)
}
