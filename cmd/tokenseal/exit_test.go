package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/cms"
	"github.com/tokenseal/tokenseal/envelope/receive"
	"github.com/tokenseal/tokenseal/envelope/state"
	tok "github.com/tokenseal/tokenseal/token"
)

// sentinels is every exported sentinel error of the packages whose errors
// reach the exit-code table, with its code when it reaches it wrapped.
// TestExitCodesCoverEverySentinel fails when a package gains one that is
// not listed here.
var sentinels = map[string]struct {
	err  error
	code int
}{
	"envelope.ErrRejected":          {envelope.ErrRejected, exitEnvelope},
	"envelope.ErrHeaderAuth":        {envelope.ErrHeaderAuth, exitEnvelope},
	"envelope.ErrPayloadAuth":       {envelope.ErrPayloadAuth, exitEnvelope},
	"envelope.ErrUnwrap":            {envelope.ErrUnwrap, exitEnvelope},
	"envelope.ErrSignature":         {envelope.ErrSignature, exitEnvelope},
	"envelope.ErrUnsigned":          {envelope.ErrUnsigned, exitEnvelope},
	"envelope.ErrIncorrectIdentity": {envelope.ErrIncorrectIdentity, exitOther}, // Open turns it into a NoIdentityMatchError
	"envelope.ErrUnknownSender":     {envelope.ErrUnknownSender, exitOther},     // Open turns it into an UnknownSenderError
	"envelope.ErrNoRecipientsLeft":  {envelope.ErrNoRecipientsLeft, exitOther},
	"envelope.ErrKeyRole":           {envelope.ErrKeyRole, exitUsage}, // a key file given for the wrong use

	"state.ErrReplay":           {state.ErrReplay, exitReplay},
	"state.ErrSchema":           {state.ErrSchema, exitOther},
	"state.ErrUnsafe":           {state.ErrUnsafe, exitOther},
	"state.ErrCounterExhausted": {state.ErrCounterExhausted, exitOther},
	"state.ErrNotFound":         {state.ErrNotFound, exitOther},
	"state.ErrExists":           {state.ErrExists, exitOther},
	"state.ErrUnhealthy":        {state.ErrUnhealthy, exitOther},

	"token.ErrToken":           {tok.ErrToken, exitToken},
	"token.ErrModuleNotFound":  {tok.ErrModuleNotFound, exitToken},
	"token.ErrTokenNotFound":   {tok.ErrTokenNotFound, exitToken},
	"token.ErrKeyNotFound":     {tok.ErrKeyNotFound, exitToken},
	"token.ErrTokenExists":     {tok.ErrTokenExists, exitToken},
	"token.ErrKeyExists":       {tok.ErrKeyExists, exitToken},
	"token.ErrWrongKeyType":    {tok.ErrWrongKeyType, exitToken},
	"token.ErrLoginFailed":     {tok.ErrLoginFailed, exitToken},
	"token.ErrNoPIN":           {tok.ErrNoPIN, exitToken},
	"token.ErrMechanism":       {tok.ErrMechanism, exitToken},
	"token.ErrBadURI":          {tok.ErrBadURI, exitToken},
	"token.ErrClosed":          {tok.ErrClosed, exitToken},
	"token.ErrPINInvalid":      {tok.ErrPINInvalid, exitToken},
	"token.ErrTokenAmbiguous":  {tok.ErrTokenAmbiguous, exitToken},
	"token.ErrKeyMismatch":     {tok.ErrKeyMismatch, exitToken},
	"token.ErrCertMismatch":    {tok.ErrCertMismatch, exitToken},
	"token.ErrCertUnsupported": {tok.ErrCertUnsupported, exitToken},

	// CMS rejections match envelope.ErrRejected.
	"cms.ErrRejected":              {cms.ErrRejected, exitEnvelope},
	"cms.ErrDecrypt":               {cms.ErrDecrypt, exitEnvelope},
	"cms.ErrUnauthenticated":       {cms.ErrUnauthenticated, exitEnvelope},
	"cms.ErrUnsigned":              {cms.ErrUnsigned, exitEnvelope},
	"cms.ErrSignature":             {cms.ErrSignature, exitEnvelope},
	"cms.ErrPKCS1v15":              {cms.ErrPKCS1v15, exitEnvelope},
	"receive.ErrUnstamped":         {receive.ErrUnstamped, exitEnvelope},
	"receive.ErrAnonymousOriginal": {receive.ErrAnonymousOriginal, exitUsage},
	// A wrapped key the token refused for its data: not addressed to
	// this key, or corrupted. token/keyring, the token's identity, says
	// so with envelope.ErrUnwrap (exit 4, listed above): the table needs
	// no case of its own, and the token's sentinel is not a token error.
	"token.ErrUnwrapFailed": {tok.ErrUnwrapFailed, exitOther},
	"token.ErrUnsafeFile":   {tok.ErrUnsafeFile, exitOther},
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
	}{
		{nil, 0},
		{errors.New("x"), 1},
		{usageErrorf("bad"), 2},
		{&tok.Error{Op: "C_Login", Code: 0xa0}, 3},
		{fmt.Errorf("%w: %w", tok.ErrLoginFailed, &tok.Error{Op: "C_Login", Code: 0xa0}), 3},
		// A device failure during an unwrap stays a token error.
		{fmt.Errorf("RSA-OAEP stanza for key x: %w", &tok.Error{Op: "C_UnwrapKey", Code: 0x32}), 3},
		// An unwrap refusal is the envelope's fault, however it is said.
		{fmt.Errorf("RSA-OAEP stanza for key x: %w", envelope.ErrUnwrap), 4},
		{&envelope.ParseError{What: "header truncated"}, 4},
		{&envelope.NoIdentityMatchError{}, 4},
		{&envelope.UnknownSenderError{}, 4},
		{&cms.ParseError{Msg: "truncated"}, 4},
		{&cms.NoRecipientError{}, 4},
		{&cms.UnknownSenderError{}, 4},
		{&state.ReplayError{Serial: 1}, 5},
		{&state.StaleError{Reason: "old"}, 5},
	} {
		if got := exitCode(c.err); got != c.code {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.code)
		}
	}
	for name, s := range sentinels {
		if got := exitCode(fmt.Errorf("wrapped: %w", s.err)); got != s.code {
			t.Errorf("%s wrapped: exit %d, want %d", name, got, s.code)
		}
	}
	var buf bytes.Buffer
	report(&buf, errors.New("two\nlines"))
	if got := buf.String(); got != "tokenseal: error: two; lines\n" {
		t.Errorf("report: %q", got)
	}
}

// Every exported Err* variable of envelope, envelope/state, envelope/cms,
// envelope/receive and token is
// in sentinels, found by reading their source.
func TestExitCodesCoverEverySentinel(t *testing.T) {
	var missing []string
	for pkg, dir := range map[string]string{"envelope": "../../envelope", "state": "../../envelope/state", "token": "../../token",
		"cms": "../../envelope/cms", "receive": "../../envelope/receive"} {
		for _, name := range exportedErrVars(t, dir) {
			if _, ok := sentinels[pkg+"."+name]; !ok {
				missing = append(missing, pkg+"."+name)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("sentinels without an exit code in this test: %s", strings.Join(missing, ", "))
	}
}

func exportedErrVars(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if strings.HasPrefix(n.Name, "Err") {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatalf("no Err* variables found in %s", dir)
	}
	return names
}
