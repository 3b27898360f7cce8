package main

import (
	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/token"
	"github.com/tokenseal/tokenseal/token/keyring"
	"github.com/urfave/cli/v2"
)

// newKeyring returns the token's keys as the envelope package sees them,
// opening the token (and asking for a PIN) only when a key on it is
// needed.
func newKeyring(c *cli.Context) *keyring.Keyring {
	return keyring.New(func() (*token.Token, error) { return openToken(c) })
}

// resolveRecipient turns one -r value into a recipient: a PEM or DER
// public key or certificate file, or "token:LABEL" or a pkcs11: URI
// naming a key on the token.
func resolveRecipient(kr *keyring.Keyring, spec string) (envelope.Recipient, error) {
	if keyring.IsSpec(spec) {
		return kr.Recipient(spec)
	}
	return parseRecipientFile(spec)
}
