package token

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/pkcs11"
)

// Info describes a slot and the token in it, as C_GetSlotInfo and
// C_GetTokenInfo report them.
type Info struct {
	Slot            uint
	SlotDescription string
	Present         bool // a token is in the slot; the fields below are set only then
	Label           string
	Serial          string
	Manufacturer    string
	Model           string
	Initialized     bool
	LoginRequired   bool
	UserPINInit     bool
	Flags           uint // the token's CKF_ flags (see [FlagNames])
	MinPINLen       uint
	MaxPINLen       uint
	HardwareVersion string
	FirmwareVersion string
}

func trim(s string) string { return strings.TrimRight(s, " \x00") }

func versionString(v pkcs11.Version) string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

func tokenInfo(slot uint, desc string, ti pkcs11.TokenInfo) Info {
	return Info{
		Slot:            slot,
		SlotDescription: desc,
		Present:         true,
		Label:           trim(ti.Label),
		Serial:          trim(ti.SerialNumber),
		Manufacturer:    trim(ti.ManufacturerID),
		Model:           trim(ti.Model),
		Initialized:     ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0,
		LoginRequired:   ti.Flags&pkcs11.CKF_LOGIN_REQUIRED != 0,
		UserPINInit:     ti.Flags&pkcs11.CKF_USER_PIN_INITIALIZED != 0,
		Flags:           ti.Flags,
		MinPINLen:       ti.MinPinLen,
		MaxPINLen:       ti.MaxPinLen,
		HardwareVersion: versionString(ti.HardwareVersion),
		FirmwareVersion: versionString(ti.FirmwareVersion),
	}
}

// String names the token for messages: slot, label and serial.
func (i Info) String() string {
	return fmt.Sprintf("slot %d %q (serial %s)", i.Slot, i.Label, i.Serial)
}

// slots lists every slot, with its token's info when one is present.
func (m *module) slots() ([]Info, error) {
	ids, err := m.ctx.GetSlotList(false)
	if err != nil {
		return nil, p11err("C_GetSlotList", err)
	}
	var out []Info
	for _, s := range ids {
		si, err := m.ctx.GetSlotInfo(s)
		if err != nil {
			return nil, p11err("C_GetSlotInfo", err)
		}
		desc := trim(si.SlotDescription)
		if si.Flags&pkcs11.CKF_TOKEN_PRESENT == 0 {
			out = append(out, Info{Slot: s, SlotDescription: desc})
			continue
		}
		ti, err := m.ctx.GetTokenInfo(s)
		if err != nil {
			return nil, p11err("C_GetTokenInfo", err)
		}
		out = append(out, tokenInfo(s, desc, ti))
	}
	return out, nil
}

// tokenInfo reads the token in slot again (its flags change with failed
// logins).
func (m *module) tokenInfo(slot uint) (Info, error) {
	si, err := m.ctx.GetSlotInfo(slot)
	if err != nil {
		return Info{}, p11err("C_GetSlotInfo", err)
	}
	ti, err := m.ctx.GetTokenInfo(slot)
	if err != nil {
		return Info{}, p11err("C_GetTokenInfo", err)
	}
	return tokenInfo(slot, trim(si.SlotDescription), ti), nil
}

// ListTokens loads the module (see [FindModule]) and lists its slots and
// tokens. It does not log in. It returns the module path used.
func ListTokens(module string) (string, []Info, error) {
	m, err := loadModule(module)
	if err != nil {
		return "", nil, err
	}
	defer m.close()
	toks, err := m.slots()
	return m.path, toks, err
}

// selector is what names the token: any of a label, a serial and a slot,
// from [Config] and its pkcs11: URI.
type selector struct {
	module        string
	label, serial string
	slot          *uint
	uri           *URI
}

// resolveSelector applies a pkcs11: URI in cfg.Token: the label, serial,
// slot-id and module-path it names, which must agree with the other
// fields when both are given.
func resolveSelector(cfg Config) (selector, error) {
	s := selector{module: cfg.Module, label: cfg.Token, serial: cfg.Serial, slot: cfg.Slot}
	if !strings.HasPrefix(strings.ToLower(cfg.Token), "pkcs11:") {
		return s, nil
	}
	u, err := ParseURI(cfg.Token)
	if err != nil {
		return selector{}, err
	}
	s.uri, s.label = u, u.TokenLabel()
	agree := func(what string, have *string, v string) error {
		if v != "" && *have != "" && *have != v {
			return fmt.Errorf("%w: %s %s differs from the one given (%s)", ErrBadURI, what, v, *have)
		}
		if v != "" {
			*have = v
		}
		return nil
	}
	if err := errors.Join(agree("serial", &s.serial, u.Serial()), agree("module-path", &s.module, u.ModulePath())); err != nil {
		return selector{}, err
	}
	if v, ok := u.Path["slot-id"]; ok {
		n, err := strconv.ParseUint(v, 10, 0)
		if err != nil {
			return selector{}, fmt.Errorf("%w: slot-id %q is not a number", ErrBadURI, v)
		}
		if s.slot != nil && *s.slot != uint(n) {
			return selector{}, fmt.Errorf("%w: slot-id %d differs from the slot given (%d)", ErrBadURI, n, *s.slot)
		}
		slot := uint(n)
		s.slot = &slot
	}
	return s, nil
}

func (s selector) empty() bool { return s.label == "" && s.serial == "" && s.slot == nil }

func (s selector) String() string {
	var parts []string
	if s.label != "" {
		parts = append(parts, fmt.Sprintf("label %q", s.label))
	}
	if s.serial != "" {
		parts = append(parts, "serial "+s.serial)
	}
	if s.slot != nil {
		parts = append(parts, fmt.Sprintf("slot %d", *s.slot))
	}
	return strings.Join(parts, ", ")
}

func (s selector) matches(i Info) bool {
	return (s.label == "" || i.Label == s.label) &&
		(s.serial == "" || i.Serial == s.serial) &&
		(s.slot == nil || i.Slot == *s.slot)
}

// pick resolves the selector to exactly one initialized token among
// slots, or says why not, listing the tokens there are.
func (s selector) pick(slots []Info) (Info, error) {
	var match, all []Info
	for _, i := range slots {
		if !i.Present || !i.Initialized {
			continue
		}
		all = append(all, i)
		if s.matches(i) {
			match = append(match, i)
		}
	}
	switch {
	case len(match) == 1:
		return match[0], nil
	case len(match) > 1 && s.empty():
		return Info{}, fmt.Errorf("%w: no token named and several initialized: %s", ErrTokenAmbiguous, listInfos(match))
	case len(match) > 1:
		return Info{}, fmt.Errorf("%w %s: %s", ErrTokenAmbiguous, s, listInfos(match))
	case s.empty():
		return Info{}, fmt.Errorf("%w: no initialized token", ErrTokenNotFound)
	}
	return Info{}, fmt.Errorf("%w: %s (initialized tokens: %s)", ErrTokenNotFound, s, listInfos(all))
}

func listInfos(infos []Info) string {
	if len(infos) == 0 {
		return "none"
	}
	names := make([]string, len(infos))
	for i, t := range infos {
		names[i] = t.String()
	}
	return strings.Join(names, ", ")
}

// probeAttempts bounds the retries of finding the token when it looks
// absent or gives CKR_GENERAL_ERROR for a moment, as SoftHSM2 does while
// another process rewrites its token file.
const probeAttempts = 4

// transient reports whether a failure to find the token may go away on
// its own.
func transient(err error) bool {
	if errors.Is(err, ErrTokenAmbiguous) {
		return false
	}
	return errors.Is(err, ErrTokenNotFound) ||
		hasCode(err, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_DEVICE_ERROR)
}

// find resolves the selector to one token of the loaded module before
// any PIN is asked for, retrying a few times what may be transient.
func (m *module) find(s selector) (Info, error) {
	for attempt := 1; ; attempt++ {
		slots, err := m.slots()
		var info Info
		if err == nil {
			info, err = s.pick(slots)
		}
		if err == nil || !transient(err) || attempt == probeAttempts {
			return info, err
		}
		slog.Debug("token not found, looking again", "attempt", attempt, "err", err)
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
		if rerr := m.reinitialize(); rerr != nil {
			return Info{}, rerr
		}
	}
}

// tokenFlags are the CKF_ token flags, in the order PKCS#11 defines them.
var tokenFlags = []struct {
	flag uint
	name string
}{
	{pkcs11.CKF_RNG, "CKF_RNG"},
	{pkcs11.CKF_WRITE_PROTECTED, "CKF_WRITE_PROTECTED"},
	{pkcs11.CKF_LOGIN_REQUIRED, "CKF_LOGIN_REQUIRED"},
	{pkcs11.CKF_USER_PIN_INITIALIZED, "CKF_USER_PIN_INITIALIZED"},
	{pkcs11.CKF_RESTORE_KEY_NOT_NEEDED, "CKF_RESTORE_KEY_NOT_NEEDED"},
	{pkcs11.CKF_CLOCK_ON_TOKEN, "CKF_CLOCK_ON_TOKEN"},
	{pkcs11.CKF_PROTECTED_AUTHENTICATION_PATH, "CKF_PROTECTED_AUTHENTICATION_PATH"},
	{pkcs11.CKF_DUAL_CRYPTO_OPERATIONS, "CKF_DUAL_CRYPTO_OPERATIONS"},
	{pkcs11.CKF_TOKEN_INITIALIZED, "CKF_TOKEN_INITIALIZED"},
	{pkcs11.CKF_SECONDARY_AUTHENTICATION, "CKF_SECONDARY_AUTHENTICATION"},
	{pkcs11.CKF_USER_PIN_COUNT_LOW, "CKF_USER_PIN_COUNT_LOW"},
	{pkcs11.CKF_USER_PIN_FINAL_TRY, "CKF_USER_PIN_FINAL_TRY"},
	{pkcs11.CKF_USER_PIN_LOCKED, "CKF_USER_PIN_LOCKED"},
	{pkcs11.CKF_USER_PIN_TO_BE_CHANGED, "CKF_USER_PIN_TO_BE_CHANGED"},
	{pkcs11.CKF_SO_PIN_COUNT_LOW, "CKF_SO_PIN_COUNT_LOW"},
	{pkcs11.CKF_SO_PIN_FINAL_TRY, "CKF_SO_PIN_FINAL_TRY"},
	{pkcs11.CKF_SO_PIN_LOCKED, "CKF_SO_PIN_LOCKED"},
	{pkcs11.CKF_SO_PIN_TO_BE_CHANGED, "CKF_SO_PIN_TO_BE_CHANGED"},
	{pkcs11.CKF_ERROR_STATE, "CKF_ERROR_STATE"},
}

// FlagNames names the CKF_ flags set in a token's flags, e.g. "CKF_RNG",
// "CKF_LOGIN_REQUIRED", "CKF_USER_PIN_COUNT_LOW".
func FlagNames(flags uint) []string {
	var out []string
	for _, f := range tokenFlags {
		if flags&f.flag != 0 {
			out = append(out, f.name)
		}
	}
	return out
}

// pinFlags names the CKF_USER_PIN_* warnings among flags.
func pinFlags(flags uint) []string {
	return FlagNames(flags & (pkcs11.CKF_USER_PIN_COUNT_LOW | pkcs11.CKF_USER_PIN_FINAL_TRY | pkcs11.CKF_USER_PIN_LOCKED))
}
