package keyring

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokenseal/tokenseal/envelope/cms"
	"github.com/tokenseal/tokenseal/token"
)

// The token as CMS (package envelope/cms) sees it: a [cms.KeyFinder] over
// its key pairs and their X.509 certificates (CKO_CERTIFICATE objects
// with the key's CKA_ID), the recipient of a key on it, and the
// certificate a signing key embeds in signed messages.

// cmsIdentity is a key pair on the token as cms matches recipient
// identifiers: by the issuer and serial number or subject key identifier
// of each of its certificates, and by the subject key identifiers of its
// public key (cms.SubjectKeyIDs).
type cmsIdentity struct {
	k  *token.Key
	id *cms.Identity
}

// cmsIdentities makes the identities of every key pair once, in the
// token's order. The caller holds r.mu.
func (r *Keyring) cmsIdentities() ([]cmsIdentity, error) {
	if r.cmsIDs != nil {
		return r.cmsIDs, nil
	}
	if _, err := r.keys(); err != nil {
		return nil, err
	}
	all, err := r.tok.Certificates()
	if err != nil {
		return nil, err
	}
	ids := []cmsIdentity{}
	for _, k := range r.list {
		var key cms.Key = tokenRSA{k}
		if _, isEC := k.Public().(*ecdsa.PublicKey); isEC {
			key = tokenECDH{k}
		}
		var certs []*x509.Certificate
		for _, c := range all {
			if len(k.ID) > 0 && bytes.Equal(c.ID, k.ID) && k.Carries(c) {
				certs = append(certs, c.Cert)
			}
		}
		id, err := cms.NewIdentity(key, certs...)
		if err != nil {
			slog.Debug("key not usable with cms: skipped", "key", k.Label, "err", err)
			continue
		}
		ids = append(ids, cmsIdentity{k, id})
	}
	r.cmsIDs = ids
	return ids, nil
}

// FindKey implements [cms.KeyFinder]: the key pair on the token that rid
// names, if this token can open with it (an exchange key, and a mechanism
// for it: see [token.Key.CanOpen]); a recipient info naming a key the
// token holds but cannot open with (a signing key) does not stop the
// search, as for tokenseal envelopes. Recipient infos are matched in
// memory; the token is asked only to unwrap or derive.
func (r *Keyring) FindKey(rid cms.RecipientID) (cms.Key, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids, err := r.cmsIdentities()
	if err != nil {
		return nil, err
	}
	for _, c := range ids {
		if !c.id.Matches(rid) {
			continue
		}
		if err := c.k.CanOpen(); err != nil {
			if !errors.Is(err, token.ErrMechanism) && !errors.Is(err, token.ErrWrongKeyType) {
				return nil, err
			}
			slog.Debug("recipient info for a key this token cannot open with: skipped", "key", c.k.Label, "err", err)
			continue
		}
		slog.Debug("recipient info matched", "key", c.k.Label, "rid", rid.String())
		return c.id.Key(), nil
	}
	return nil, nil
}

// LabelOf returns the label of the key pair on the token that rid names,
// whatever its usage, or "" when it names none.
func (r *Keyring) LabelOf(rid cms.RecipientID) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids, err := r.cmsIdentities()
	if err != nil {
		return "", err
	}
	for _, c := range ids {
		if c.id.Matches(rid) {
			return c.k.Label, nil
		}
	}
	return "", nil
}

// CMSRecipient resolves a spec naming a key on the token (see
// [Keyring.Recipient], whose checks it makes) to a CMS recipient named by
// its subject key identifier, the key id (a key on the token is a bare
// key; a certificate file given as a recipient is named by issuer and
// serial number instead). RSA recipients use the OAEP hash the token
// undoes.
func (r *Keyring) CMSRecipient(spec string) (*cms.Recipient, error) {
	k, h, err := r.recipientKey(spec)
	if err != nil {
		return nil, err
	}
	rc, err := cms.NewKeyRecipient(k.Public(), h)
	if err != nil {
		return nil, fmt.Errorf("recipient %s: %w", spec, err)
	}
	return rc, nil
}

// SignerCertificate returns the certificate a signing key embeds in
// signed CMS messages: of the certificates on the token for the key spec
// names, the one valid now that was issued last; nil when it has none
// (the message then names the signer by its key id only).
func (r *Keyring) SignerCertificate(spec string) (*x509.Certificate, error) {
	k, err := r.Key(spec)
	if err != nil {
		return nil, err
	}
	certs, err := k.Certificates()
	if err != nil {
		return nil, err
	}
	return newestValid(certs, time.Now()), nil
}

// newestValid is the certificate valid at now with the latest NotBefore,
// or nil.
func newestValid(certs []*token.Certificate, now time.Time) *x509.Certificate {
	var best *x509.Certificate
	for _, c := range certs {
		x := c.Cert
		if now.Before(x.NotBefore) || now.After(x.NotAfter) {
			continue
		}
		if best == nil || x.NotBefore.After(best.NotBefore) {
			best = x
		}
	}
	return best
}

// IssueCertificate issues a certificate for the exchange key k (see
// [cms.IssueCertificate]), signed on the token by the signing key issuer
// under its newest valid certificate on the token, and stores it on the
// token beside k. An exchange key cannot sign its own certificate; an
// issuer without a certificate gets one with [Keyring.SelfCertify] first.
func (r *Keyring) IssueCertificate(k, issuer *token.Key, opts *cms.CertOptions) (*x509.Certificate, error) {
	if !k.Usage.CanExchange() {
		return nil, fmt.Errorf("%w: key %s is not an exchange key (usage %s); a signing key's own certificate is self-signed", token.ErrWrongKeyType, k, k.Usage)
	}
	signer, err := issuer.Signer()
	if err != nil {
		return nil, err
	}
	certs, err := issuer.Certificates()
	if err != nil {
		return nil, err
	}
	issuerCert := newestValid(certs, time.Now())
	if issuerCert == nil {
		return nil, fmt.Errorf("%w: the issuing key %s has no valid certificate on the token: make its own first (key cert --self)", token.ErrWrongKeyType, issuer)
	}
	if err := k.Check(); err != nil {
		return nil, err
	}
	cert, err := cms.IssueCertificate(k.Public(), signer, issuerCert, opts)
	if err != nil {
		return nil, fmt.Errorf("issuing a certificate for key %s: %w", k, err)
	}
	return cert, r.store(k, cert)
}

// SelfCertify makes the self-signed certificate of the signing key k (see
// [cms.SelfSignedCertificate]), signed on the token, and stores it on the
// token beside k.
func (r *Keyring) SelfCertify(k *token.Key, opts *cms.CertOptions) (*x509.Certificate, error) {
	signer, err := k.Signer()
	if err != nil {
		return nil, err
	}
	cert, err := cms.SelfSignedCertificate(signer, opts)
	if err != nil {
		return nil, fmt.Errorf("making the certificate of key %s: %w", k, err)
	}
	return cert, r.store(k, cert)
}

// store stores cert beside k and forgets what was read of the token, so
// that the next lookup sees it.
func (r *Keyring) store(k *token.Key, cert *x509.Certificate) error {
	tok, err := r.Token()
	if err != nil {
		return err
	}
	if _, _, err := tok.StoreCertificate(k, cert); err != nil {
		return err
	}
	r.mu.Lock()
	r.byID, r.list, r.idens, r.cmsIDs = nil, nil, nil, nil
	r.mu.Unlock()
	return nil
}
