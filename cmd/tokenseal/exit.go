package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/receive"
	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/token"
)

// Exit codes: the one table, documented in README.md and the man page. Nothing at 126 or
// above.
const (
	exitOK       = 0 // success
	exitOther    = 1 // any other error
	exitUsage    = 2 // bad command line (a key file marked for another use included)
	exitToken    = 3 // module not loadable, token absent, login failed, key not found or of the wrong kind
	exitEnvelope = 4 // envelope rejected: malformed, tampered, truncated, not addressed to a key here, bad signature
	exitReplay   = 5 // replay rejected
)

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...)}
}

// reportedError is an error already printed (a batch prints its errors
// as they come, in input order): it only gives the exit code.
type reportedError struct{ err error }

func (e *reportedError) Error() string { return e.err.Error() }
func (e *reportedError) Unwrap() error { return e.err }

// exitCode maps an error to the exit-code table, in one place. The order
// matters: specific conditions before the generic token rule.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, envelope.ErrKeyRole), errors.Is(err, receive.ErrAnonymousOriginal):
		return exitUsage
	case errors.Is(err, state.ErrReplay):
		return exitReplay
	case errors.Is(err, envelope.ErrRejected):
		return exitEnvelope

	case errors.Is(err, token.ErrToken):
		return exitToken
	}
	return exitOther
}

// hint returns a line of advice for some errors, or "".
func hint(err error) string {
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		return "run 'tokenseal help' for usage"
	case errors.Is(err, envelope.ErrKeyRole):
		return "'tokenseal key export' of a --usage exchange key makes a recipient's file, of a --usage sign key a sender's"
	case errors.Is(err, state.ErrSchema):
		return "'tokenseal state migrate' (with the same --state-dir or --state-url) brings an older state to this version's schema; a newer one needs a newer tokenseal"
	case errors.As(err, new(*receive.AcceptedBeforeError)):
		return "this very envelope was opened before; 'tokenseal open --reopen' opens it again (that same envelope only)"
	case errors.As(err, new(*receive.UnreleasedError)):
		return "'tokenseal open --reopen' opens it again"
	case errors.As(err, new(*state.StaleError)):
		return "--max-age DURATION (e.g. 30d, or none) accepts older envelopes; --reopen opens again one this ledger accepted before"
	case errors.Is(err, token.ErrNoPIN):
		return "give the PIN with --pin-file FILE, TOKENSEAL_PIN or the config file's pin-file, or run where a terminal can ask for it (not with --batch)"
	case errors.Is(err, token.ErrModuleNotFound):
		return "install your token's PKCS#11 module (e.g. the opensc or softhsm2 package), or name it with --module PATH (TOKENSEAL_MODULE, config module)"
	case errors.Is(err, token.ErrTokenAmbiguous):
		return "no PIN was sent; choose one with --token-slot N (TOKENSEAL_TOKEN_SLOT)"
	case errors.Is(err, token.ErrTokenNotFound):
		return "run 'tokenseal token list' and select one with --token LABEL, --token-slot N or a pkcs11: URI"
	case errors.Is(err, token.ErrPINInvalid):
		return "the PIN was not sent to the token (no try was spent); check the PIN file or TOKENSEAL_PIN"
	case errors.Is(err, token.ErrKeyMismatch):
		return "a public-key object or certificate on the token was replaced; do not use this key until its public key is restored from a trusted copy"
	case errors.Is(err, token.ErrLoginFailed):
		return "check the PIN: each wrong PIN brings the token closer to locking it"
	case errors.As(err, new(*envelope.UnknownSenderError)):
		return "trust the sender with 'tokenseal trust add NAME PUBKEY.pem' or pass --sender PUBKEY.pem"
	case errors.Is(err, envelope.ErrUnsigned):
		return "pass --allow-anonymous to accept unsigned envelopes (no replay protection)"
	case errors.As(err, new(*envelope.NoIdentityMatchError)):
		return "run 'tokenseal key list' to see the key identifiers on this token"
	case errors.Is(err, receive.ErrAnonymousOriginal):
		return "pass --vouch-for-anonymous to sign it anyway, or --anonymous to rewrap it unsigned"
	case errors.As(err, new(*receive.RewrappedError)):
		return "each signed original is rewrapped once; pass --again to rewrap it once more"
	case errors.Is(err, token.ErrKeyNotFound):
		return "run 'tokenseal key list' to see the keys on the token"
	}
	return cmsHint(err)
}

// report prints err as one "tokenseal: error:" line (and maybe a hint)
// unless it was printed already, and returns its exit code.
func report(stderr io.Writer, err error) int {
	code := exitCode(err)
	if err == nil || errors.As(err, new(*reportedError)) {
		return code
	}
	printError(stderr, err, nil)
	return code
}

// printError prints err as one "tokenseal: error:" line and its hint,
// unless the line says it already or hinted (when not nil) holds it: a
// batch's errors share it.
func printError(stderr io.Writer, err error, hinted map[string]bool) {
	msg := oneLine(err.Error())
	fmt.Fprintf(stderr, "tokenseal: error: %s\n", msg)
	if h := hint(err); h != "" && !strings.Contains(msg, h) && !hinted[h] {
		fmt.Fprintf(stderr, "tokenseal: hint: %s\n", h)
		if hinted != nil {
			hinted[h] = true
		}
	}
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
