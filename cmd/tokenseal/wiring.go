package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/state"
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

// ownSenders are the signing keys on the user's token, trusted as
// senders without `trust add` (receive.Config.Own): what the user sealed
// or rewrapped opens for the user. Each is checked against its private
// key before it is trusted, and named token:LABEL.
type ownSenders struct{ kr *keyring.Keyring }

func (o ownSenders) LookupTrusted(_ context.Context, id [32]byte) (*state.Trusted, error) {
	pub, label, err := o.kr.Sender(envelope.KeyID(id))
	if errors.Is(err, token.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %v", state.ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	return &state.Trusted{Name: "token:" + label, KeyID: id, Public: pub}, nil
}

// noLimit is the duration "none" stands for: longer than any clock
// difference (about 292 years).
const noLimit = time.Duration(math.MaxInt64)

// maxDays is the most days a duration holds.
const maxDays = int64(noLimit / (24 * time.Hour))

// durationFlag reads a duration flag: a Go duration (90m, 36h, -1h), a
// whole number of days (7d), or none (no limit). A command without the
// flag gets 0. --max-age 0 would refuse every envelope: it is refused,
// with none offered instead.
func durationFlag(c *cli.Context, name string) (time.Duration, error) {
	v := strings.TrimSpace(c.String(name))
	switch {
	case v == "":
		return 0, nil
	case v == "none":
		return noLimit, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 32)
		if err == nil && (n > maxDays || n < -maxDays) {
			return 0, usageErrorf("--%s %q is longer than tokenseal can count; for no limit say none", name, v)
		}
		if err != nil {
			return 0, usageErrorf("--%s %q: a duration is like 90m, 36h or 7d, or none", name, v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, usageErrorf("--%s %q: a duration is like 90m, 36h or 7d, or none", name, v)
		}
	}
	if name == "max-age" && d <= 0 {
		return 0, usageErrorf("--max-age %s would refuse every envelope; for no limit say --max-age none", v)
	}
	return d, nil
}
