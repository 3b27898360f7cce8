package token

import (
	"fmt"

	"github.com/miekg/pkcs11"
)

// Diagnose reports what the module and token chosen by cfg offer
// tokenseal. It never fails: what goes wrong is in the report's Problems.
//
// Without logging in it reads C_GetInfo, the slots, the token's info and
// flags, and C_GetMechanismInfo for each [Capability] (the survey). Then,
// if a PIN is available (cfg.PIN, the URI's pin-source, or cfg.Prompt),
// it logs in once and tries each capability for real (the trials): on an
// existing key pair that allows the operation, or else on a temporary
// key pair made with the template `key generate` uses, as session
// objects or, on tokens without them, token objects; temporary pairs are
// destroyed before Diagnose returns. Every key pair is then run through
// the path open or seal would take with it. With no PIN the trials are
// skipped and the report says so.
func Diagnose(cfg Config) *Diagnosis {
	d := &Diagnosis{Login: LoginSkipped}
	for _, c := range Capabilities {
		d.Capabilities = append(d.Capabilities, CapabilityResult{Capability: c, Trial: TrialNotTried, Detail: "no login"})
	}
	sel, err := resolveSelector(cfg)
	if err == nil {
		err = d.survey(sel)
	}
	if err != nil {
		d.problem(err)
		return d
	}
	d.tokenFlags()
	d.HavePIN = cfg.PIN != "" || cfg.Prompt != nil
	if sel.uri != nil {
		if _, ok := sel.uri.Query["pin-source"]; ok {
			d.HavePIN = true
		}
	}
	ti := d.Token
	switch {
	case ti.Flags&pkcs11.CKF_USER_PIN_LOCKED != 0 || !ti.UserPINInit:
		d.skipTrials("no login: the user PIN is locked or not set")
	case !d.HavePIN:
		d.skipTrials("no login")
		d.note("trials skipped: no PIN available without a prompt; mechanisms are as C_GetMechanismInfo lists them")
	default:
		d.login(cfg)
	}
	d.verdict()
	return d
}

// login opens the token and runs the trials.
func (d *Diagnosis) login(cfg Config) {
	t, err := Open(cfg)
	if err != nil {
		d.Login = LoginFailed
		d.skipTrials("login failed")
		d.problem(err)
		return
	}
	d.Login, d.TrialsRun = LoginOK, true
	if err := d.trials(t); err != nil {
		d.problem(err)
	}
	if err := t.Close(); err != nil {
		d.problem(err)
	}
}

// tokenFlags turns the selected token's flags into problems and notes.
func (d *Diagnosis) tokenFlags() {
	ti := d.Token
	if ti.Flags&pkcs11.CKF_ERROR_STATE != 0 {
		d.problem(fmt.Errorf("%w: token %q reports CKF_ERROR_STATE", ErrToken, ti.Label))
	}
	if !ti.UserPINInit {
		d.problem(fmt.Errorf("%w: token %q has no user PIN set (CKF_USER_PIN_INITIALIZED is clear)", ErrLoginFailed, ti.Label))
	}
	if ti.Flags&pkcs11.CKF_USER_PIN_LOCKED != 0 {
		d.problem(fmt.Errorf("%w: the user PIN of token %q is locked (CKF_USER_PIN_LOCKED)", ErrLoginFailed, ti.Label))
	}
	switch {
	case ti.Flags&pkcs11.CKF_USER_PIN_FINAL_TRY != 0:
		d.note("one more wrong user PIN locks token %q (CKF_USER_PIN_FINAL_TRY)", ti.Label)
	case ti.Flags&pkcs11.CKF_USER_PIN_COUNT_LOW != 0:
		d.note("a wrong user PIN was entered on token %q recently (CKF_USER_PIN_COUNT_LOW)", ti.Label)
	}
	if ti.Flags&pkcs11.CKF_USER_PIN_TO_BE_CHANGED != 0 {
		d.note("token %q wants its user PIN changed (CKF_USER_PIN_TO_BE_CHANGED)", ti.Label)
	}
}

// survey loads the module on its own, reads what needs no login, selects
// the token and releases the module again.
func (d *Diagnosis) survey(sel selector) error {
	m, err := loadModule(sel.module)
	if err != nil {
		return err
	}
	defer m.close()
	info, err := m.ctx.GetInfo()
	if err != nil {
		return p11err("C_GetInfo", err)
	}
	d.Module = &ModuleInfo{
		Path:            m.path,
		CryptokiVersion: versionString(info.CryptokiVersion),
		Manufacturer:    trim(info.ManufacturerID),
		Description:     trim(info.LibraryDescription),
		LibraryVersion:  versionString(info.LibraryVersion),
	}
	if d.Slots, err = m.slots(); err != nil {
		return err
	}
	ti, err := sel.pick(d.Slots)
	if err != nil {
		return err
	}
	d.Token = &ti
	listed, err := mechanismList(m.ctx, ti.Slot)
	if err != nil {
		return err
	}
	for i := range d.Capabilities {
		c := &d.Capabilities[i]
		if c.mech == 0 && c.flag == pkcs11.CKF_RNG {
			c.Offered = ti.Flags&pkcs11.CKF_RNG != 0
			continue
		}
		mi, err := mechanismInfo(m.ctx, ti.Slot, listed, c.mech)
		if err != nil {
			return err
		}
		c.Offered = mi != nil && mi.Flags&c.flag == c.flag
	}
	return nil
}
