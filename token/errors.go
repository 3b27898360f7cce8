package token

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/miekg/pkcs11"
)

// ErrToken is matched by errors.Is for every condition sentinel of this
// package except [ErrUnwrapFailed]; the CLI maps it to its "token error"
// exit code. A [*Error] is a token error too.
var ErrToken = errors.New("token error")

// tokenSentinel is a sentinel error that also matches [ErrToken].
type tokenSentinel struct{ msg string }

func (e *tokenSentinel) Error() string        { return e.msg }
func (e *tokenSentinel) Is(target error) bool { return target == ErrToken }

// Condition sentinels. Check them with errors.Is.
var (
	// ErrModuleNotFound: no PKCS#11 module at the given path, none found
	// in the usual places, or the module could not be loaded.
	ErrModuleNotFound error = &tokenSentinel{"pkcs11 module not found"}
	// ErrTokenNotFound: no initialized token matches the selector, or no
	// selector was given and there is not exactly one token.
	ErrTokenNotFound error = &tokenSentinel{"token not found"}
	// ErrTokenAmbiguous: several tokens match the selector. It matches
	// ErrTokenNotFound too. No PIN was sent to any of them.
	ErrTokenAmbiguous error = &ambiguous{}
	// ErrKeyNotFound: no key pair matches, or more than one does.
	ErrKeyNotFound error = &tokenSentinel{"key not found"}
	// ErrTokenExists: token init asked for a label an initialized token has.
	ErrTokenExists error = &tokenSentinel{"token label already exists"}
	// ErrKeyExists: a key generation asked for a label already in use.
	ErrKeyExists error = &tokenSentinel{"key label already exists"}
	// ErrWrongKeyType: the key exists but cannot do what was asked.
	ErrWrongKeyType error = &tokenSentinel{"key of the wrong kind"}
	// ErrKeyMismatch: a key's public key does not belong to its private
	// key (a public-key object or certificate was replaced).
	ErrKeyMismatch error = &tokenSentinel{"public key does not match the private key"}
	// ErrLoginFailed: C_Login refused the PIN (or the PIN is locked).
	ErrLoginFailed error = &tokenSentinel{"login failed"}
	// ErrNoPIN: no PIN source was given and no terminal to ask on.
	ErrNoPIN error = &tokenSentinel{"no pin given"}
	// ErrPINInvalid: a PIN that cannot be right (a control character, a
	// length outside the token's limits) was refused before C_Login, or
	// the token refused a new PIN.
	ErrPINInvalid error = &tokenSentinel{"pin refused"}
	// ErrMechanism: the token offers no usable mechanism for the operation.
	ErrMechanism error = &tokenSentinel{"token lacks a required mechanism"}
	// ErrBadURI: a pkcs11: URI could not be parsed or used.
	ErrBadURI error = &tokenSentinel{"invalid pkcs11 uri"}
	// ErrClosed: the Token was used after Close.
	ErrClosed error = &tokenSentinel{"token closed"}
)

type ambiguous struct{}

func (*ambiguous) Error() string { return "several tokens match" }
func (*ambiguous) Is(target error) bool {
	return target == ErrToken || target == ErrTokenNotFound
}

// ErrUnwrapFailed means an unwrap, decrypt or derive on data from outside
// (an envelope) failed. Its message is the same whatever the token said,
// so that no difference between failures reaches the caller (the CKR_
// value is logged at Debug level only). It is deliberately NOT a token
// error (it does not match [ErrToken]): the data is to blame.
var ErrUnwrapFailed = errors.New("wrapped key did not unwrap: not addressed to this key or corrupted")

// Error is a PKCS#11 function that returned a CKR_ value other than CKR_OK.
type Error struct {
	Op   string // the PKCS#11 function, e.g. "C_Login"
	Code uint   // the CK_RV value
}

func (e *Error) Error() string { return e.Op + ": " + ckrName(e.Code) }

// Is makes every *Error match [ErrToken].
func (e *Error) Is(target error) bool { return target == ErrToken }

// ckrName names a CK_RV value, e.g. "CKR_PIN_INCORRECT".
func ckrName(code uint) string {
	s := pkcs11.Error(code).Error() // "pkcs11: 0x%X: NAME"
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s[i+2:], "CKR_") {
		return s[i+2:]
	}
	return fmt.Sprintf("CKR_0x%08X", code)
}

// p11err turns an error from miekg/pkcs11 into an [*Error] named after
// op. Errors without a CK_RV are wrapped with op as context.
func p11err(op string, err error) error {
	if err == nil {
		return nil
	}
	var te *Error
	if errors.As(err, &te) {
		return err
	}
	var pe pkcs11.Error
	if errors.As(err, &pe) {
		return &Error{Op: op, Code: uint(pe)}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// codeOf returns the CK_RV carried by err, if any.
func codeOf(err error) (uint, bool) {
	var te *Error
	if errors.As(err, &te) {
		return te.Code, true
	}
	var pe pkcs11.Error
	if errors.As(err, &pe) {
		return uint(pe), true
	}
	return 0, false
}

// hasCode reports whether err carries one of codes.
func hasCode(err error, codes ...uint) bool {
	c, ok := codeOf(err)
	if !ok {
		return false
	}
	for _, x := range codes {
		if c == x {
			return true
		}
	}
	return false
}

// environmentCodes are failures of the token, the session, the login or
// the key rather than of the data given to an operation: the token went
// away, the session or key handle died, the key may not do this (any
// more), memory ran out. None depends on the data. Any other failure of
// an operation on data from outside is [ErrUnwrapFailed].
var environmentCodes = []uint{
	pkcs11.CKR_DEVICE_REMOVED,
	pkcs11.CKR_DEVICE_ERROR,
	pkcs11.CKR_DEVICE_MEMORY,
	pkcs11.CKR_HOST_MEMORY,
	pkcs11.CKR_TOKEN_NOT_PRESENT,
	pkcs11.CKR_TOKEN_NOT_RECOGNIZED,
	pkcs11.CKR_SESSION_HANDLE_INVALID,
	pkcs11.CKR_SESSION_CLOSED,
	pkcs11.CKR_USER_NOT_LOGGED_IN,
	pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
	pkcs11.CKR_KEY_HANDLE_INVALID,
	pkcs11.CKR_OBJECT_HANDLE_INVALID,
	pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED,
	pkcs11.CKR_KEY_TYPE_INCONSISTENT,
	pkcs11.CKR_UNWRAPPING_KEY_HANDLE_INVALID,
	pkcs11.CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
}

// dataFailure sorts the failure of an operation on outside data: the
// environment codes stay token errors (naming the CKR_ value); anything
// else becomes the fixed [ErrUnwrapFailed], its cause logged at Debug.
func dataFailure(op, key string, err error) error {
	if hasCode(err, environmentCodes...) {
		return p11err(op, err)
	}
	slog.Debug("operation on outside data failed", "op", op, "key", key, "err", p11err(op, err))
	return ErrUnwrapFailed
}
