package token

import (
	"github.com/miekg/pkcs11"
)

// Mechanism describes one mechanism as C_GetMechanismInfo reports it.
type Mechanism struct {
	Type       uint // CKM_ value
	MinKeySize uint
	MaxKeySize uint
	Flags      uint // CKF_ENCRYPT, CKF_DECRYPT, CKF_UNWRAP, CKF_DERIVE, ...
}

// Mechanisms lists the token's mechanisms (C_GetMechanismList and
// C_GetMechanismInfo for each).
func (t *Token) Mechanisms() ([]Mechanism, error) {
	list, err := t.ctx.GetMechanismList(t.info.Slot)
	if err != nil {
		return nil, p11err("C_GetMechanismList", err)
	}
	out := make([]Mechanism, 0, len(list))
	for _, m := range list {
		mi, err := t.MechanismInfo(m.Mechanism)
		if err != nil {
			return nil, err
		}
		out = append(out, mi)
	}
	return out, nil
}

// MechanismInfo returns what the token says about mech. A mechanism the
// token does not have gives an [*Error] with CKR_MECHANISM_INVALID. Results
// are cached for the life of the Token.
func (t *Token) MechanismInfo(mech uint) (Mechanism, error) {
	t.mechMu.Lock()
	defer t.mechMu.Unlock()
	mi, ok := t.mechs[mech]
	if !ok {
		info, err := t.ctx.GetMechanismInfo(t.info.Slot, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)})
		if err != nil && !hasCode(err, pkcs11.CKR_MECHANISM_INVALID) {
			return Mechanism{}, p11err("C_GetMechanismInfo", err)
		}
		if err == nil {
			mi = &info
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
