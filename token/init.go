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
// refused. It returns the new token's description.
func InitToken(module, label, soPIN, userPIN string) (TokenInfo, error) {
	if label == "" || len(label) > 32 {
		return TokenInfo{}, fmt.Errorf("init token: label must be 1 to 32 bytes")
	}
	if soPIN == "" || userPIN == "" {
		return TokenInfo{}, fmt.Errorf("%w: init token needs an so pin and a user pin", ErrNoPIN)
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
	slot, found := uint(0), false
	for _, t := range toks {
		if t.SlotPresent && t.Initialized && t.Label == label {
			return TokenInfo{}, fmt.Errorf("%w: %q (serial %s)", ErrTokenExists, label, t.Serial)
		}
		if t.SlotPresent && !t.Initialized && !found {
			slot, found = t.Slot, true
		}
	}
	if !found {
		return TokenInfo{}, fmt.Errorf("%w: no slot with an uninitialized token", ErrTokenNotFound)
	}
	if err := ctx.InitToken(slot, soPIN, label); err != nil {
		return TokenInfo{}, p11err("C_InitToken", err)
	}

	// Re-initialize to see the new token; find it by label.
	if err := ctx.Finalize(); err != nil {
		return TokenInfo{}, p11err("C_Finalize", err)
	}
	if err := ctx.Initialize(); err != nil {
		return TokenInfo{}, p11err("C_Initialize", err)
	}
	toks, err = listTokens(ctx)
	if err != nil {
		return TokenInfo{}, err
	}
	info, err := selectToken(toks, label, "")
	if err != nil {
		return TokenInfo{}, err
	}
	sh, err := ctx.OpenSession(info.Slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return TokenInfo{}, p11err("C_OpenSession", err)
	}
	defer ctx.CloseSession(sh)
	if err := ctx.Login(sh, pkcs11.CKU_SO, soPIN); err != nil {
		return TokenInfo{}, fmt.Errorf("%w: as security officer: %w", ErrLoginFailed, p11err("C_Login", err))
	}
	if err := ctx.InitPIN(sh, userPIN); err != nil {
		_ = ctx.Logout(sh)
		return TokenInfo{}, p11err("C_InitPIN", err)
	}
	if err := ctx.Logout(sh); err != nil {
		return TokenInfo{}, p11err("C_Logout", err)
	}
	ti, err := ctx.GetTokenInfo(info.Slot)
	if err != nil {
		return TokenInfo{}, p11err("C_GetTokenInfo", err)
	}
	out := tokenInfo(info.Slot, ti)
	out.SlotDescription = info.SlotDescription
	return out, nil
}
