package cms

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tokenseal/tokenseal/envelope"
)

// Errors a caller can check with errors.Is and errors.As. Every error that
// means "this message is refused" wraps ErrRejected, and matches
// envelope.ErrRejected too, so that a caller reading both formats checks
// one sentinel; errors of the caller's keys, files or writers are passed
// on unchanged (ErrDecrypt keeps a key's own error behind it: see
// errors.Unwrap).
var (
	// ErrRejected is wrapped by every error about the message itself.
	// It matches envelope.ErrRejected.
	ErrRejected error = &envelopeRejected{"cms message rejected"}

	// ErrDecrypt is the one error for every failure to recover or use the
	// content-encryption key: an RSA-OAEP or key-agreement unwrap that
	// fails, a key of the wrong size, a GCM tag that does not verify, a
	// CBC padding that is wrong, content that ends early. It says nothing
	// about which step failed, so that it is no oracle.
	ErrDecrypt = rejected("message did not decrypt: not addressed to this key, or corrupted")

	// ErrUnauthenticated is returned by Open for EnvelopedData (AES-CBC,
	// no integrity) unless OpenOptions.AllowUnauthenticated is set.
	ErrUnauthenticated = rejected("message is EnvelopedData, whose content is not authenticated; refusing without allow-unauthenticated")

	// ErrUnsigned is returned by Open for content that is not SignedData
	// unless OpenOptions.AllowUnsigned is set.
	ErrUnsigned = rejected("message is not signed (anonymous)")

	// ErrSignature means the SignedData's signature or its signed
	// attributes did not verify.
	ErrSignature = rejected("signature does not verify")

	// ErrPKCS1v15 is returned for a key transport recipient info
	// addressed to the caller's key that uses RSA PKCS#1 v1.5, which this
	// package never undoes (it is a padding oracle waiting to happen).
	ErrPKCS1v15 = rejected("the recipient info for this key uses RSA PKCS#1 v1.5 key transport, which is refused (use RSAES-OAEP)")
)

// envelopeRejected is ErrRejected: a rejection as the envelope package
// names them.
type envelopeRejected struct{ msg string }

func (e *envelopeRejected) Error() string        { return e.msg }
func (e *envelopeRejected) Is(target error) bool { return target == envelope.ErrRejected }

type rejectedError struct{ msg string }

func (e *rejectedError) Error() string        { return e.msg }
func (e *rejectedError) Is(target error) bool { return isRejected(target) }

func rejected(msg string) error { return &rejectedError{msg} }

// isRejected reports whether target is one of the two rejection
// sentinels: this package's or the envelope package's.
func isRejected(target error) bool { return target == ErrRejected || target == envelope.ErrRejected }

// unsupported refuses a message that uses something this package does
// not implement.
func unsupported(what string) error { return rejected("unsupported CMS message: " + what) }

var (
	errTooLong = errors.New("cms: content longer than AES-GCM allows for one message (2^36 - 32 bytes)")
	errClosed  = errors.New("cms: write after Close")
	// errNoSenders is returned for signed content when OpenOptions.Senders
	// is nil: a caller that accepts signed messages says whom it trusts.
	errNoSenders = errors.New("cms: the content is signed and no trusted senders were given")
)

// ParseError reports a malformed or unsupported message. Offset is the
// byte offset in the (decoded) message where the problem was found.
type ParseError struct {
	Offset int64
	Msg    string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("malformed CMS message at byte %d: %s", e.Offset, e.Msg)
}

func (e *ParseError) Is(target error) bool { return isRejected(target) }

// decryptError is ErrDecrypt with the key's own error behind it, so that
// a caller can tell a token that failed (errors.As on its error type)
// from a message that is bad. Its text is always ErrDecrypt's.
type decryptError struct{ cause error }

func (e *decryptError) Error() string { return ErrDecrypt.Error() }
func (e *decryptError) Is(target error) bool {
	return target == ErrDecrypt || isRejected(target)
}
func (e *decryptError) Unwrap() error { return e.cause }

// NoRecipientError is returned by Open when no recipient info names a key
// the caller holds. It lists whom the message is addressed to.
type NoRecipientError struct {
	Recipients []RecipientID
}

func (e *NoRecipientError) Error() string {
	if len(e.Recipients) == 0 {
		return "message has no recipient info this package can use"
	}
	s := make([]string, len(e.Recipients))
	for i, r := range e.Recipients {
		s[i] = r.String()
	}
	return "message is not addressed to any available key; it is addressed to " + strings.Join(s, "; ")
}

func (e *NoRecipientError) Is(target error) bool { return isRejected(target) }

// UnknownSenderError is returned for signed content whose signer is not a
// trusted sender (SenderKeys returned no key for it).
type UnknownSenderError struct {
	KeyID KeyID
	Err   error // what SenderKeys returned
}

func (e *UnknownSenderError) Error() string {
	return "message is signed by an untrusted key " + e.KeyID.String()
}

func (e *UnknownSenderError) Is(target error) bool { return isRejected(target) }
func (e *UnknownSenderError) Unwrap() error        { return e.Err }
