package token

import (
	"fmt"

	"github.com/miekg/pkcs11"
)

// InitToken initializes a token with label on the first slot holding an
// uninitialized token (C_InitToken with soPIN), then sets its user PIN.
//
// SoftHSM2 renumbers the slot when a token is initialized, and a process
// does not see tokens created after C_Initialize: so the module is
// finalized and initialized again and the new token is found by label,
// never by the slot number used for C_InitToken. Then: login as SO,
// C_InitPIN, logout. A label already used by an initialized token is
// refused, and so is a user PIN outside the token's length limits. It
// returns the new token's description.
func InitToken(module, label, soPIN, userPIN string) (Info, error) {
	if label == "" || len(label) > 32 {
		return Info{}, fmt.Errorf("init token: label must be 1 to 32 bytes")
	}
	if soPIN == "" || userPIN == "" {
		return Info{}, fmt.Errorf("%w: init token needs an so pin and a user pin", ErrNoPIN)
	}
	m, err := loadModule(module)
	if err != nil {
		return Info{}, err
	}
	defer m.close()
	slot, err := m.freeSlot(label)
	if err != nil {
		return Info{}, err
	}
	if err := CheckPIN(userPIN, slot); err != nil {
		return Info{}, err
	}
	if err := m.ctx.InitToken(slot.Slot, soPIN, label); err != nil {
		return Info{}, p11err("C_InitToken", err)
	}
	// Re-initialize to see the new token; find it by label (and by slot
	// where the module keeps it, as most do).
	if err := m.reinitialize(); err != nil {
		return Info{}, err
	}
	info, err := m.findNew(label, slot.Slot)
	if err != nil {
		return Info{}, err
	}
	if err := m.initPIN(info.Slot, soPIN, userPIN); err != nil {
		return Info{}, err
	}
	return m.tokenInfo(info.Slot)
}

// freeSlot returns the first slot with an uninitialized token, refusing a
// label an initialized token already has.
func (m *module) freeSlot(label string) (Info, error) {
	slots, err := m.slots()
	if err != nil {
		return Info{}, err
	}
	var free *Info
	for i, t := range slots {
		if t.Present && t.Initialized && t.Label == label {
			return Info{}, fmt.Errorf("%w: %q (%s)", ErrTokenExists, label, t)
		}
		if t.Present && !t.Initialized && free == nil {
			free = &slots[i]
		}
	}
	if free == nil {
		return Info{}, fmt.Errorf("%w: no slot with an uninitialized token", ErrTokenNotFound)
	}
	return *free, nil
}

// findNew finds the token just initialized with label: in slot if it is
// there, else the one token with that label (SoftHSM2 moves it).
func (m *module) findNew(label string, slot uint) (Info, error) {
	slots, err := m.slots()
	if err != nil {
		return Info{}, err
	}
	for _, t := range slots {
		if t.Slot == slot && t.Initialized && t.Label == label {
			return t, nil
		}
	}
	return selector{label: label}.pick(slots)
}

// initPIN logs in as security officer and sets the user PIN.
func (m *module) initPIN(slot uint, soPIN, userPIN string) error {
	sh, err := m.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return p11err("C_OpenSession", err)
	}
	defer m.ctx.CloseSession(sh)
	if err := m.ctx.Login(sh, pkcs11.CKU_SO, soPIN); err != nil {
		return fmt.Errorf("%w: as security officer: %w", ErrLoginFailed, p11err("C_Login", err))
	}
	if err := m.ctx.InitPIN(sh, userPIN); err != nil {
		_ = m.ctx.Logout(sh)
		return p11err("C_InitPIN", err)
	}
	return p11err("C_Logout", m.ctx.Logout(sh))
}
