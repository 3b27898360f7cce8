package main

import (
	"errors"

	"github.com/tokenseal/tokenseal/envelope/cms"
	"github.com/tokenseal/tokenseal/envelope/receive"
	"github.com/tokenseal/tokenseal/token"
	"github.com/tokenseal/tokenseal/token/keyring"
	"github.com/urfave/cli/v2"
)

// openCMSFlags are open's flags for CMS messages (open detects them; the
// rest of its flags apply to them as to envelopes).
var openCMSFlags = []cli.Flag{
	&cli.BoolFlag{Name: "allow-unauthenticated", Usage: "accept CMS EnvelopedData (AES-CBC, what --cms-compat and older tools write), whose content is not authenticated: unless it is signed, anyone could have changed it undetected"},
	&cli.BoolFlag{Name: "allow-unstamped", Usage: "accept signed CMS messages from trusted senders that lack tokenseal's stamp (signed by other tools): their signature and signing time are checked, but they carry no replay protection"},
}

// openCMS is how open (and rewrap, which refuses CMS input) treats CMS
// messages: the token's keys and certificates, and the two flags.
func openCMS(c *cli.Context, kr *keyring.Keyring) receive.CMS {
	return receive.CMS{Keys: kr, AllowUnauthenticated: c.Bool("allow-unauthenticated"), AllowUnstamped: c.Bool("allow-unstamped")}
}

// cmsHint returns a line of advice for errors about CMS messages, or "".
func cmsHint(err error) string {
	switch {
	case errors.As(err, new(*cms.UnknownSenderError)):
		return "trust the sender with 'tokenseal trust add NAME PUBKEY.pem' (its key or certificate) or pass --sender PUBKEY.pem"
	case errors.Is(err, cms.ErrUnsigned):
		return "pass --allow-anonymous to accept unsigned messages (no sender, no replay protection)"
	case errors.Is(err, cms.ErrUnauthenticated):
		return "pass --allow-unauthenticated only if you accept content that anyone could have changed undetected (AES-CBC has no integrity)"
	case errors.Is(err, receive.ErrUnstamped):
		return "pass --allow-unstamped to accept it from this trusted sender without replay protection"
	case errors.Is(err, cms.ErrPKCS1v15):
		return "ask the sender for RSAES-OAEP: openssl cms -encrypt ... -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256"
	case errors.As(err, new(*cms.NoRecipientError)):
		return "run 'tokenseal key list'; a message to a certificate opens when that certificate is on the token ('tokenseal key import-cert')"
	case errors.Is(err, token.ErrCertMismatch):
		return "give the certificate of this key (compare 'tokenseal key export' with the certificate's public key)"
	}
	return ""
}
