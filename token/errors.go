package token

import (
	"errors"
	"fmt"
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
	// ErrKeyNotFound: no key pair matches, or more than one does.
	ErrKeyNotFound error = &tokenSentinel{"key not found"}
	// ErrTokenExists: token init asked for a label an initialized token has.
	ErrTokenExists error = &tokenSentinel{"token label already exists"}
	// ErrKeyExists: a key generation asked for a label already in use.
	ErrKeyExists error = &tokenSentinel{"key label already exists"}
	// ErrWrongKeyType: the key exists but cannot do what was asked.
	ErrWrongKeyType error = &tokenSentinel{"key of the wrong kind"}
	// ErrLoginFailed: C_Login refused the PIN (or the PIN is locked).
	ErrLoginFailed error = &tokenSentinel{"login failed"}
	// ErrNoPIN: no PIN source was given and no terminal to ask on.
	ErrNoPIN error = &tokenSentinel{"no pin given"}
	// ErrMechanism: the token offers no usable mechanism for the operation.
	ErrMechanism error = &tokenSentinel{"token lacks a required mechanism"}
	// ErrBadURI: a pkcs11: URI could not be parsed or used.
	ErrBadURI error = &tokenSentinel{"invalid pkcs11 uri"}
	// ErrClosed: the Token was used after Close.
	ErrClosed error = &tokenSentinel{"token closed"}
)

// ErrUnwrapFailed means an unwrap, decrypt or derive was refused because of
// the data: the wrapped key is not addressed to this key, or it was
// corrupted. It is deliberately NOT a token error (it does not match
// [ErrToken]): device failures during the same operation stay [*Error].
var ErrUnwrapFailed = errors.New("unwrap failed: not addressed to this key or corrupted")

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

// p11err turns an error from miekg/pkcs11 or crypto11 into an [*Error]
// named after op. Errors without a CK_RV are wrapped with op as context.
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

// paramRefused are the codes a token gives when it does not support the
// mechanism or its parameters: try the next path.
var paramRefused = []uint{
	pkcs11.CKR_MECHANISM_INVALID,
	pkcs11.CKR_MECHANISM_PARAM_INVALID,
	pkcs11.CKR_ARGUMENTS_BAD,
	pkcs11.CKR_FUNCTION_NOT_SUPPORTED,
	pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED,
	pkcs11.CKR_KEY_TYPE_INCONSISTENT,
}

// dataRefused are the codes a token gives when the data is wrong for the key
// (not addressed to it, or corrupted). SoftHSM2 reports a failed OAEP
// decoding as CKR_GENERAL_ERROR or CKR_FUNCTION_FAILED, hence those too.
var dataRefused = []uint{
	pkcs11.CKR_GENERAL_ERROR,
	pkcs11.CKR_FUNCTION_FAILED,
	pkcs11.CKR_ENCRYPTED_DATA_INVALID,
	pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE,
	pkcs11.CKR_WRAPPED_KEY_INVALID,
	pkcs11.CKR_WRAPPED_KEY_LEN_RANGE,
	pkcs11.CKR_DATA_INVALID,
	pkcs11.CKR_DATA_LEN_RANGE,
}

// unwrapFailed wraps a data-class failure so that it matches ErrUnwrapFailed
// and still shows the CKR_ value.
func unwrapFailed(cause error) error {
	if cause == nil {
		return ErrUnwrapFailed
	}
	return &unwrapError{cause: cause}
}

type unwrapError struct{ cause error }

func (e *unwrapError) Error() string { return ErrUnwrapFailed.Error() + " (" + e.cause.Error() + ")" }

// Is matches ErrUnwrapFailed only: the cause is kept for the message but not
// exposed to errors.Is, so a CKR_ cause does not also read as a token error.
func (e *unwrapError) Is(target error) bool { return target == ErrUnwrapFailed }
