package token

import (
	"slices"

	"github.com/miekg/pkcs11"
)

// Mechanism describes one mechanism as C_GetMechanismInfo reports it.
type Mechanism struct {
	Type       uint // CKM_ value
	MinKeySize uint
	MaxKeySize uint
	Flags      uint // CKF_ENCRYPT, CKF_DECRYPT, CKF_UNWRAP, CKF_DERIVE, ...
}

// mechanismInfo returns what the token says about mech, or nil when it
// does not have it. A mechanism counts only when C_GetMechanismList lists
// it: tpm2-pkcs11 1.9.0 answers C_GetMechanismInfo for mechanisms it does
// not list and then refuses them (CKM_RSA_PKCS_PSS on a digest), and
// logs an error on stderr for each one it does not know.
func mechanismInfo(ctx *pkcs11.Ctx, slot uint, listed []uint, mech uint) (*pkcs11.MechanismInfo, error) {
	if !slices.Contains(listed, mech) {
		return nil, nil
	}
	info, err := ctx.GetMechanismInfo(slot, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)})
	if hasCode(err, pkcs11.CKR_MECHANISM_INVALID) {
		return nil, nil
	}
	if err != nil {
		return nil, p11err("C_GetMechanismInfo", err)
	}
	return &info, nil
}

// mechanismList returns the mechanisms C_GetMechanismList lists for slot.
func mechanismList(ctx *pkcs11.Ctx, slot uint) ([]uint, error) {
	list, err := ctx.GetMechanismList(slot)
	if err != nil {
		return nil, p11err("C_GetMechanismList", err)
	}
	out := make([]uint, len(list))
	for i, m := range list {
		out[i] = m.Mechanism
	}
	return out, nil
}

// Mechanisms lists the token's mechanisms (C_GetMechanismList and
// C_GetMechanismInfo for each).
func (t *Token) Mechanisms() ([]Mechanism, error) {
	list, err := t.listed()
	if err != nil {
		return nil, err
	}
	out := make([]Mechanism, 0, len(list))
	for _, m := range list {
		mi, err := t.MechanismInfo(m)
		if err != nil {
			return nil, err
		}
		out = append(out, mi)
	}
	return out, nil
}

func (t *Token) listed() ([]uint, error) {
	t.mechMu.Lock()
	defer t.mechMu.Unlock()
	if t.mechList == nil {
		list, err := mechanismList(t.ctx(), t.info.Slot)
		if err != nil {
			return nil, err
		}
		t.mechList = list
	}
	return t.mechList, nil
}

// MechanismInfo returns what the token says about mech. A mechanism the
// token does not list gives an [*Error] with CKR_MECHANISM_INVALID.
// Results are cached for the life of the Token.
func (t *Token) MechanismInfo(mech uint) (Mechanism, error) {
	list, err := t.listed()
	if err != nil {
		return Mechanism{}, err
	}
	t.mechMu.Lock()
	defer t.mechMu.Unlock()
	mi, ok := t.mechs[mech]
	if !ok {
		if mi, err = mechanismInfo(t.ctx(), t.info.Slot, list, mech); err != nil {
			return Mechanism{}, err
		}
		t.mechs[mech] = mi // nil: the token lacks it
	}
	if mi == nil {
		return Mechanism{}, &Error{Op: "C_GetMechanismInfo", Code: pkcs11.CKR_MECHANISM_INVALID}
	}
	return Mechanism{Type: mech, MinKeySize: mi.MinKeySize, MaxKeySize: mi.MaxKeySize, Flags: mi.Flags}, nil
}

// supports reports whether the token has mech with all of flags.
func (t *Token) supports(mech, flags uint) bool {
	mi, err := t.MechanismInfo(mech)
	return err == nil && mi.Flags&flags == flags
}
