package token

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"log/slog"
	"slices"

	"github.com/miekg/pkcs11"
)

// Certificate is an X.509 certificate object on the token (CKO_CERTIFICATE
// of type CKC_X_509), tied to its key pair by CKA_ID as PIV cards and
// other PKCS#11 tools keep them.
type Certificate struct {
	Label string
	ID    []byte // CKA_ID: the key pair's it belongs to
	Cert  *x509.Certificate

	h pkcs11.ObjectHandle
}

// Certificate conditions; they match [ErrToken].
var (
	// ErrCertMismatch: a certificate to store is not for the key it was
	// given for (its public key is another).
	ErrCertMismatch error = &tokenSentinel{"certificate is not for this key"}
	// ErrCertUnsupported: the token refused to create a certificate
	// object (the template, or object creation itself).
	ErrCertUnsupported error = &tokenSentinel{"token cannot store certificates"}
)

// certCreateRefusals are the C_CreateObject failures that mean the token
// does not take certificate objects as tokenseal writes them, rather than
// a failure of the token or session.
var certCreateRefusals = []uint{
	pkcs11.CKR_FUNCTION_NOT_SUPPORTED,
	pkcs11.CKR_TEMPLATE_INCONSISTENT,
	pkcs11.CKR_TEMPLATE_INCOMPLETE,
	pkcs11.CKR_ATTRIBUTE_TYPE_INVALID,
	pkcs11.CKR_ATTRIBUTE_VALUE_INVALID,
	pkcs11.CKR_ATTRIBUTE_READ_ONLY,
}

// certificateOf parses a CKO_CERTIFICATE object read with certAttrs; nil
// for a certificate that is not X.509 or does not parse.
func certificateOf(o object) *Certificate {
	if typ, ok := o.a.ulong(pkcs11.CKA_CERTIFICATE_TYPE); ok && typ != pkcs11.CKC_X_509 {
		return nil
	}
	c, err := x509.ParseCertificate(o.a.bytes(pkcs11.CKA_VALUE))
	if err != nil {
		slog.Debug("certificate object that does not parse: skipped", "label", o.a.str(pkcs11.CKA_LABEL), "err", err)
		return nil
	}
	return &Certificate{Label: o.a.str(pkcs11.CKA_LABEL), ID: o.a.bytes(pkcs11.CKA_ID), Cert: c, h: o.h}
}

// Certificates returns the X.509 certificates on the token for the key:
// those with its CKA_ID that carry its public key (one that carries
// another makes [Key.Check] fail), read from the token now.
func (k *Key) Certificates() ([]*Certificate, error) {
	certs, err := k.t.FindCertificates(k.ID)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(certs, func(c *Certificate) bool { return !k.Carries(c) }), nil
}

// Carries reports whether c carries the key's public key.
func (k *Key) Carries(c *Certificate) bool { return equalPublic(k.pub, c.Cert.PublicKey) }

// Certificates returns every X.509 certificate object on the token that
// parses, in the token's order.
func (t *Token) Certificates() ([]*Certificate, error) {
	var objs []object
	err := t.withSession(func(sh pkcs11.SessionHandle) error {
		var err error
		objs, err = t.objects(sh, pkcs11.CKO_CERTIFICATE, certAttrs, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []*Certificate
	for _, o := range objs {
		if c := certificateOf(o); c != nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// FindCertificates returns the X.509 certificates whose CKA_ID is id.
func (t *Token) FindCertificates(id []byte) ([]*Certificate, error) {
	all, err := t.Certificates()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(c *Certificate) bool { return len(id) == 0 || !bytes.Equal(c.ID, id) }), nil
}

// StoreCertificate stores cert on the token beside the key pair k: a
// public token object (CKA_TOKEN true, CKA_PRIVATE false) of class
// CKO_CERTIFICATE, type CKC_X_509, with k's CKA_ID and label and the
// certificate's subject, issuer and serial number. A certificate whose
// public key is not k's is refused ([ErrCertMismatch], naming the key),
// and so is a key that is broken ([Key.Check]) or has no CKA_ID to tie a
// certificate to. A certificate already stored for k is not stored twice:
// stored is false then. A token that does not take certificate objects
// gives [ErrCertUnsupported].
func (t *Token) StoreCertificate(k *Key, cert *x509.Certificate) (c *Certificate, stored bool, err error) {
	if !equalPublic(k.pub, cert.PublicKey) {
		return nil, false, fmt.Errorf("%w: key %s: the certificate's public key is another key's", ErrCertMismatch, k)
	}
	if len(k.ID) == 0 {
		return nil, false, fmt.Errorf("%w: key %s has no CKA_ID to tie a certificate to", ErrWrongKeyType, k)
	}
	if err := k.Check(); err != nil {
		return nil, false, err
	}
	have, err := t.FindCertificates(k.ID)
	if err != nil {
		return nil, false, err
	}
	for _, h := range have {
		if bytes.Equal(h.Cert.Raw, cert.Raw) {
			return h, false, nil
		}
	}
	serial, err := asn1.Marshal(cert.SerialNumber)
	if err != nil {
		return nil, false, err
	}
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
		pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, k.Label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, k.ID),
		pkcs11.NewAttribute(pkcs11.CKA_SUBJECT, cert.RawSubject),
		pkcs11.NewAttribute(pkcs11.CKA_ISSUER, cert.RawIssuer),
		pkcs11.NewAttribute(pkcs11.CKA_SERIAL_NUMBER, serial),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, cert.Raw),
	}
	var h pkcs11.ObjectHandle
	err = t.withSession(func(sh pkcs11.SessionHandle) error {
		var err error
		h, err = t.ctx().CreateObject(sh, tmpl)
		return err
	})
	if hasCode(err, certCreateRefusals...) {
		return nil, false, fmt.Errorf("%w: token %q refused the certificate object (%v)", ErrCertUnsupported, t.info.Label, p11err("C_CreateObject", err))
	}
	if err != nil {
		return nil, false, p11err("C_CreateObject", err)
	}
	return &Certificate{Label: k.Label, ID: bytes.Clone(k.ID), Cert: cert, h: h}, true, nil
}
